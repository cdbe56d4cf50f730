// The QR-login suite (qr-login.suite.mjs) on PostgreSQL.
import { qrLoginSuite } from './qr-login.suite.mjs';

qrLoginSuite('postgres');
