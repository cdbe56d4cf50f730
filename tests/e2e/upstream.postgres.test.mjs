// The platform-SSO suite (upstream.suite.mjs) on PostgreSQL.
import { upstreamSuite } from './upstream.suite.mjs';

upstreamSuite('postgres');
