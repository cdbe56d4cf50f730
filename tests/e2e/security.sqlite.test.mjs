// The page-security suite (security.suite.mjs) on SQLite.
import { securitySuite } from './security.suite.mjs';

securitySuite('sqlite');
