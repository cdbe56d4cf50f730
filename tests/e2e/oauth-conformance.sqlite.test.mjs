// The OAuth 2.0 / OIDC conformance suite (oauth-conformance.suite.mjs) on SQLite.
import { conformanceSuite } from './oauth-conformance.suite.mjs';

conformanceSuite('sqlite');
