// The OAuth 2.0 / OIDC conformance suite (oauth-conformance.suite.mjs) on PostgreSQL.
import { conformanceSuite } from './oauth-conformance.suite.mjs';

conformanceSuite('postgres');
