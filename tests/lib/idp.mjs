// A real OpenID Connect provider for the platform-SSO tests: npm `oidc-provider` (panva's, the
// library Cloudron's own provider appears to be built on; pinned in tests/package.json to 8.8.1,
// the last major release that supports Node 20 LTS), in this process, on 127.0.0.1 with a free
// port. It plays the platform's provider for an appliance: one confidential client
// (client_secret_basic) whose redirect URI is ORIGIN/auth/upstream/callback/<platform provider id>,
// accounts whose `sub` is their username (as on Cloudron) with `preferred_username`, `name`,
// `email` and `email_verified`, a small sign-in page of ours (labels "Username" and "Password",
// buttons "Sign in" and "Cancel") and no consent page (the grant is given at once, as a platform
// does for its own apps). `env()` gives the CLOUDRON_OIDC_* variables the appliance is started
// with.
//
// Knobs for negative tests:
// - `tamper(mode)`: a middleware after the token endpoint rewrites the ID token of the next
//   answers (`wrong-nonce`, `other-key` (same kid, signed by a key the provider never published),
//   `unknown-kid`, `wrong-iss`, `wrong-aud`, `expired`), re-signed with the provider's own private
//   key where the point is not the signature (so only the one claim is wrong);
// - `stop()` / `restart()`: the provider goes down (connections refused) and comes back on the
//   same port; `goDownAfterSignIn()`: it goes down the moment it has sent the browser back to
//   the relying party with a code (so redeeming that code finds it unreachable);
//   `env({ unreachable: true })` points every variable at a closed port instead;
// - `discoveryBroken = true`: its discovery document answers 503 (the other endpoints work), for
//   the fallback to the explicit endpoints; `requirePkce` can be changed at any time;
// - `onTokenRequest`: called before the token endpoint answers (e.g. to stop the provider then).
//
// What the relying party did is recorded (`authorizations`, `tokenRequests`, `userinfoRequests`,
// `log`), so a test can check PKCE, the client authentication and the endpoints MAS used, and a
// negative test can check that it really got as far as the rewritten token.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';
import { freePort } from './ports.mjs';

/** The platform provider's fixed id (supervisor/src/render/providers.rs). */
export const PLATFORM_PROVIDER_ID = '01J00000000000000000PR0V1D';

/** The modes of `tamper()`. */
export const TAMPER_MODES = ['wrong-nonce', 'other-key', 'unknown-kid', 'wrong-iss', 'wrong-aud', 'expired'];

/** The callback MAS uses for the platform provider, on the appliance's public origin. */
export function upstreamCallbackOf(origin, providerId = PLATFORM_PROVIDER_ID) {
  return `${origin}/auth/upstream/callback/${providerId}`;
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const b64uJson = (obj) => b64u(JSON.stringify(obj));

/** An RSA-2048 signing key: { privateKey (KeyObject), publicJwk, privateJwk, kid }. */
function rsaKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const { d, p, q, dp, dq, qi, ...publicJwk } = privateJwk;
  return { privateKey, privateJwk, publicJwk, kid };
}

/** Decodes a compact JWS without checking it: { header, payload }. */
export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

/** Signs `payload` with RS256 under `header` (alg forced to RS256). */
export function signJwt(header, payload, privateKey) {
  const input = `${b64uJson({ ...header, alg: 'RS256' })}.${b64uJson(payload)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), privateKey);
  return `${input}.${b64u(sig)}`;
}

/**
 * oidc-provider's storage: an in-memory adapter of our own, one Map per provider (the library's
 * own works the same way but warns about it on every start).
 */
function memoryAdapter() {
  const store = new Map();
  const now = () => Math.floor(Date.now() / 1000);
  const live = (key) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.exp && entry.exp < now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class MemoryAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      store.set(this.key(id), { payload: { ...payload }, exp: expiresIn ? now() + expiresIn : 0 });
      if (payload.uid) store.set(`${this.model}:uid:${payload.uid}`, { payload: id, exp: 0 });
      if (payload.userCode) store.set(`${this.model}:userCode:${payload.userCode}`, { payload: id, exp: 0 });
    }

    async find(id) {
      return live(this.key(id));
    }

    async findByUid(uid) {
      const id = live(`${this.model}:uid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = live(`${this.model}:userCode:${userCode}`);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      const payload = live(this.key(id));
      if (payload) payload.consumed = now();
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const [key, entry] of store) if (entry.payload?.grantId === grantId) store.delete(key);
    }
  };
}

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

/** Reads an application/x-www-form-urlencoded request body. */
function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

export class TestIdp {
  /**
   * Starts a provider for the appliance at `origin` (its public origin, e.g. app.origin).
   * Options: `name` (CLOUDRON_OIDC_PROVIDER_NAME, default "Test Cloud"), `clientId`,
   * `clientSecret`, `explicitEndpoints` (default true: env() also sets the *_ENDPOINT variables,
   * as the platform does), `requirePkce` (default true: an authorization request without
   * code_challenge is refused, so a passing login proves PKCE was used), `providerId` (the MAS
   * provider id in the redirect URI; default the platform's), `extraRedirectUris` (more redirect
   * URIs the client may use, e.g. a plain Synapse's `/_synapse/client/oidc/callback`).
   */
  static async start(origin, options = {}) {
    const idp = new TestIdp(origin, options);
    await idp.listen();
    return idp;
  }

  constructor(origin, { name = 'Test Cloud', clientId = 'matrix-appliance', clientSecret, explicitEndpoints = true, requirePkce = true, providerId = PLATFORM_PROVIDER_ID, extraRedirectUris = [] } = {}) {
    this.origin = origin;
    this.name = name;
    this.clientId = clientId;
    this.clientSecret = clientSecret ?? `idp-secret-${crypto.randomBytes(12).toString('hex')}`;
    this.providerId = providerId;
    this.redirectUri = upstreamCallbackOf(origin, providerId);
    this.extraRedirectUris = extraRedirectUris;
    this.discoveryBroken = false;
    this.explicitEndpoints = explicitEndpoints;
    this.requirePkce = requirePkce;
    /** username → { sub, username, name, email, emailVerified, password, omit, extra } */
    this.accounts = new Map();
    this.signingKey = rsaKey(`idp-${crypto.randomBytes(4).toString('hex')}`);
    this.mode = null;
    this.tampered = 0;
    this.authorizations = [];
    this.tokenRequests = [];
    this.userinfoRequests = [];
    this.jwksRequests = 0;
    this.discoveryRequests = 0;
    this.onTokenRequest = null;
    this.downAfterSignIn = false;
    /** What happened, for failure reports (no secrets: codes and tokens are not recorded). */
    this.log = [];
    this.server = http.createServer();
    this.sockets = new Set();
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  note(line) {
    this.log.push(`[${new Date().toISOString().slice(11, 23)}] ${line}`);
  }

  async listen() {
    // A port below the ephemeral range (ports.mjs), so no outgoing connection can take it while
    // the provider is down and `restart()` gets it back.
    const port = await freePort();
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = this.server.address().port;
    this.issuer = `http://127.0.0.1:${this.port}`;
    this.provider = this.makeProvider();
    this.server.on('request', this.provider.callback());
    this.note(`listening: issuer ${this.issuer}, client ${this.clientId}, redirect ${this.redirectUri}`);
  }

  makeProvider() {
    const idp = this;
    const provider = new Provider(this.issuer, {
      clients: [
        {
          client_id: this.clientId,
          client_secret: this.clientSecret,
          redirect_uris: [this.redirectUri, ...this.extraRedirectUris],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'RS256',
        },
      ],
      jwks: { keys: [this.signingKey.privateJwk] },
      adapter: memoryAdapter(),
      ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 3600, Session: 86400, Grant: 86400 },
      cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
      claims: {
        openid: ['sub'],
        profile: ['name', 'preferred_username', 'given_name', 'family_name', 'locale'],
        email: ['email', 'email_verified'],
      },
      scopes: ['openid', 'profile', 'email'],
      responseTypes: ['code'],
      pkce: { methods: ['S256'], required: () => idp.requirePkce },
      features: { devInteractions: { enabled: false } },
      interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
      // No consent page: the platform's own apps get the grant at once.
      async loadExistingGrant(ctx) {
        const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) {
          const existing = await ctx.oidc.provider.Grant.find(grantId);
          if (existing) return existing;
        }
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
        grant.addOIDCScope('openid profile email');
        await grant.save();
        return grant;
      },
      async findAccount(ctx, sub) {
        const account = [...idp.accounts.values()].find((a) => a.sub === sub);
        if (!account) return undefined;
        return { accountId: sub, claims: async () => idp.claimsOf(account) };
      },
      renderError(ctx, out, error) {
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>Provider error</title><h1>Provider error</h1><pre>${escapeHtml(JSON.stringify(out))}</pre>`;
        idp.note(`error page: ${JSON.stringify(out)} (${error?.message})`);
      },
    });
    provider.on('server_error', (ctx, err) => idp.note(`server_error: ${err.stack}`));
    provider.use((ctx, next) => this.middleware(ctx, next));
    return provider;
  }

  /** The claims of `account` (minus `omit`, plus `extra`). */
  claimsOf(account) {
    const claims = {
      sub: account.sub,
      preferred_username: account.username,
      name: account.name,
      given_name: account.name.split(' ')[0],
      family_name: account.name.split(' ').slice(1).join(' ') || undefined,
      locale: 'en-US',
      email: account.email,
      email_verified: account.emailVerified,
      ...account.extra,
    };
    for (const k of account.omit) delete claims[k];
    return claims;
  }

  /**
   * Adds an account; `sub` is the username (as on Cloudron) unless given. Returns it.
   * `omit`: claims left out; `extra`: claims added or replaced.
   */
  addAccount({ username, name, email, emailVerified = true, password = `pw-${crypto.randomBytes(6).toString('hex')}`, sub = username, omit = [], extra = {} }) {
    const account = {
      sub,
      username,
      name: name ?? `${username[0].toUpperCase()}${username.slice(1)} Tester`,
      email: email ?? `${username}@idp.example.org`,
      emailVerified,
      password,
      omit,
      extra,
    };
    this.accounts.set(username, account);
    return account;
  }

  /** Rewrites the ID token of every later token answer (`null`: stop). See TAMPER_MODES. */
  tamper(mode) {
    if (mode !== null && !TAMPER_MODES.includes(mode)) throw new Error(`unknown tamper mode ${mode}`);
    this.mode = mode;
    this.note(`tamper mode: ${mode}`);
  }

  /** The ID token `idToken` as `mode` makes it. */
  rewrite(idToken, mode) {
    const { header, payload } = decodeJwt(idToken);
    const now = Math.floor(Date.now() / 1000);
    const own = this.signingKey.privateKey;
    switch (mode) {
      case 'wrong-nonce':
        return signJwt(header, { ...payload, nonce: `not-${payload.nonce ?? 'the-nonce'}` }, own);
      case 'wrong-iss':
        return signJwt(header, { ...payload, iss: 'https://evil.example.org' }, own);
      case 'wrong-aud':
        return signJwt(header, { ...payload, aud: 'another-client' }, own);
      case 'expired':
        return signJwt(header, { ...payload, iat: now - 7200, exp: now - 3600, auth_time: now - 7200 }, own);
      case 'other-key':
        this.otherKey ??= rsaKey(header.kid);
        return signJwt(header, payload, this.otherKey.privateKey);
      case 'unknown-kid':
        this.unknownKey ??= rsaKey(`unknown-${crypto.randomBytes(4).toString('hex')}`);
        return signJwt({ ...header, kid: this.unknownKey.kid }, payload, this.unknownKey.privateKey);
      default:
        throw new Error(`unknown tamper mode ${mode}`);
    }
  }

  /** Koa middleware in front of the provider's routes: our pages, records, the tampering. */
  async middleware(ctx, next) {
    const path = ctx.path;
    if (path.startsWith('/interaction/')) return this.interaction(ctx);
    if (path === '/.well-known/openid-configuration') {
      this.discoveryRequests++;
      if (this.discoveryBroken) {
        this.note('discovery: 503 (broken on purpose)');
        ctx.status = 503;
        ctx.body = 'discovery is down';
        return undefined;
      }
    }
    if (path === '/jwks') this.jwksRequests++;
    if (path === '/auth') {
      const q = Object.fromEntries(new URLSearchParams(ctx.querystring));
      const { state, nonce, code_challenge: challenge, ...rest } = q;
      this.authorizations.push({ ...rest, state: Boolean(state), nonce: Boolean(nonce), code_challenge: Boolean(challenge) });
      this.note(`GET /auth ${JSON.stringify(this.authorizations.at(-1))}`);
    }
    if (path === '/me') {
      this.userinfoRequests.push({ method: ctx.method, bearer: /^Bearer /i.test(ctx.headers.authorization ?? '') });
    }
    if (path === '/token' && ctx.method === 'POST' && this.onTokenRequest) {
      const hook = this.onTokenRequest;
      this.onTokenRequest = null;
      await hook(ctx);
    }
    await next();
    if (this.downAfterSignIn && ctx.response.get('location')?.startsWith(`${this.redirectUri}?`)) {
      this.downAfterSignIn = false;
      this.goDownAfter(ctx);
    }
    if (path === '/me') this.note(`${ctx.method} /me → ${ctx.status}`);
    if (path === '/token' && ctx.method === 'POST') {
      const entry = {
        status: ctx.status,
        basic: /^Basic /i.test(ctx.headers.authorization ?? ''),
        clientSecretInBody: Boolean(ctx.oidc?.body?.client_secret),
        codeVerifier: Boolean(ctx.oidc?.params?.code_verifier),
        grantType: ctx.oidc?.params?.grant_type,
        redirectUri: ctx.oidc?.params?.redirect_uri,
        error: ctx.body?.error,
        tampered: null,
      };
      if (ctx.status === 200 && ctx.body?.id_token && this.mode) {
        ctx.body = { ...ctx.body, id_token: this.rewrite(ctx.body.id_token, this.mode) };
        entry.tampered = this.mode;
        this.tampered++;
      }
      this.tokenRequests.push(entry);
      this.note(`POST /token ${JSON.stringify(entry)}`);
    }
  }

  /** Our sign-in page (GET) and its form (POST .../login, .../cancel). */
  async interaction(ctx) {
    const { req, res } = ctx;
    let details;
    try {
      details = await this.provider.interactionDetails(req, res);
    } catch (err) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Expired</title><h1>This sign-in expired</h1><p>${escapeHtml(err.message)}</p>`;
      return;
    }
    const uid = details.uid;
    if (ctx.method === 'GET') {
      this.note(`sign-in page (prompt ${details.prompt.name})`);
      return this.signInPage(ctx, uid, '');
    }
    const form = await readForm(req);
    if (ctx.path.endsWith('/cancel')) {
      this.note('sign-in cancelled');
      const to = await this.provider.interactionResult(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      return ctx.redirect(to);
    }
    const account = this.accounts.get(form.get('username') ?? '');
    if (!account || account.password !== form.get('password')) {
      this.note(`sign-in refused for ${JSON.stringify(form.get('username'))}`);
      ctx.status = 200;
      return this.signInPage(ctx, uid, 'Wrong username or password.');
    }
    this.note(`signed in: ${account.username}`);
    const to = await this.provider.interactionResult(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    return ctx.redirect(to);
  }

  signInPage(ctx, uid, error) {
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    const name = escapeHtml(this.name);
    ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Sign in to ${name}</title></head>
<body>
<h1>Sign in to ${name}</h1>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label for="username">Username</label> <input id="username" name="username" autocomplete="username" autofocus>
  <label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password">
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/cancel"><button type="submit">Cancel</button></form>
</body></html>`;
  }

  /**
   * This provider as an operator's entry of `upstream_oauth2.providers` in <data>/config/mas.yaml
   * (upstream MAS key names), with `claims_imports` like the platform's.
   */
  operatorProvider() {
    return {
      id: this.providerId,
      issuer: this.issuer,
      human_name: this.name,
      client_id: this.clientId,
      client_secret: this.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid profile email',
      fetch_userinfo: true,
      claims_imports: {
        skip_confirmation: true,
        localpart: { action: 'require', template: '{{ user.preferred_username }}' },
        displayname: { action: 'force', template: '{{ user.name }}' },
        email: { action: 'force', template: '{{ user.email }}' },
      },
    };
  }

  /**
   * The CLOUDRON_OIDC_* variables of an appliance using this provider. `unreachable`: every URL
   * points at a closed loopback port (127.0.0.1:1) instead. `explicitEndpoints` overrides the instance's choice.
   */
  env({ unreachable = false, explicitEndpoints = this.explicitEndpoints } = {}) {
    // Port 1 (tcpmux): privileged and unused, so connections are refused for certain.
    const base = unreachable ? 'http://127.0.0.1:1' : this.issuer;
    const env = {
      CLOUDRON_OIDC_PROVIDER_NAME: this.name,
      CLOUDRON_OIDC_ISSUER: base,
      CLOUDRON_OIDC_CLIENT_ID: this.clientId,
      CLOUDRON_OIDC_CLIENT_SECRET: this.clientSecret,
      CLOUDRON_OIDC_DISCOVERY_URL: `${base}/.well-known/openid-configuration`,
    };
    if (explicitEndpoints) {
      Object.assign(env, {
        CLOUDRON_OIDC_AUTH_ENDPOINT: `${base}/auth`,
        CLOUDRON_OIDC_TOKEN_ENDPOINT: `${base}/token`,
        CLOUDRON_OIDC_KEYS_ENDPOINT: `${base}/jwks`,
        CLOUDRON_OIDC_PROFILE_ENDPOINT: `${base}/me`,
      });
    }
    return env;
  }

  /** True while the provider accepts connections. */
  get up() {
    return this.server.listening;
  }

  /** Goes down: stops listening and drops every open connection (refused from now on). */
  async stop() {
    if (!this.server.listening) return;
    const closed = new Promise((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    this.note('stopped');
  }

  /** The next redirect back to the relying party with a code is the provider's last answer. */
  goDownAfterSignIn() {
    this.downAfterSignIn = true;
  }

  /**
   * Stops accepting connections now and drops every open one (the relying party's pooled ones
   * too) except the one answering `ctx`, which is dropped once that answer is sent.
   */
  goDownAfter(ctx) {
    const own = ctx.req.socket;
    this.server.close();
    for (const s of this.sockets) if (s !== own) s.destroy();
    ctx.res.once('finish', () => own.destroy());
    this.note('going down after this answer (redirect to the relying party)');
  }

  /** Comes back on the same port (same keys, clients, accounts; sessions kept in memory). */
  async restart() {
    if (this.server.listening) return;
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.note('restarted');
  }

  /** The log as text, for failure reports. */
  logText(last = 60) {
    return this.log.slice(-last).join('\n');
  }
}
