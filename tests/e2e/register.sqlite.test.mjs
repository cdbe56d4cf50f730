// The registration suite (register.suite.mjs) on SQLite.
import { registerSuite } from './register.suite.mjs';

registerSuite('sqlite');
