// The routing suite (routing.suite.mjs) on PostgreSQL.
import { routingSuite } from './routing.suite.mjs';

routingSuite('postgres');
