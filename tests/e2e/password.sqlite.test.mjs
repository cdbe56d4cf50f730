// The password suite (password.suite.mjs) on SQLite.
import { passwordSuite } from './password.suite.mjs';

passwordSuite('sqlite');
