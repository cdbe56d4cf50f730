// The platform-SSO suite (upstream.suite.mjs) on SQLite.
import { upstreamSuite } from './upstream.suite.mjs';

upstreamSuite('sqlite');
