// The routing suite (routing.suite.mjs) on SQLite.
import { routingSuite } from './routing.suite.mjs';

routingSuite('sqlite');
