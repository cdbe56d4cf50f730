// A plain, pre-MAS Synapse (the pinned one, from the venv) on its own, for the tests of moving an
// existing Synapse onto the appliance (issue 13): its own `homeserver.yaml` (a loopback port,
// SQLite file or a fresh PostgreSQL database with C collation, registration closed, a
// registration shared secret, a known `password_config.pepper`, one OIDC provider `testidp`
// pointing at a TestIdp), its own signing key (`--generate-keys`), started, waited for (/health)
// and stopped cleanly. `populateLegacy()` then fills it only through Synapse's own APIs (the
// shared-secret admin registration, the admin API, the client-server API through matrix-js-sdk,
// SSO sign-in in headless Chromium) and returns a record of everything it made.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Browser } from './browser.mjs';
import { synapsePython } from './config.mjs';
import { request, sleep, statusOf } from './http.mjs';
import { sdk } from './matrix.mjs';
import { LoopbackCallback, Recorder } from './oidc.mjs';
import { databaseUrlFor } from './pg.mjs';
import { freePort } from './ports.mjs';

/** The OIDC provider's `idp_id` in the legacy config; Synapse calls it `oidc-testidp`. */
export const LEGACY_IDP_ID = 'testidp';
export const LEGACY_AUTH_PROVIDER = `oidc-${LEGACY_IDP_ID}`;

/** The redirect URI Synapse's OIDC client uses (Synapse's docs, "OpenID Connect"). */
export function synapseOidcCallbackOf(publicBaseUrl) {
  return `${publicBaseUrl.replace(/\/$/, '')}/_synapse/client/oidc/callback`;
}

export class LegacySynapse {
  /**
   * @param {object} o
   * @param {string} o.dir          its own directory: homeserver.yaml, keys, media, SQLite file
   * @param {'sqlite'|'postgres'} o.backend
   * @param {string} [o.dbName]     PostgreSQL database (backend 'postgres'), C collation
   * @param {string} o.serverName
   * @param {number} o.port         loopback port of its client+federation listener
   */
  constructor({ dir, backend, dbName, serverName, port }) {
    Object.assign(this, { dir, backend, dbName, serverName, port });
    this.name = `legacy Synapse (${backend})`;
    this.dataDir = dir;
    this.configPath = path.join(dir, 'homeserver.yaml');
    this.sqlitePath = path.join(dir, 'homeserver.db');
    this.mediaStore = path.join(dir, 'media_store');
    this.signingKeyPath = path.join(dir, `${serverName}.signing.key`);
    this.registrationSecret = crypto.randomBytes(24).toString('hex');
    this.pepper = `pepper-${crypto.randomBytes(12).toString('hex')}`;
    this.macaroonSecret = crypto.randomBytes(24).toString('hex');
    this.formSecret = crypto.randomBytes(24).toString('hex');
    this.log = [];
    this.proc = null;
    // Synapse's OIDC client needs its `oidc` extra (Authlib), which start/lib/versions.sh installs.
    this.env = { ...process.env, PYTHONWARNINGS: 'ignore' };
  }

  /** A LegacySynapse with a free port, its config written and its signing key generated. */
  static async create({ dir, backend, dbName, serverName, idp }) {
    fs.mkdirSync(dir, { recursive: true });
    const legacy = new LegacySynapse({ dir, backend, dbName, serverName, port: await freePort() });
    legacy.writeConfig(idp);
    await legacy.generateKeys();
    return legacy;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get publicBaseUrl() {
    return `${this.baseUrl}/`;
  }

  url(p) {
    return `${this.baseUrl}${p}`;
  }

  /** The `database` section: psycopg2 with the test server's credentials, or an SQLite file. */
  databaseConfig() {
    if (this.backend !== 'postgres') return { name: 'sqlite3', args: { database: this.sqlitePath } };
    const u = new URL(databaseUrlFor(this.dbName));
    return {
      name: 'psycopg2',
      args: {
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        dbname: this.dbName,
        host: u.hostname,
        port: Number(u.port || 5432),
        cp_min: 1,
        cp_max: 5,
      },
    };
  }

  /** The config of a stock pre-MAS Synapse: its own password login, one OIDC provider. */
  config(idp) {
    const generous = { per_second: 1000, burst_count: 1000 };
    return {
      server_name: this.serverName,
      public_baseurl: this.publicBaseUrl,
      pid_file: path.join(this.dir, 'homeserver.pid'),
      report_stats: false,
      listeners: [{ port: this.port, bind_addresses: ['127.0.0.1'], type: 'http', tls: false, x_forwarded: false, resources: [{ names: ['client', 'federation'], compress: false }] }],
      database: this.databaseConfig(),
      media_store_path: this.mediaStore,
      signing_key_path: this.signingKeyPath,
      macaroon_secret_key: this.macaroonSecret,
      form_secret: this.formSecret,
      registration_shared_secret: this.registrationSecret,
      enable_registration: false,
      password_config: { enabled: true, pepper: this.pepper },
      // Long enough for the whole test: the old refresh token must still be usable afterwards.
      refreshable_access_token_lifetime: '1h',
      trusted_key_servers: [],
      suppress_key_server_warning: true,
      url_preview_enabled: false,
      rc_login: { address: generous, account: generous, failed_attempts: generous },
      rc_registration: generous,
      rc_message: generous,
      rc_joins: { local: generous, remote: generous },
      rc_invites: { per_room: generous, per_user: generous, per_issuer: generous },
      rc_admin_redaction: generous,
      // The SSO client (the test's loopback callback) gets its loginToken without a confirmation page.
      sso: { client_whitelist: ['http://127.0.0.1:'] },
      oidc_providers: [
        {
          idp_id: LEGACY_IDP_ID,
          idp_name: idp.name,
          issuer: idp.issuer,
          client_id: idp.clientId,
          client_secret: idp.clientSecret,
          client_auth_method: 'client_secret_basic',
          scopes: ['openid', 'profile', 'email'],
          // The provider is plain http on loopback; Synapse insists on https otherwise.
          skip_verification: true,
          // oidc-provider puts only `sub` in the ID token; the rest comes from userinfo.
          user_profile_method: 'userinfo_endpoint',
          user_mapping_provider: {
            config: {
              subject_claim: 'sub',
              localpart_template: '{{ user.preferred_username }}',
              display_name_template: '{{ user.name }}',
              email_template: '{{ user.email }}',
            },
          },
        },
      ],
    };
  }

  /** Writes homeserver.yaml (JSON is YAML). */
  writeConfig(idp) {
    fs.mkdirSync(this.mediaStore, { recursive: true });
    fs.writeFileSync(this.configPath, `${JSON.stringify(this.config(idp), null, 2)}\n`, { mode: 0o600 });
  }

  /** Runs the pinned Synapse with `args`; resolves with { code, output }. */
  runSynapse(args, timeoutMs = 120000) {
    return new Promise((resolve, reject) => {
      const child = spawn(synapsePython, ['-m', 'synapse.app.homeserver', '--config-path', this.configPath, ...args], { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = [];
      child.stdout.on('data', (c) => out.push(c));
      child.stderr.on('data', (c) => out.push(c));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', reject);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, output: Buffer.concat(out).toString('utf8') });
      });
    });
  }

  /** `--generate-keys`: the signing key at signing_key_path (and nothing else missing). */
  async generateKeys() {
    const r = await this.runSynapse(['--generate-keys']);
    if (r.code !== 0 || !fs.existsSync(this.signingKeyPath)) {
      throw new Error(`${this.name}: --generate-keys exited ${r.code}:\n${r.output.slice(-3000)}`);
    }
  }

  /** Starts Synapse in the background; its output goes to `log`. */
  start() {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.log.push(`--- start ${new Date().toISOString()}`);
    const child = spawn(synapsePython, ['-m', 'synapse.app.homeserver', '--config-path', this.configPath], { cwd: this.dir, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = { child, exit: null };
    proc.exited = new Promise((resolve) => {
      child.once('error', (err) => resolve((proc.exit = { error: String(err) })));
      child.once('exit', (code, signal) => resolve((proc.exit = { code, signal })));
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop();
        this.log.push(...lines);
      });
    }
    this.proc = proc;
    process.once('exit', () => child.kill('SIGKILL'));
    return this;
  }

  get running() {
    return this.proc !== null && this.proc.exit === null;
  }

  /** Waits for GET /health = 200; fails early when Synapse exits. */
  async waitHealthy(timeoutMs = 120000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc.exit) throw new Error(`${this.name} exited before /health was 200: ${JSON.stringify(this.proc.exit)}`);
      if ((await statusOf(this.url('/health'), 2000)) === 200) return;
      await sleep(200);
    }
    throw new Error(`${this.name}: /health not 200 within ${timeoutMs} ms`);
  }

  /** SIGTERM and wait for the exit (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 30000) {
    if (!this.running) return this.proc?.exit ?? null;
    this.proc.child.kill('SIGTERM');
    let timer;
    const r = await Promise.race([this.proc.exited, new Promise((res) => (timer = setTimeout(() => res(null), timeoutMs)))]);
    clearTimeout(timer);
    if (r === null) {
      this.proc.child.kill('SIGKILL');
      await this.proc.exited;
      throw new Error(`${this.name}: no exit within ${timeoutMs} ms of SIGTERM (killed)`);
    }
    this.log.push(`--- exited ${JSON.stringify(r)}`);
    return r;
  }

  logText(last = 150) {
    return this.log.slice(-last).join('\n');
  }

  /** JSON request to this Synapse: { status, body, json() } (http.mjs). */
  call(method, p, { token, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    return request(this.url(p), { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  /** Like `call`, but fails unless the status is 200. Returns the parsed body. */
  async callOk(method, p, opts) {
    const res = await this.call(method, p, opts);
    if (res.status !== 200) throw new Error(`${this.name}: ${method} ${p}: ${res.status} ${res.body.slice(0, 500)}`);
    return res.json();
  }

  /**
   * Registers a user through the shared-secret admin registration (Synapse admin API
   * "Shared-Secret Registration": HMAC-SHA1 over nonce, user, password and admin flag).
   * Returns Synapse's answer: { user_id, access_token, device_id, home_server }.
   */
  async registerWithSharedSecret(username, password, { admin = false } = {}) {
    const { nonce } = await this.callOk('GET', '/_synapse/admin/v1/register');
    const mac = crypto.createHmac('sha1', this.registrationSecret);
    mac.update(nonce);
    mac.update('\x00');
    mac.update(username);
    mac.update('\x00');
    mac.update(password, 'utf8');
    mac.update('\x00');
    mac.update(admin ? 'admin' : 'notadmin');
    return this.callOk('POST', '/_synapse/admin/v1/register', {
      body: { nonce, username, password, admin, mac: mac.digest('hex') },
    });
  }

  /** POST /login with a password (Synapse's own password login). */
  passwordLogin(username, password, extra = {}) {
    return this.callOk('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password, ...extra },
    });
  }

  /** A matrix-js-sdk client of this Synapse, signed in with `credentials`. */
  client(credentials, recorder = new Recorder()) {
    return sdk.createClient({
      baseUrl: this.baseUrl,
      accessToken: credentials.access_token,
      userId: credentials.user_id,
      deviceId: credentials.device_id,
      fetchFn: recorder.fetch,
    });
  }

  /** The server's signing key ids from GET /_matrix/key/v2/server. */
  async signingKeyIds() {
    return Object.keys((await this.callOk('GET', '/_matrix/key/v2/server')).verify_keys).sort();
  }
}

/** The people of the legacy server (passwords: one non-ASCII). */
export function legacyPeople() {
  const pw = () => `legacy-${crypto.randomBytes(9).toString('base64url')}-Pw!`;
  return {
    admin: { username: 'root', password: pw(), admin: true },
    alice: { username: 'alice', password: pw() },
    // Non-ASCII, with a character NFKC changes (the "ﬁ" ligature) and a combining accent.
    chloe: { username: 'chloe', password: `Ünïcødé-пароль-密码-ﬁ-e\u0301-${crypto.randomBytes(3).toString('hex')}` },
    dora: { username: 'dora', password: pw(), email: 'dora@legacy.example.org' },
    dave: { username: 'dave', password: pw() }, // deactivated
    lena: { username: 'lena', password: pw() }, // locked
  };
}

/**
 * Fills `legacy` (running) only through Synapse's own APIs; `idp` is the TestIdp of its
 * `oidc_providers` entry. Returns the record: people (mxids, passwords), the sessions (tokens,
 * device ids), rooms, message texts, the media, the signing key ids.
 */
export async function populateLegacy(legacy, idp, { browserLabel = 'legacy-sso' } = {}) {
  const server = legacy.serverName;
  const people = legacyPeople();
  const mxid = (u) => `@${u}:${server}`;
  for (const p of Object.values(people)) {
    p.userId = mxid(p.username);
    p.registration = await legacy.registerWithSharedSecret(p.username, p.password, { admin: Boolean(p.admin) });
  }
  const adminToken = people.admin.registration.access_token;

  // Email through the admin API (an admin-added 3PID is stored as validated).
  await legacy.callOk('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(people.dora.userId)}`, {
    token: adminToken,
    body: { threepids: [{ medium: 'email', address: people.dora.email }] },
  });
  // Locked, deactivated (admin API).
  await legacy.callOk('PUT', `/_synapse/admin/v2/users/${encodeURIComponent(people.lena.userId)}`, { token: adminToken, body: { locked: true } });
  await legacy.callOk('POST', `/_synapse/admin/v1/deactivate/${encodeURIComponent(people.dave.userId)}`, { token: adminToken, body: { erase: false } });

  // A client signed in with its own device, and one with a refresh token.
  const deviceLogin = await legacy.passwordLogin(people.alice.username, people.alice.password, { device_id: 'LEGACYPHONE', initial_device_display_name: 'Legacy phone' });
  const refreshLogin = await legacy.passwordLogin(people.chloe.username, people.chloe.password, { device_id: 'LEGACYTABLET', initial_device_display_name: 'Legacy tablet', refresh_token: true });
  if (!refreshLogin.refresh_token) throw new Error(`${legacy.name}: no refresh token from login with refresh_token: true`);

  // A user created by signing in through Synapse's OIDC (headless Chromium).
  const olgaAccount = idp.addAccount({ username: 'olga', name: 'Olga Ssouser', email: 'olga@idp.example.org' });
  const sso = await ssoSignIn(legacy, olgaAccount, browserLabel);
  people.olga = { username: 'olga', userId: mxid('olga'), sso: true, account: olgaAccount, login: sso };
  if (sso.user_id !== people.olga.userId) throw new Error(`SSO sign-in made ${sso.user_id}, expected ${people.olga.userId}`);

  // Rooms and messages (matrix-js-sdk).
  const rec = new Recorder();
  const rootClient = legacy.client({ ...people.admin.registration, user_id: people.admin.userId }, rec);
  const aliceClient = legacy.client({ ...deviceLogin, user_id: people.alice.userId }, rec);
  const suffix = crypto.randomBytes(3).toString('hex');
  const { room_id: roomId } = await rootClient.createRoom({ preset: sdk.Preset.PrivateChat, name: 'Legacy lobby', invite: [people.alice.userId, people.olga.userId] });
  await aliceClient.joinRoom(roomId);
  const messages = [
    { sender: people.admin.userId, body: `welcome to the old server ${suffix}` },
    { sender: people.alice.userId, body: `thanks, root — with ümlauts ${suffix}` },
  ];
  await rootClient.sendMessage(roomId, { msgtype: 'm.text', body: messages[0].body });
  await aliceClient.sendMessage(roomId, { msgtype: 'm.text', body: messages[1].body });

  // A media upload.
  const mediaBytes = Buffer.from(`legacy media ${suffix}\n`);
  const upload = await request(legacy.url('/_matrix/media/v3/upload?filename=legacy.txt'), {
    method: 'POST',
    headers: { authorization: `Bearer ${deviceLogin.access_token}`, 'content-type': 'text/plain' },
    body: mediaBytes,
  });
  if (upload.status !== 200) throw new Error(`media upload: ${upload.status} ${upload.body}`);

  return {
    serverName: server,
    people,
    sessions: {
      // alice's phone: a plain access token and its device.
      device: { userId: people.alice.userId, accessToken: deviceLogin.access_token, deviceId: deviceLogin.device_id },
      // chloe's tablet: a refreshable pair.
      refresh: { userId: people.chloe.userId, accessToken: refreshLogin.access_token, refreshToken: refreshLogin.refresh_token, deviceId: refreshLogin.device_id },
    },
    room: { roomId, name: 'Legacy lobby', messages },
    media: { contentUri: upload.json().content_uri, bytes: mediaBytes },
    signingKeyIds: await legacy.signingKeyIds(),
    userCount: Object.keys(people).length,
  };
}

/**
 * Signs `account` in through Synapse's OIDC provider in a fresh headless Chromium: the SSO
 * redirect to the provider, its sign-in page, back through Synapse's callback to a loopback
 * client with a loginToken, redeemed with m.login.token. Returns the /login answer.
 */
async function ssoSignIn(legacy, account, label) {
  const callback = await LoopbackCallback.start();
  const browser = await Browser.launch(label);
  try {
    const since = callback.received.length;
    await browser.step('open Synapse\'s SSO redirect', (page) =>
      page.goto(legacy.url(`/_matrix/client/v3/login/sso/redirect/${LEGACY_AUTH_PROVIDER}?redirectUrl=${encodeURIComponent(callback.redirectUri)}`)),
    );
    await browser.step(`sign in at the provider as ${account.username}`, async (page) => {
      await page.getByLabel('Username').fill(account.username);
      await page.getByLabel('Password').fill(account.password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    });
    const url = await browser.step('Synapse sends the browser back with a loginToken', () => callback.next(since));
    const loginToken = url.searchParams.get('loginToken');
    if (!loginToken) throw new Error(`no loginToken in ${url}`);
    return legacy.callOk('POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token: loginToken } });
  } finally {
    await browser.close();
    await callback.close();
  }
}
