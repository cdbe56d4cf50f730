// The compat refresh and logout suite (compat-session.suite.mjs) on PostgreSQL.
import { compatSessionSuite } from './compat-session.suite.mjs';

compatSessionSuite('postgres');
