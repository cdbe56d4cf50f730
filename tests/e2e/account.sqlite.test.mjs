// The account suite (account.suite.mjs) on SQLite.
import { accountSuite } from './account.suite.mjs';

accountSuite('sqlite');
