// The compat refresh and logout suite (compat-session.suite.mjs) on SQLite.
import { compatSessionSuite } from './compat-session.suite.mjs';

compatSessionSuite('sqlite');
