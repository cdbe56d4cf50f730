// OAuth 2.0 / OpenID Connect against a running appliance, as a relying party would do it:
// openid-client for discovery, registration, the code flow with PKCE, tokens, userinfo and
// revocation; a loopback HTTP server of the test's own as the redirect target of native clients
// (RFC 8252); the appliance's login and consent pages driven in headless Chromium (browser.mjs);
// and the Matrix side (whoami, the admin API, MAS's introspection as Synapse calls it).
//
// Every HTTP exchange the library makes goes through a Recorder, so a failing test can show the
// precise requests and responses that led to it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as oidc from 'openid-client';
import { test } from 'node:test';
import { request } from './http.mjs';

export { oidc };

/** The issuer the appliance must announce: ORIGIN/auth/. */
export function issuerOf(app) {
  return `${app.origin}/auth/`;
}

/** The Matrix server name pinned in the data dir (user IDs end in it). */
export function serverNameOf(app) {
  return JSON.parse(fs.readFileSync(path.join(app.dataDir, 'appliance.json'), 'utf8')).server_name;
}

/** A random string of `n` characters from [A-Z0-9]: device IDs, passwords. */
export function randomAlnum(n) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const bytes = crypto.randomBytes(n);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/** A password zxcvbn scores 4 (random, long, mixed). */
export function strongPassword() {
  return `e2e-${crypto.randomBytes(12).toString('base64url')}-Pw!`;
}

/** Redacts bearer values in text meant for logs of failed tests: keeps the prefix and 6 chars. */
function redact(s) {
  return String(s).replace(/\b(m[ac][tr]_[A-Za-z0-9]{6})[A-Za-z0-9_]+/g, '$1…');
}

/**
 * Records the HTTP exchanges of one test (openid-client's through `fetch`, the test's own through
 * `send`): method, URL, request headers and body, status, response headers and body.
 */
export class Recorder {
  constructor() {
    this.entries = [];
    /** A `fetch` for openid-client's customFetch option. */
    this.fetch = async (url, options = {}) => {
      const entry = {
        at: new Date().toISOString().slice(11, 23),
        method: options.method ?? 'GET',
        url: String(url),
        requestHeaders: Object.fromEntries(new Headers(options.headers ?? {})),
        requestBody: bodyText(options.body),
      };
      this.entries.push(entry);
      try {
        const res = await fetch(url, options);
        entry.status = res.status;
        entry.responseHeaders = Object.fromEntries(res.headers);
        entry.responseBody = await res.clone().text();
        return res;
      } catch (err) {
        entry.error = String(err?.cause ?? err);
        throw err;
      }
    };
  }

  /** Sends a request with http.mjs and records it. */
  async send(url, opts = {}) {
    const entry = {
      at: new Date().toISOString().slice(11, 23),
      method: opts.method ?? 'GET',
      url,
      requestHeaders: opts.headers ?? {},
      requestBody: opts.body ?? '',
    };
    this.entries.push(entry);
    try {
      const res = await request(url, opts);
      entry.status = res.status;
      entry.responseHeaders = res.headers;
      entry.responseBody = res.body;
      return res;
    } catch (err) {
      entry.error = String(err);
      throw err;
    }
  }

  /** A position in the record: `annotate(err, mark)` shows only what came after it. */
  mark() {
    return this.entries.length;
  }

  /** The last `n` exchanges after `since` as text, bearer tokens shortened. */
  text(n = 12, since = 0) {
    return this.entries
      .slice(since)
      .slice(-n)
      .map((e) => {
        const lines = [`[${e.at}] ${e.method} ${e.url}`];
        for (const [k, v] of Object.entries(e.requestHeaders)) {
          if (/^(authorization|content-type|x-mas-)/i.test(k)) lines.push(`  > ${k}: ${k.toLowerCase() === 'authorization' ? v.replace(/^(\w+ ).*/, '$1…') : v}`);
        }
        if (e.requestBody) lines.push(`  > ${redact(e.requestBody).slice(0, 600)}`);
        if (e.error) lines.push(`  < failed: ${e.error}`);
        else {
          lines.push(`  < ${e.status}`);
          for (const [k, v] of Object.entries(e.responseHeaders ?? {})) {
            if (/^(content-type|location|www-authenticate|cache-control)$/i.test(k)) lines.push(`  < ${k}: ${v}`);
          }
          if (e.responseBody) lines.push(`  < ${redact(e.responseBody).slice(0, 1200)}`);
        }
        return lines.join('\n');
      })
      .join('\n');
  }

  /** Adds the exchanges recorded after `since` to `err`'s message (once) and returns it. */
  annotate(err, since = 0) {
    if (err && typeof err === 'object' && !err.recorded) {
      err.recorded = true;
      const extra = err.error ? ` [error=${err.error}${err.error_description ? `: ${err.error_description}` : ''}; status=${err.status}]` : '';
      err.message = `${err.message}${extra}\n--- last HTTP exchanges:\n${this.text(12, since)}`;
    }
    return err;
  }
}

function bodyText(body) {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8');
  return `(${body.constructor?.name ?? typeof body})`;
}

/** openid-client options for this appliance: plain http allowed, every exchange recorded. */
function libraryOptions(recorder) {
  return { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: recorder.fetch };
}

/** Discovery from ORIGIN/auth/ (issuer checked by the library) for an existing client. */
export function discover(app, recorder, clientId = 'discovery-only', metadata, auth) {
  return oidc.discovery(new URL(issuerOf(app)), clientId, metadata, auth, libraryOptions(recorder));
}

/**
 * Registers a client at ORIGIN/auth/ through openid-client (discovery, then RFC 7591
 * registration; the library insists on 201). Returns its Configuration.
 */
export function registerClient(app, recorder, metadata, auth) {
  return oidc.dynamicClientRegistration(new URL(issuerOf(app)), metadata, auth, libraryOptions(recorder));
}

/**
 * The redirect target of a native client: an HTTP server of the test on 127.0.0.1 whose
 * `/callback` answers a small page and remembers every URL it received.
 */
export class LoopbackCallback {
  static async start() {
    const cb = new LoopbackCallback();
    await new Promise((resolve, reject) => {
      cb.server.once('error', reject);
      cb.server.listen(0, '127.0.0.1', resolve);
    });
    return cb;
  }

  constructor() {
    this.received = [];
    this.waiters = [];
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url, this.origin);
      if (url.pathname !== '/callback') {
        res.writeHead(404).end();
        return;
      }
      this.received.push(url);
      for (const w of this.waiters.splice(0)) w(url);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end('<!doctype html><title>Signed in</title><h1>Signed in</h1><p>You can close this window.</p>');
    });
  }

  get origin() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  /** The registered redirect URI. */
  get redirectUri() {
    return `${this.origin}/callback`;
  }

  /** Resolves with the next callback URL received (after `since` earlier ones). */
  next(since = this.received.length, timeoutMs = 30000) {
    if (this.received.length > since) return Promise.resolve(this.received[since]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no request to ${this.redirectUri} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((url) => {
        clearTimeout(timer);
        resolve(url);
      });
    });
  }

  close() {
    return new Promise((resolve) => {
      this.server.closeAllConnections?.();
      this.server.close(() => resolve());
    });
  }
}

/** The device scope of `deviceId` in the stable or unstable (MSC2967) spelling. */
export function matrixScopes(spelling, deviceId) {
  const ns = spelling === 'stable' ? 'urn:matrix:client' : 'urn:matrix:org.matrix.msc2967.client';
  return { api: `${ns}:api:*`, device: deviceId ? `${ns}:device:${deviceId}` : undefined };
}

/**
 * The authorization request of the code flow with PKCE S256 (fresh verifier, state and nonce);
 * `extra` adds or overrides parameters (a value of undefined removes one).
 */
export async function authorizationRequest(config, { redirectUri, scope, extra = {} }) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const params = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete params[k];
    else params[k] = v;
  }
  return { url: oidc.buildAuthorizationUrl(config, params), verifier, state, nonce, params };
}

/**
 * Goes through the appliance's pages as a person would: opens `url`, signs in with `user` when
 * the sign-in page appears (fields found by their labels), checks the consent page (the client's
 * name, the device ID when given) and presses its button. `waitForRedirect(page)` must resolve
 * once the browser reached the client. Returns what the consent page said.
 */
export async function signInAndConsent(browser, url, { user, clientName, deviceId, expectSignIn, waitForRedirect }) {
  const consent = {};
  await browser.step('open the authorization URL', async (page) => {
    await page.goto(String(url));
  });
  const signInShown = await browser.step('see the sign-in or the consent page', async (page) => {
    const signIn = page.getByRole('heading', { name: 'Sign in' });
    const allow = page.getByRole('heading', { name: /wants to access your account/ });
    await signIn.or(allow).first().waitFor();
    return signIn.isVisible();
  });
  if (expectSignIn !== undefined && signInShown !== expectSignIn) {
    await browser.step('sign-in page shown as expected', () => {
      throw new Error(expectSignIn ? 'expected the sign-in page, got the consent page' : 'expected the consent page (signed in already), got the sign-in page');
    });
  }
  if (signInShown) {
    await browser.step('sign in', async (page) => {
      await page.getByLabel('Username').fill(user.username);
      await page.getByLabel('Password').fill(user.password);
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await page.getByRole('heading', { name: /wants to access your account/ }).waitFor();
    });
  }
  await browser.step('read the consent page', async (page) => {
    const heading = await page.getByRole('heading', { name: /wants to access your account/ }).innerText();
    consent.heading = heading;
    consent.text = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
    if (clientName && !heading.includes(clientName)) {
      throw new Error(`the consent page does not name the client "${clientName}": ${heading}`);
    }
    if (deviceId && !consent.text.includes(deviceId)) {
      throw new Error(`the consent page does not show the device ID ${deviceId}`);
    }
  });
  await browser.step('approve on the consent page', async (page) => {
    await page.getByRole('button', { name: 'Continue', exact: true }).click();
    await waitForRedirect(page);
  });
  return consent;
}

/**
 * One complete code flow of a native client with a loopback redirect: the authorization request,
 * the pages in `browser`, the callback received by `callback`, the code exchanged by openid-client
 * (PKCE verifier, state, and the nonce when an ID token comes back). Returns
 * { tokens, request, callbackUrl, consent }.
 */
export async function codeFlow({ config, browser, callback, scope, user, clientName, deviceId, expectSignIn, extra, idTokenExpected = false }) {
  const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope, extra });
  const since = callback.received.length;
  const consent = await signInAndConsent(browser, req.url, {
    user,
    clientName,
    deviceId,
    expectSignIn,
    waitForRedirect: () => callback.next(since),
  });
  const callbackUrl = await callback.next(since);
  if (callbackUrl.searchParams.has('error')) {
    throw new Error(`the authorization ended with an error at the callback: ${callbackUrl}`);
  }
  const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: scope.split(' ').includes('openid') ? req.nonce : undefined,
    idTokenExpected,
  });
  return { tokens, request: req, callbackUrl, consent };
}

/** `appliance mas -- manage register-user NAME --password P --yes [--admin]`; throws on failure. */
export async function registerUser(app, username, { admin = false, password = strongPassword() } = {}) {
  const args = ['mas', '--', 'manage', 'register-user', username, '--password', password, '--yes'];
  if (admin) args.push('--admin');
  const r = await app.command(args);
  if (r.code !== 0) {
    throw new Error(`appliance ${args.join(' ').replace(password, '***')} exited ${r.code}:\n${[...r.stdout, ...r.stderr].join('\n')}`);
  }
  return { username, password, output: [...r.stdout, ...r.stderr].join('\n') };
}

/** Runs `appliance mas -- manage ARGS`; throws with its output on a non-zero exit. */
export async function manage(app, ...args) {
  const r = await app.command(['mas', '--', 'manage', ...args]);
  if (r.code !== 0) {
    throw new Error(`appliance mas -- manage ${args.join(' ')} exited ${r.code}:\n${[...r.stdout, ...r.stderr].join('\n')}`);
  }
  return [...r.stdout, ...r.stderr].join('\n');
}

/** GET /_matrix/client/v3/account/whoami through the public port with `token`. */
export function whoami(app, recorder, token) {
  return recorder.send(app.url('/_matrix/client/v3/account/whoami'), {
    headers: { authorization: `Bearer ${token}` },
  });
}

/**
 * MAS's introspection exactly as Synapse calls it (loopback, the shared secret as bearer, the
 * device-id header): the oracle for whether MAS itself considers a token active.
 */
export async function introspect(app, recorder, token, hint) {
  const body = new URLSearchParams({ token });
  if (hint) body.set('token_type_hint', hint);
  const res = await recorder.send(`http://127.0.0.1:${app.ports.mas}/auth/oauth2/introspect`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${app.sharedSecret()}`,
      'content-type': 'application/x-www-form-urlencoded',
      'x-mas-supports-device-id': '1',
    },
    body: body.toString(),
  });
  if (res.status !== 200) throw recorder.annotate(new Error(`introspection answered ${res.status}`));
  return res.json();
}

/** Runs `fn` and returns the openid-client error it throws (or fails when it does not throw). */
export async function expectOAuthError(what, fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error(`${what}: expected an error, but it succeeded`);
}

/**
 * A `test(name, fn, timeout)` for the tests of a suite sharing one appliance (harness `h`) and
 * one `Recorder`: a failing test gets the HTTP exchanges it made added to its error, and the
 * appliance's output is dumped once, at the first failure (later ones add only their own).
 * `fn` receives the recorder.
 */
export function recordedTest(h, rec) {
  let dumped = false;
  return (name, fn, timeout = 120000) =>
    test(name, { timeout }, async () => {
      const since = rec.mark();
      try {
        await fn(rec);
      } catch (err) {
        rec.annotate(err, since);
        if (!dumped) h.dump(err);
        dumped = true;
        throw err;
      }
    });
}
