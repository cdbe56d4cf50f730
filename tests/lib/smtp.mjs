// A test SMTP sink (npm `smtp-server`, pinned in package.json): the platform's mail relay as the
// appliance sees it on Cloudron's plain port: no TLS at all, AUTH PLAIN/LOGIN accepted with the
// configured credentials. Every message is kept with its envelope and raw text.
import { SMTPServer } from 'smtp-server';

export class SmtpSink {
  /** Starts a sink on 127.0.0.1 (a free port) expecting `username`/`password`. */
  static async start({ username = 'matrix-app', password = 'relay-secret' } = {}) {
    const sink = new SmtpSink(username, password);
    await sink.listen();
    return sink;
  }

  constructor(username, password) {
    Object.assign(this, { username, password });
    /** [{ from, to: [...], raw, headers: Map(lowercase name → value) }] */
    this.messages = [];
    /** Failed AUTH attempts (user names only). */
    this.authFailures = [];
    this.waiters = [];
    this.server = new SMTPServer({
      secure: false,
      disabledCommands: ['STARTTLS'],
      authOptional: false,
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      logger: false,
      onAuth: (auth, _session, cb) => {
        if (auth.username === this.username && auth.password === this.password) {
          cb(null, { user: auth.username });
        } else {
          this.authFailures.push(auth.username);
          cb(new Error('invalid credentials'));
        }
      },
      onData: (stream, session, cb) => {
        const chunks = [];
        stream.on('data', (c) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const message = {
            from: session.envelope.mailFrom?.address,
            to: session.envelope.rcptTo.map((r) => r.address),
            raw,
            headers: parseHeaders(raw),
          };
          this.messages.push(message);
          for (const w of this.waiters.splice(0)) w();
          cb();
        });
      },
    });
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.server.address().port;
        resolve();
      });
    });
  }

  /** The `CLOUDRON_MAIL_*` variables of Cloudron's sendmail addon pointing at this sink. */
  env({ from = 'matrix.app@localhost.test', displayName = 'Example Chat' } = {}) {
    return {
      CLOUDRON_MAIL_SMTP_SERVER: '127.0.0.1',
      CLOUDRON_MAIL_SMTP_PORT: String(this.port),
      // Cloudron sets both; the appliance must prefer the plain port. Nothing listens here.
      CLOUDRON_MAIL_SMTPS_PORT: '1',
      CLOUDRON_MAIL_SMTP_USERNAME: this.username,
      CLOUDRON_MAIL_SMTP_PASSWORD: this.password,
      CLOUDRON_MAIL_FROM: from,
      CLOUDRON_MAIL_FROM_DISPLAY_NAME: displayName,
      CLOUDRON_MAIL_DOMAIN: from.split('@')[1],
    };
  }

  /** The first message to `address`, waiting up to `timeoutMs`. */
  async waitFor(address, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.to.includes(address));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no mail to ${address} within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  stop() {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Header fields of a raw message (unfolded), by lowercase name; the first occurrence wins. */
function parseHeaders(raw) {
  const head = raw.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
  const headers = new Map();
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) {
      const name = line.slice(0, i).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(i + 1).trim());
    }
  }
  return headers;
}
