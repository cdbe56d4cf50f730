// The legacy SSO suite in Chromium (compat-sso.suite.mjs) on PostgreSQL.
import { compatSsoSuite } from './compat-sso.suite.mjs';

compatSsoSuite('postgres');
