// The Element-X-style sign-in suite (oauth-matrix.suite.mjs) on SQLite.
import { matrixSuite } from './oauth-matrix.suite.mjs';

matrixSuite('sqlite');
