// The page-security suite (security.suite.mjs) on PostgreSQL.
import { securitySuite } from './security.suite.mjs';

securitySuite('postgres');
