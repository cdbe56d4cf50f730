// The legacy-login suite with matrix-js-sdk (compat-matrix.suite.mjs) on SQLite.
import { compatMatrixSuite } from './compat-matrix.suite.mjs';

compatMatrixSuite('sqlite');
