// The QR-login suite (qr-login.suite.mjs) on SQLite.
import { qrLoginSuite } from './qr-login.suite.mjs';

qrLoginSuite('sqlite');
