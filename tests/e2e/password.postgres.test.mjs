// The password suite (password.suite.mjs) on PostgreSQL.
import { passwordSuite } from './password.suite.mjs';

passwordSuite('postgres');
