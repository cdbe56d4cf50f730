// The account suite (account.suite.mjs) on PostgreSQL.
import { accountSuite } from './account.suite.mjs';

accountSuite('postgres');
