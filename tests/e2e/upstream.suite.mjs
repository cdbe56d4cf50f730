// Platform SSO (issue 5): the platform's OIDC provider as MAS's upstream provider, end to end.
// A real provider (npm oidc-provider, tests/lib/idp.mjs) on loopback plays the platform; the
// appliance starts with the CLOUDRON_OIDC_* variables pointing at it (issuer, client, secret,
// name and the explicit endpoints, as the platform sets them), with real Synapse, and people sign
// in in headless Chromium:
//
// - SSO-only (the default with the platform provider): MAS's login page sends the browser
//   straight to the provider (code flow, state, nonce, PKCE S256, client_secret_basic, the
//   callback ORIGIN/auth/upstream/callback/01J00000000000000000PR0V1D); compat GET /login offers
//   no m.login.password and refuses one with 400 M_UNKNOWN;
// - an Element-X-style authorization (code + PKCE + the Matrix device scope) completed by signing
//   in at the provider: whoami is @<preferred_username>:<server_name>; the display name and the
//   verified email are imported (Synapse's profile and 3pid APIs); a second sign-in from another
//   browser maps to the same user (by subject) and creates no other;
// - legacy m.login.sso through the provider → m.login.token → whoami;
// - refused, each with its page and status, its one `warn` line (reason and details), and with
//   nothing created (no MAS user, no upstream link, no Synapse account): an ID token with a wrong
//   nonce, signed by another key, with an unknown key id, a wrong issuer, a wrong audience,
//   expired; the provider down when MAS redeems the code (502); a localpart taken by a local user
//   made first with `manage register-user` (409); a missing required claim, an invalid localpart,
//   a cancelled sign-in, a replayed callback, a locked user (403), a wrong client secret;
// - an unverified email is not imported; capitals in the username are lower-cased; two sign-ins
//   pending in two tabs both complete;
// - restarts of the same appliance: discovery down → the explicit endpoints (one warn line); an
//   operator provider (form_post) in <data>/config/mas.yaml after the platform one, whose id may
//   tune but not rewire the platform's provider (on_conflict: set links a platform user to the
//   local account of the same name); with APPLIANCE_PASSWORD_LOGIN=true both are offered (the login form and the
//   provider's button, m.login.password and m.login.sso); an appliance whose provider cannot be
//   reached starts, and its login page ends on the "unreachable" page (502), not a 500.
//
// upstream.<backend>.test.mjs run it once per backend.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { Browser, browserSkipReason, reEscape } from '../lib/browser.mjs';
import { skipReason, synapsePython } from '../lib/config.mjs';
import { Harness } from '../lib/harness.mjs';
import { checkPage } from '../lib/a11y.mjs';
import { request, waitFor } from '../lib/http.mjs';
import { PLATFORM_PROVIDER_ID, TestIdp } from '../lib/idp.mjs';
import { baseUrlOf, expectMatrixError, matrixClient, passwordLogin, tokenLogin } from '../lib/matrix.mjs';
import {
  LoopbackCallback,
  Recorder,
  authorizationRequest,
  manage,
  matrixScopes,
  oidc,
  randomAlnum,
  recordedTest,
  registerClient,
  registerUser,
  serverNameOf,
  whoami,
} from '../lib/oidc.mjs';
import { queryDatabase } from '../lib/pg.mjs';

const CALLBACK_PATH = `/auth/upstream/callback/${PLATFORM_PROVIDER_ID}`;

/** What Element X sends when it registers (with a loopback redirect). */
function elementXMetadata(redirectUri) {
  return {
    client_name: 'Element X (e2e)',
    client_uri: 'https://element-e2e.example.org/',
    application_type: 'native',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/**
 * Rows from MAS's database (SQLite file in the data dir, or schema `mas` of the appliance's
 * PostgreSQL database). `sql` uses $1-style placeholders.
 */
async function masRows(app, sql, params = []) {
  if (app.backend === 'postgres') {
    return (await queryDatabase(app.dbName, sql.replace(/\b(FROM|JOIN)\s+(\w+)/gi, '$1 mas.$2'), params)).map((r) => Object.values(r));
  }
  const db = path.join(app.dataDir, 'mas', 'mas.db');
  const script = 'import json,sqlite3,sys\nc=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True)\nprint(json.dumps([list(r) for r in c.execute(sys.argv[2],sys.argv[3:])]))';
  const out = execFileSync(synapsePython, ['-c', script, db, sql.replace(/\$(\d+)/g, '?$1'), ...params.map(String)], { encoding: 'utf8' });
  return JSON.parse(out);
}

/**
 * What exists for `username` / upstream `subject` at `providerId`: MAS users, links, and the
 * Synapse account.
 */
async function traces(app, username, subject = username, providerId = PLATFORM_PROVIDER_ID) {
  const users = await masRows(app, 'SELECT user_id FROM users WHERE username = $1', [username]);
  const links = await masRows(app, 'SELECT upstream_oauth_link_id, user_id FROM upstream_oauth_links WHERE upstream_oauth_provider_id = $1 AND subject = $2', [providerId, subject]);
  const synapse = await app.masApi('GET', `query_user?localpart=${encodeURIComponent(username)}`);
  return { users: users.length, links: links.length, linkedUsers: links.filter((l) => l[1]).length, synapse: synapse.status };
}

/**
 * `traces()` once the Synapse account exists: it comes from the provisioning job queued with a
 * new user, which runs right after the sign-in's commit, so a browser can land a moment before
 * it is done (Element X's token exchange, which the other tests wait for, takes longer).
 */
async function provisionedTraces(app, username, subject = username, providerId = PLATFORM_PROVIDER_ID) {
  await waitFor(`${username} provisioned in Synapse`, async () => (await traces(app, username, subject, providerId)).synapse === 200, { timeoutMs: 15000 });
  return traces(app, username, subject, providerId);
}

/** Declares the platform-SSO tests on `backend`. */
export function upstreamSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: platform SSO through a real OIDC provider (Chromium, real Synapse)`, { skip }, () => {
    const h = new Harness(`${backend}: upstream`);
    let app;
    let idp;
    let serverName;
    let callback;

    before(async () => {
      try {
        app = await h.appliance(backend);
        idp = await TestIdp.start(app.origin, { name: 'Test Cloud' });
        h.defer(() => idp.stop());
        h.watch({ name: 'test OIDC provider', dataDir: '-', logText: (n) => idp.logText(n) });
        Object.assign(app.extraEnv, await idp.env());
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
        callback = await LoopbackCallback.start();
        h.defer(() => callback.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /** A fresh browser (no MAS session, no provider session), closed at cleanup. */
    async function freshBrowser(label) {
      const b = await Browser.launch(`${backend}-${label}`);
      h.defer(() => b.close());
      return b;
    }

    /** Signs `account` in on the provider's page (it must come up). */
    async function signInAtProvider(browser, account) {
      await browser.step(`sign in at the provider as ${account.username}`, async (page) => {
        await page.getByRole('heading', { name: `Sign in to ${idp.name}` }).waitFor();
        assert.ok(page.url().startsWith(idp.issuer), `the provider's page is on the provider: ${page.url()}`);
        await page.getByLabel('Username').fill(account.username);
        await page.getByLabel('Password').fill(account.password);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      });
    }

    /**
     * Element X's sign-in: registration, authorization with PKCE and the Matrix scopes (no
     * openid), the provider's page when `account` is given (else the browser must already be
     * signed in to MAS), MAS's consent page, the code redeemed. Returns { tokens, deviceId }.
     */
    async function elementXSignIn(rec, browser, account) {
      const config = await registerClient(app, rec, elementXMetadata(callback.redirectUri));
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes('stable', deviceId);
      const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: `${api} ${device}` });
      const since = callback.received.length;
      await browser.step('open the authorization URL', (page) => page.goto(String(req.url)));
      if (account) await signInAtProvider(browser, account);
      await browser.step('approve on MAS\'s consent page', async (page) => {
        await page.getByRole('heading', { name: /wants to access your account/ }).waitFor();
        assert.ok(!page.url().includes('/upstream/link/'), `no confirmation page with skip_confirmation: ${page.url()}`);
        const text = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
        assert.ok(text.includes(deviceId), `the consent page shows the device ID ${deviceId}`);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await callback.next(since);
      });
      const callbackUrl = await callback.next(since);
      assert.ok(!callbackUrl.searchParams.has('error'), `error at the client's callback: ${callbackUrl}`);
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: req.verifier, expectedState: req.state });
      return { tokens, deviceId, config };
    }

    /**
     * A sign-in that MAS must refuse: a fresh browser opens MAS's login page (SSO-only: straight
     * to the provider), signs `account` in there, and the callback must answer `status` with a
     * page matching `text`, and MAS must log its refusal with `reason`. Returns { status, text }.
     */
    async function refusedSignIn(label, account, { status, text, reason }) {
      const logMark = app.log.length;
      const browser = await freshBrowser(label);
      const page = await browser.page();
      const answered = page.waitForResponse((r) => r.url().includes(CALLBACK_PATH) && r.request().isNavigationRequest(), { timeout: 60000 });
      answered.catch(() => {}); // awaited below; a failure before then must not be unhandled
      await browser.step('open MAS\'s login page', (p) => p.goto(`${app.origin}/auth/login`));
      await signInAtProvider(browser, account);
      const res = await browser.step('MAS answers the callback', () => answered);
      const outcome = await browser.step(`the ${status} page`, async (p) => {
        await p.waitForLoadState();
        const body = (await p.locator('body').innerText()).replace(/\s+/g, ' ');
        assert.equal(res.status(), status, `the callback's status (page: ${body.slice(0, 500)})`);
        assert.match(body, text);
        assert.doesNotMatch(body, /internal server error/i);
        return { status: res.status(), text: body };
      });
      if (reason) outcome.logLine = await assertRefusalLogged(reason, logMark);
      return outcome;
    }

    /**
     * Asserts that MAS logged its one `warn` line for a refusal with `reason` (after log index
     * `since`), naming the provider and never carrying the client secret.
     */
    async function assertRefusalLogged(reason, since) {
      const line = await waitFor(`a warn line "upstream login refused" with reason ${reason}`, () =>
        app.log.slice(since).find((l) => /upstream login refused/.test(l.line) && l.line.includes(reason)), { timeoutMs: 5000 });
      assert.match(line.line, /WARN/i, line.line);
      assert.ok(line.line.includes(PLATFORM_PROVIDER_ID), `the line names the provider: ${line.line}`);
      assert.ok(!line.line.includes(idp.clientSecret), 'never the client secret');
      return line.line;
    }

    /** Asserts nothing exists for `username`. */
    async function assertNothingCreated(username, what) {
      const t = await traces(app, username);
      assert.deepEqual(t, { users: 0, links: 0, linkedUsers: 0, synapse: 404 }, `${what}: nothing may be created for ${username}`);
    }

    check('SSO-only: MAS\'s login page redirects straight to the provider with code, state, nonce, PKCE S256 and the exact callback', async (rec) => {
      const login = await rec.send(app.url('/auth/login'));
      assert.equal(login.status, 302, `GET /auth/login: ${login.status} ${login.body.slice(0, 300)}`);
      const to = new URL(login.headers.location, app.origin);
      assert.equal(to.pathname, `/auth/upstream/authorize/${PLATFORM_PROVIDER_ID}`);
      const authorize = await rec.send(to.href.replace(app.origin, baseUrlOf(app)));
      assert.ok([302, 303].includes(authorize.status), `authorize: ${authorize.status} ${authorize.body.slice(0, 300)}`);
      const at = new URL(authorize.headers.location);
      assert.equal(`${at.origin}${at.pathname}`, `${idp.issuer}/auth`);
      const q = Object.fromEntries(at.searchParams);
      assert.equal(q.response_type, 'code');
      assert.equal(q.client_id, idp.clientId);
      assert.equal(q.redirect_uri, `${app.origin}${CALLBACK_PATH}`);
      assert.deepEqual(q.scope.split(' ').sort(), ['email', 'openid', 'profile']);
      assert.equal(q.code_challenge_method, 'S256');
      assert.ok(q.state && q.nonce && q.code_challenge, JSON.stringify(q));
      const cookies = [authorize.headers['set-cookie'] ?? []].flat().join('\n');
      assert.match(cookies, /upstream-oauth2-sessions=/, 'the browser is bound with the sessions cookie');
      assert.match(cookies, /HttpOnly/i);
      assert.match(cookies, /SameSite=Lax/i);
    });

    check('SSO-only: compat GET /login lists m.login.sso and m.login.token, no m.login.password; POST m.login.password is 400 M_UNKNOWN', async (rec) => {
      const flows = (await matrixClient(app, rec).loginFlows()).flows.map((f) => f.type);
      assert.ok(flows.includes('m.login.sso') && flows.includes('m.login.token'), JSON.stringify(flows));
      assert.ok(!flows.includes('m.login.password'), `m.login.password offered in SSO-only mode: ${JSON.stringify(flows)}`);
      const err = await expectMatrixError('m.login.password in SSO-only mode', () => passwordLogin(app, rec, { username: 'nobody', password: 'whatever-123' }));
      assert.equal(err.httpStatus, 400, `${err.httpStatus} ${err.errcode} ${err.message}`);
      assert.equal(err.errcode, 'M_UNKNOWN', err.message);
    });

    let alice;
    let aliceUserId;

    check('Element X: authorization (code + PKCE + device scope) completed at the provider → whoami is @<preferred_username>:<server_name>; profile and verified email imported', async (rec) => {
      alice = idp.addAccount({ username: 'alice', name: 'Alice Liddell', email: 'alice@wonderland.example' });
      const browser = await freshBrowser('alice');
      const before = idp.tokenRequests.length;
      const { tokens, deviceId } = await elementXSignIn(rec, browser, alice);
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, `whoami: ${me.body}`);
      assert.deepEqual(me.json().user_id, `@alice:${serverName}`);
      assert.equal(me.json().device_id, deviceId);

      // What MAS did at the provider: PKCE, client_secret_basic, the exact redirect URI, userinfo.
      const auth = idp.authorizations.at(-1);
      assert.equal(auth.code_challenge_method, 'S256');
      assert.equal(auth.redirect_uri, `${app.origin}${CALLBACK_PATH}`);
      const tokenReq = idp.tokenRequests.slice(before).at(-1);
      assert.deepEqual(
        { status: tokenReq.status, basic: tokenReq.basic, inBody: tokenReq.clientSecretInBody, verifier: tokenReq.codeVerifier, redirect: tokenReq.redirectUri },
        { status: 200, basic: true, inBody: false, verifier: true, redirect: `${app.origin}${CALLBACK_PATH}` },
      );
      assert.ok(idp.userinfoRequests.some((u) => u.bearer), 'userinfo fetched (fetch_userinfo: true)');

      // One user, one link, the email stored as verified in MAS.
      const t = await traces(app, 'alice');
      assert.deepEqual(t, { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
      [[aliceUserId]] = await masRows(app, 'SELECT user_id FROM users WHERE username = $1', ['alice']);
      const emails = await masRows(app, 'SELECT email FROM user_emails WHERE user_id = $1', [aliceUserId]);
      assert.deepEqual(emails.map((e) => e[0]), ['alice@wonderland.example']);

      // Synapse's profile and 3pid APIs show the imported display name and email (provisioning
      // is a job: wait for it).
      const mxid = `@alice:${serverName}`;
      const auth2 = { headers: { authorization: `Bearer ${tokens.access_token}` } };
      const profile = await waitFor('the display name in Synapse', async () => {
        const r = await rec.send(app.url(`/_matrix/client/v3/profile/${encodeURIComponent(mxid)}`), auth2);
        return r.status === 200 && r.json().displayname === 'Alice Liddell' && r.json();
      });
      assert.equal(profile.displayname, 'Alice Liddell');
      const threepids = await waitFor('the email in Synapse', async () => {
        const r = await rec.send(app.url('/_matrix/client/v3/account/3pid'), auth2);
        return r.status === 200 && r.json().threepids?.length && r.json().threepids;
      });
      assert.deepEqual(threepids.map((t) => [t.medium, t.address]), [['email', 'alice@wonderland.example']]);
    });

    check('a second sign-in from another browser maps to the same user by subject, and creates no other', async (rec) => {
      assert.ok(alice, 'needs the first sign-in');
      const usersBefore = (await masRows(app, 'SELECT user_id FROM users')).length;
      const browser = await freshBrowser('alice-2');
      const { tokens, deviceId } = await elementXSignIn(rec, browser, alice);
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.equal(me.json().user_id, `@alice:${serverName}`);
      assert.equal(me.json().device_id, deviceId);
      assert.equal((await masRows(app, 'SELECT user_id FROM users')).length, usersBefore, 'no new user');
      assert.deepEqual(await traces(app, 'alice'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
      const [[userId]] = await masRows(app, 'SELECT user_id FROM upstream_oauth_links WHERE subject = $1', ['alice']);
      assert.equal(userId, aliceUserId);
    });

    check('legacy m.login.sso through the provider → continue page → loginToken → m.login.token → whoami', async (rec) => {
      const bob = idp.addAccount({ username: 'bob', name: 'Bob Builder' });
      const browser = await freshBrowser('bob');
      const redirectUrl = `${callback.redirectUri}?client_state=legacy`;
      const since = callback.received.length;
      const upstreamCallback = (await browser.page()).waitForResponse((r) => r.url().includes(CALLBACK_PATH), { timeout: 60000 });
      upstreamCallback.catch(() => {});
      await browser.step('open the client\'s SSO redirect URL', (page) => page.goto(matrixClient(app, rec).getSsoLoginUrl(redirectUrl, 'sso')));
      await signInAtProvider(browser, bob);
      await browser.step('continue to the application', async (page) => {
        await page.waitForURL(/\/auth\/complete-compat-sso\//);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await callback.next(since);
      });
      const back = await callback.next(since);
      assert.equal(back.searchParams.get('client_state'), 'legacy');
      const loginToken = back.searchParams.get('loginToken');
      assert.ok(loginToken, `no loginToken in ${back}`);
      const login = await tokenLogin(app, rec, loginToken);
      assert.equal(login.user_id, `@bob:${serverName}`);
      const me = await matrixClient(app, rec, login).whoami();
      assert.equal(me.user_id, `@bob:${serverName}`);
      assert.equal(me.device_id, login.device_id);

      // The provider's answer replayed in the same browser: its session is used up.
      const used = (await upstreamCallback).url();
      const replay = await browser.step('replay the provider\'s callback', (page) => page.goto(used));
      assert.equal(replay.status(), 400, `a replayed callback: ${replay.status()}`);
    });

    check('legacy /login/sso/redirect/<provider id> goes straight to the provider', async (rec) => {
      const res = await rec.send(app.url(`/_matrix/client/v3/login/sso/redirect/${PLATFORM_PROVIDER_ID}?redirectUrl=${encodeURIComponent(callback.redirectUri)}`));
      assert.ok([302, 303, 307].includes(res.status), `${res.status} ${res.body.slice(0, 300)}`);
      // Straight to the provider, or to MAS's authorize route for it (one more hop, no page).
      let to = new URL(res.headers.location, app.origin);
      for (let hops = 0; hops < 4 && to.origin !== idp.issuer; hops++) {
        const next = await rec.send(to.href.replace(app.origin, baseUrlOf(app)));
        assert.ok([302, 303, 307].includes(next.status), `${to}: ${next.status} ${next.body.slice(0, 300)}`);
        to = new URL(next.headers.location, app.origin);
      }
      assert.equal(`${to.origin}${to.pathname}`, `${idp.issuer}/auth`);
    });

    // --- refused sign-ins: each with its page, nothing created ------------------------------

    // Each with what the log line's details must name (the one check that failed).
    const badIdTokens = [
      ['wrong-nonce', 'a wrong nonce', /nonce/i],
      ['other-key', 'a signature by another key', /signature/i],
      ['unknown-kid', 'a key id the provider never published', /kid|key/i],
      ['wrong-iss', 'a wrong issuer', /\biss\b|issuer/i],
      ['wrong-aud', 'a wrong audience', /\baud\b|audience/i],
      ['expired', 'an expired token', /\bexp\b|expired/i],
    ];
    for (const [mode, what, detail] of badIdTokens) {
      check(`an ID token with ${what} is refused (400, "could not verify"); nothing created`, async () => {
        const username = `bad-${mode}`.replace(/[^a-z0-9]/g, '');
        const account = idp.addAccount({ username });
        const before = idp.tampered;
        const jwksBefore = idp.jwksRequests;
        idp.tamper(mode);
        let logLine;
        try {
          ({ logLine } = await refusedSignIn(username, account, { status: 400, text: new RegExp(`could not verify.*${reEscape(idp.name)}`, 'i'), reason: 'id_token_invalid' }));
        } finally {
          idp.tamper(null);
        }
        assert.equal(idp.tampered, before + 1, 'MAS redeemed the code and got the rewritten ID token');
        assert.match(logLine, detail, `the log line says what was wrong: ${logLine}`);
        if (mode === 'unknown-kid') {
          assert.ok(idp.jwksRequests - jwksBefore <= 1, `an unknown kid refetches the JWKS at most once (${idp.jwksRequests - jwksBefore} fetches)`);
        }
        await assertNothingCreated(username, what);
      });
    }

    check('the provider down when MAS redeems the code: 502 "unreachable" page; nothing created; fine again once it is back', async () => {
      const account = idp.addAccount({ username: 'downer' });
      const tokenRequests = idp.tokenRequests.length;
      idp.goDownAfterSignIn();
      try {
        await refusedSignIn('downer', account, {
          status: 502,
          text: new RegExp(`could not reach ${reEscape(idp.name)}`, 'i'),
          reason: 'provider_unreachable',
        });
        assert.equal(idp.up, false, 'the provider went down after sending the browser back');
      } finally {
        idp.downAfterSignIn = false;
        await idp.restart();
      }
      assert.equal(idp.tokenRequests.length, tokenRequests, 'the code was never redeemed');
      await assertNothingCreated('downer', 'provider down');

      // Back up: the same person signs in fine (MAS did not cache the failure).
      const browser = await freshBrowser('downer-again');
      await browser.step('open MAS\'s login page', (p) => p.goto(`${app.origin}/auth/login`));
      await signInAtProvider(browser, account);
      await browser.step('signed in to MAS', (p) => p.waitForURL((u) => u.origin === app.origin && !u.pathname.startsWith('/auth/upstream/')));
      assert.deepEqual(await provisionedTraces(app, 'downer'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
    });

    check('an unverified email (email_verified false) is not imported; the account is created without it', async (rec) => {
      const gina = idp.addAccount({ username: 'gina', email: 'gina@unverified.example', emailVerified: false });
      const browser = await freshBrowser('gina');
      const { tokens } = await elementXSignIn(rec, browser, gina);
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.equal(me.json().user_id, `@gina:${serverName}`);
      const [[userId]] = await masRows(app, 'SELECT user_id FROM users WHERE username = $1', ['gina']);
      assert.deepEqual(await masRows(app, 'SELECT email FROM user_emails WHERE user_id = $1', [userId]), [], 'no email stored');
      const threepids = await rec.send(app.url('/_matrix/client/v3/account/3pid'), { headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(threepids.status, 200, threepids.body);
      assert.deepEqual(threepids.json().threepids, [], 'no email in Synapse');
    });

    check('a preferred_username with capitals becomes a lower-case localpart; one Matrix does not allow is refused (400, invalid_localpart), nothing created', async (rec) => {
      const kim = idp.addAccount({ username: 'Kim.Upper' });
      const { tokens } = await elementXSignIn(rec, await freshBrowser('kim'), kim);
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.equal(me.json().user_id, `@kim.upper:${serverName}`);

      const bad = idp.addAccount({ username: 'no spaces!', sub: 'nospaces' });
      await refusedSignIn('nospaces', bad, { status: 400, text: /cannot be used as a Matrix username/i, reason: 'invalid_localpart' });
      const links = await masRows(app, 'SELECT upstream_oauth_link_id FROM upstream_oauth_links WHERE subject = $1', ['nospaces']);
      assert.deepEqual(links, [], 'no link');
    });

    check('two sign-ins pending in two tabs of one browser: both complete (the sessions cookie keeps both)', async () => {
      const lena = idp.addAccount({ username: 'lena' });
      const browser = await freshBrowser('lena');
      const first = await browser.page();
      const second = await browser.context.newPage();
      for (const [name, page] of [['first', first], ['second', second]]) {
        await browser.step(`${name} tab: MAS's login page → the provider`, async () => {
          await page.goto(`${app.origin}/auth/login`);
          await page.getByRole('heading', { name: `Sign in to ${idp.name}` }).waitFor();
        });
      }
      for (const [name, page] of [['first', first], ['second', second]]) {
        await browser.step(`${name} tab: sign in → signed in to MAS`, async () => {
          const answered = page.waitForResponse((r) => r.url().includes(CALLBACK_PATH), { timeout: 30000 });
          answered.catch(() => {});
          await page.getByLabel('Username').fill(lena.username);
          await page.getByLabel('Password').fill(lena.password);
          await page.getByRole('button', { name: 'Sign in', exact: true }).click();
          const res = await answered;
          assert.ok(res.status() < 400, `${name} tab: the callback answered ${res.status()}: ${(await page.locator('body').innerText()).slice(0, 300)}`);
          await page.waitForURL((u) => u.origin === app.origin && !u.pathname.startsWith('/auth/upstream/'));
        });
      }
      assert.deepEqual(await provisionedTraces(app, 'lena'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
    });

    check('a linked user locked with `manage lock-user` is refused at the next sign-in (403, "locked")', async (rec) => {
      const hank = idp.addAccount({ username: 'hank' });
      const { tokens } = await elementXSignIn(rec, await freshBrowser('hank'), hank);
      assert.equal((await whoami(app, rec, tokens.access_token)).status, 200);
      await manage(app, 'lock-user', 'hank');
      const { text } = await refusedSignIn('hank-locked', hank, { status: 403, text: /locked/i, reason: 'user_locked' });
      assert.doesNotMatch(text, /wants to access your account/);
      assert.deepEqual(await traces(app, 'hank'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 }, 'nothing new');
    });

    check('a localpart taken by a local user (`manage register-user`) is refused (409, names the username); nothing linked or created', async () => {
      // A local account without a password (SSO-only mode has none), as an admin would make it.
      await manage(app, 'register-user', 'carol', '--yes');
      const account = idp.addAccount({ username: 'carol', name: 'Carol from the platform' });
      const { text } = await refusedSignIn('carol', account, { status: 409, text: /already taken/i, reason: 'localpart_conflict' });
      assert.match(text, /"carol"|carol/, 'the page names the username');
      assert.match(text, /administrator.*link/i, 'the page says the admin can link it');
      const t = await traces(app, 'carol');
      assert.deepEqual(t, { users: 1, links: 0, linkedUsers: 0, synapse: 200 }, 'only the local carol, not linked');
    });

    check('a missing required claim (no preferred_username) is refused (400, names the claim); nothing created', async () => {
      const account = idp.addAccount({ username: 'noname', omit: ['preferred_username'] });
      await refusedSignIn('noname', account, { status: 400, text: /did not send your username/i, reason: 'missing_claim' });
      await assertNothingCreated('noname', 'missing claim');
    });

    check('cancelling at the provider (access_denied) ends on the "cancelled" page (400); nothing created', async () => {
      idp.addAccount({ username: 'canceller' });
      const logMark = app.log.length;
      const browser = await freshBrowser('canceller');
      const page = await browser.page();
      const answered = page.waitForResponse((r) => r.url().includes(CALLBACK_PATH), { timeout: 60000 });
      answered.catch(() => {});
      await browser.step('open MAS\'s login page', (p) => p.goto(`${app.origin}/auth/login`));
      await browser.step('cancel at the provider', async (p) => {
        await p.getByRole('heading', { name: `Sign in to ${idp.name}` }).waitFor();
        await p.getByRole('button', { name: 'Cancel', exact: true }).click();
      });
      const res = await answered;
      assert.equal(res.status(), 400);
      assert.match(await page.locator('body').innerText(), /cancelled/i);
      await assertRefusalLogged('cancelled', logMark);
      await assertNothingCreated('canceller', 'cancelled');
    });

    check('an unknown state in a browser without the sessions cookie is refused (400)', async (rec) => {
      const res = await rec.send(app.url(`${CALLBACK_PATH}?code=abc&state=${randomAlnum(16)}`));
      assert.equal(res.status, 400, `${res.status} ${res.body.slice(0, 300)}`);
      assert.match(res.headers['content-type'] ?? '', /text\/html/);
    });

    // --- other configurations (restarts of the same appliance) ------------------------------

    check('a wrong CLOUDRON_OIDC_CLIENT_SECRET: the provider refuses the code; 400 page with its error code (token_error), nothing created', async () => {
      await app.stop();
      const secret = app.extraEnv.CLOUDRON_OIDC_CLIENT_SECRET;
      app.extraEnv.CLOUDRON_OIDC_CLIENT_SECRET = 'not-the-secret';
      try {
        app.start();
        await app.waitHealthy();
        const account = idp.addAccount({ username: 'wrongsecret' });
        const { logLine } = await refusedSignIn('wrongsecret', account, { status: 400, text: /error code: invalid_client/i, reason: 'token_error' });
        assert.ok(!logLine.includes('not-the-secret'), 'the log line never carries the secret');
        assert.equal(idp.tokenRequests.at(-1).error, 'invalid_client');
        await assertNothingCreated('wrongsecret', 'wrong client secret');
      } finally {
        await app.stop();
        app.extraEnv.CLOUDRON_OIDC_CLIENT_SECRET = secret;
      }
    });

    check('discovery unavailable at start: MAS falls back to the explicit CLOUDRON_OIDC_*_ENDPOINT variables (one warn line) and sign-in works', async (rec) => {
      await app.stop();
      idp.discoveryBroken = true;
      // Without discovery MAS cannot know the provider supports PKCE (pkce_method auto).
      idp.requirePkce = false;
      const logMark = app.log.length;
      try {
        app.start();
        await app.waitHealthy();
        const ivy = idp.addAccount({ username: 'ivy' });
        const discoveries = idp.discoveryRequests;
        const { tokens } = await elementXSignIn(rec, await freshBrowser('ivy'), ivy);
        const me = await whoami(app, rec, tokens.access_token);
        assert.equal(me.status, 200, me.body);
        assert.equal(me.json().user_id, `@ivy:${serverName}`);
        assert.ok(idp.discoveryRequests > discoveries, 'MAS tried discovery first');
        const warns = app.log.slice(logMark).filter((l) => /discovery failed; using the configured endpoints/.test(l.line));
        assert.equal(warns.length, 1, `one warn line for the fallback: ${warns.map((l) => l.line).join('\n')}`);
        assert.match(warns[0].line, new RegExp(PLATFORM_PROVIDER_ID));
      } finally {
        idp.discoveryBroken = false;
        idp.requirePkce = true;
      }
    });

    check('an operator provider in <data>/config/mas.yaml (response_mode form_post) comes after the platform one (an entry with the platform\'s id cannot rewire it: ignored, logged): the login page offers both, and the operator\'s works', async (rec) => {
      const partnerId = '01HQW90Z35CMXFJWQPHC3BGZGQ';
      const partner = await TestIdp.start(app.origin, { name: 'Partner Login', clientId: 'partner-client', providerId: partnerId });
      h.defer(() => partner.stop());
      h.watch({ name: 'partner OIDC provider', dataDir: '-', logText: (n) => partner.logText(n) });
      const overrides = path.join(app.dataDir, 'config', 'mas.yaml');
      fs.mkdirSync(path.dirname(overrides), { recursive: true });
      // JSON is YAML.
      fs.writeFileSync(overrides, JSON.stringify({
        upstream_oauth2: {
          providers: [
            // form_post: the provider's answer is a cross-site POST, which carries no SameSite=Lax cookie.
            // Without skip_confirmation, so the confirmation page is shown (and checked by axe).
            {
              ...partner.operatorProvider(),
              response_mode: 'form_post',
              claims_imports: { ...partner.operatorProvider().claims_imports, skip_confirmation: false },
            },
            // The platform's id may tune the platform provider but never rewire it: these are ignored.
            { id: PLATFORM_PROVIDER_ID, issuer: 'https://evil.example.org', client_id: 'evil', client_secret: 'evil' },
          ],
        },
      }));
      try {
        await app.stop();
        const logMark = app.log.length;
        app.start();
        await app.waitHealthy();
        const ignored = app.log.slice(logMark).find((l) => /operator override ignored/.test(l.line) && l.line.includes(PLATFORM_PROVIDER_ID));
        assert.ok(ignored, 'the supervisor logs the ignored keys of the entry with the reserved id');

        const login = await rec.send(app.url('/auth/login'));
        assert.equal(login.status, 200, `two providers: a page to choose, not a redirect (${login.status} ${login.headers.location ?? ''})`);
        const browser = await freshBrowser('jules');
        const jules = partner.addAccount({ username: 'jules', name: 'Jules Partner' });
        await browser.step('the login page lists the platform\'s provider first, then the operator\'s', async (page) => {
          await page.goto(`${app.origin}/auth/login`);
          const names = await page.locator('a, button').allInnerTexts();
          const platform = names.findIndex((n) => n.includes(idp.name));
          const operator = names.findIndex((n) => n.includes(partner.name));
          assert.ok(platform >= 0 && operator > platform, `buttons in order: ${JSON.stringify(names)}`);
          assert.equal(await page.getByLabel('Password').count(), 0, 'no password field in SSO-only mode');
          await page.getByRole('link', { name: partner.name }).or(page.getByRole('button', { name: partner.name })).first().click();
        });
        await browser.step(`sign in at ${partner.name}`, async (page) => {
          await page.getByRole('heading', { name: `Sign in to ${partner.name}` }).waitFor();
          await page.getByLabel('Username').fill(jules.username);
          await page.getByLabel('Password').fill(jules.password);
          await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        });
        await browser.step('MAS re-posts the cross-site form_post answer from its own origin (a button, no JavaScript)', async (page) => {
          await page.waitForURL((u) => u.origin === app.origin);
          if (page.url().includes('/auth/upstream/callback/')) {
            await checkPage(page, `${backend}-upstream-resubmit`);
            await page.getByRole('button', { name: 'Continue', exact: true }).click();
          }
          await page.waitForURL((u) => u.origin === app.origin && !u.pathname.startsWith('/auth/upstream/callback/'));
        });
        await browser.step('the confirmation page (skip_confirmation off): create the account', async (page) => {
          await page.getByRole('heading', { name: 'Create your account' }).waitFor();
          await checkPage(page, `${backend}-upstream-link`);
          await page.getByRole('button', { name: 'Create account', exact: true }).click();
          await page.waitForURL((u) => u.origin === app.origin && !u.pathname.startsWith('/auth/upstream/'));
        });
        assert.deepEqual(await provisionedTraces(app, 'jules', 'jules', partnerId), { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
        assert.equal(partner.authorizations.at(-1).response_mode, 'form_post');
        assert.equal(partner.tokenRequests.at(-1)?.status, 200);
        assert.equal(idp.tokenRequests.filter((t) => t.redirectUri?.includes(partnerId)).length, 0);
      } finally {
        fs.rmSync(overrides, { force: true });
      }
    });

    check('tuning the platform provider with on_conflict: set in <data>/config/mas.yaml: a platform user takes over the local account of the same name (linked, no second user)', async (rec) => {
      await manage(app, 'register-user', 'quincy', '--yes');
      const quincy = idp.addAccount({ username: 'quincy', name: 'Quincy from the platform' });
      const overrides = path.join(app.dataDir, 'config', 'mas.yaml');
      fs.mkdirSync(path.dirname(overrides), { recursive: true });
      fs.writeFileSync(overrides, JSON.stringify({
        upstream_oauth2: { providers: [{ id: PLATFORM_PROVIDER_ID, claims_imports: { localpart: { on_conflict: 'set' } } }] },
      }));
      try {
        await app.stop();
        app.start();
        await app.waitHealthy();
        const rendered = fs.readFileSync(path.join(app.runDir, 'mas.yaml'), 'utf8');
        assert.match(rendered, /on_conflict: set/, 'the tuning reaches the rendered config');
        assert.match(rendered, new RegExp(`issuer: ['"]?${reEscape(idp.issuer)}`), 'the platform wiring stays');
        const { tokens } = await elementXSignIn(rec, await freshBrowser('quincy'), quincy);
        const who = await whoami(app, rec, tokens.access_token);
        assert.equal(who.status, 200);
        assert.equal((await who.json()).user_id, `@quincy:${serverName}`);
        assert.deepEqual(await traces(app, 'quincy'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 }, 'the local quincy, now linked');
      } finally {
        fs.rmSync(overrides, { force: true });
      }
    });

    check('APPLIANCE_PASSWORD_LOGIN=true: the login page has the form and the provider\'s button; compat offers both; both work', async (rec) => {
      await app.stop();
      app.extraEnv.APPLIANCE_PASSWORD_LOGIN = 'true';
      app.start();
      await app.waitHealthy();
      const dave = await registerUser(app, 'dave');

      const flows = (await matrixClient(app, rec).loginFlows()).flows.map((f) => f.type);
      assert.ok(flows.includes('m.login.password') && flows.includes('m.login.sso'), JSON.stringify(flows));
      const login = await passwordLogin(app, rec, dave);
      assert.equal(login.user_id, `@dave:${serverName}`);

      const browser = await freshBrowser('both');
      await browser.step('the login page shows the form and the button', async (page) => {
        const res = await page.goto(`${app.origin}/auth/login`);
        assert.equal(res.status(), 200);
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await page.getByLabel('Username').waitFor();
        await page.getByLabel('Password').waitFor();
        await page.getByRole('link', { name: new RegExp(reEscape(idp.name)) }).or(page.getByRole('button', { name: new RegExp(reEscape(idp.name)) })).first().click();
      });
      const erin = idp.addAccount({ username: 'erin', name: 'Erin Both' });
      await signInAtProvider(browser, erin);
      await browser.step('signed in to MAS as erin', async (page) => {
        await page.waitForURL((u) => u.origin === app.origin && !u.pathname.startsWith('/auth/upstream/'));
        const text = await page.locator('body').innerText();
        assert.match(text, /erin/i);
      });
      assert.deepEqual(await provisionedTraces(app, 'erin'), { users: 1, links: 1, linkedUsers: 1, synapse: 200 });
    });

    check('a provider that cannot be reached: MAS still starts; its login page ends on the "unreachable" page (502), no 500', async (rec) => {
      await app.stop();
      delete app.extraEnv.APPLIANCE_PASSWORD_LOGIN;
      for (const k of Object.keys(app.extraEnv)) if (k.startsWith('CLOUDRON_OIDC_')) delete app.extraEnv[k];
      Object.assign(app.extraEnv, await idp.env({ unreachable: true, explicitEndpoints: false }));
      const logMark = app.log.length;
      app.start();
      await app.waitHealthy();
      const login = await rec.send(app.url('/auth/login'));
      assert.equal(login.status, 302, `${login.status} ${login.body.slice(0, 300)}`);
      const to = new URL(login.headers.location, app.origin);
      const res = await request(to.href.replace(app.origin, baseUrlOf(app)));
      assert.equal(res.status, 502, `authorize with the provider unreachable: ${res.status} ${res.body.slice(0, 500)}`);
      assert.match(res.headers['content-type'] ?? '', /text\/html/);
      assert.match(res.body, new RegExp(`could not reach ${reEscape(idp.name)}`));
      await assertRefusalLogged('provider_unreachable', logMark);
    });
  });
}
