// The legacy SSO suite in Chromium (compat-sso.suite.mjs) on SQLite.
import { compatSsoSuite } from './compat-sso.suite.mjs';

compatSsoSuite('sqlite');
