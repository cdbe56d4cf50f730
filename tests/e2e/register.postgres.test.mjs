// The registration suite (register.suite.mjs) on PostgreSQL.
import { registerSuite } from './register.suite.mjs';

registerSuite('postgres');
