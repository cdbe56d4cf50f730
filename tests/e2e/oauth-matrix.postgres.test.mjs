// The Element-X-style sign-in suite (oauth-matrix.suite.mjs) on PostgreSQL.
import { matrixSuite } from './oauth-matrix.suite.mjs';

matrixSuite('postgres');
