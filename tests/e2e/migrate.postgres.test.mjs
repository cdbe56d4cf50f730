// Moving a plain Synapse onto the appliance (migrate.suite.mjs) on PostgreSQL.
import { migrateSuite } from './migrate.suite.mjs';

migrateSuite('postgres');
