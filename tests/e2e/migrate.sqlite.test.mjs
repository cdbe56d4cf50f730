// Moving a plain Synapse onto the appliance (migrate.suite.mjs) on SQLite.
import { migrateSuite } from './migrate.suite.mjs';

migrateSuite('sqlite');
