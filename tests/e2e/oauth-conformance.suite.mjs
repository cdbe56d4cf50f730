// Conformance of the built-in MAS with a real relying-party library (openid-client) through the
// appliance's public port, with real Synapse behind it: discovery from ORIGIN/auth/, dynamic
// registration (MSC2966 rules), the code flow with PKCE S256 through headless Chromium (the
// appliance's own sign-in and consent pages), the ID token checked against the JWKS, refresh with
// rotation and the lost-response rule, userinfo, and revocation. One appliance per backend; its
// tests run one after the other and each does its own code flow, so one failure does not hide the
// others. oauth-conformance.<backend>.test.mjs run it once per backend.
//
// Password attempts: MAS allows a burst of 3 per client IP, then one per 20 s
// (docs/protocol.md#rate-limits), and every browser here is 127.0.0.1. This suite makes exactly 3
// (alice in the shared browser, a wrong and a right password in the pages test); a test that signs
// in once more must reuse a signed-in browser or wait.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness } from '../lib/harness.mjs';
import {
  LoopbackCallback,
  Recorder,
  authorizationRequest,
  codeFlow,
  discover,
  expectOAuthError,
  introspect,
  issuerOf,
  oidc,
  registerClient,
  registerUser,
  signInAndConsent,
  recordedTest,
} from '../lib/oidc.mjs';

/** `mat_` / `mar_` + 30 alphanumerics + `_` + 6-character checksum (docs/protocol.md#tokens). */
const ACCESS_TOKEN = /^mat_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$/;
const REFRESH_TOKEN = /^mar_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$/;

/** The `error` of an openid-client ResponseBodyError (or what was thrown instead). */
function oauthErrorOf(err) {
  return err?.error ?? `(no OAuth error: ${err?.constructor?.name}: ${err?.message?.split('\n')[0]})`;
}

/** The HTTP status behind an openid-client error (ResponseBodyError, challenge or processing error). */
function statusOf(err) {
  return err?.status ?? err?.response?.status ?? err?.cause?.status;
}

/** Declares the conformance tests on `backend`. */
export function conformanceSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: OAuth 2.0 / OIDC conformance (openid-client, Chromium)`, { skip }, () => {
    const h = new Harness(`${backend}: oauth conformance`);
    let app;
    /** alice, made with `manage register-user` by the first test that signs in. */
    let alice;
    let aliceMade;
    let browser;
    let callback;
    /** The native client of most tests (public, loopback redirect), registered in one test. */
    let nativeConfig;
    const nativeMetadata = () => ({
      client_name: 'E2E native RP',
      client_uri: 'https://rp-e2e.example.org/',
      application_type: 'native',
      redirect_uris: [callback.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        browser = await Browser.launch(`${backend}-conformance`);
        callback = await LoopbackCallback.start();
        h.defer(() => browser.close());
        h.defer(() => callback.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    /** A test with a Recorder; failures carry the HTTP exchanges and dump the appliance. */
    // One record for the suite (clients registered in one test make requests in later ones);
    // a failing test shows the exchanges made since it started.
    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /** Creates alice once (not in `before`: the tests that need no user run without her). */
    async function ensureAlice() {
      aliceMade ??= registerUser(app, 'alice');
      alice = await aliceMade;
      return alice;
    }

    /** The native client (registered here when the registration test did not). */
    async function native(rec) {
      nativeConfig ??= await registerClient(app, rec, nativeMetadata());
      return nativeConfig;
    }

    /** A code flow of alice with the native client. */
    const flow = async (rec, scope = 'openid', extra) =>
      codeFlow({
        config: await native(rec),
        browser,
        callback,
        scope,
        user: await ensureAlice(),
        clientName: 'E2E native RP',
        extra,
        idTokenExpected: scope.split(' ').includes('openid'),
      });

    check('discovery from ORIGIN/auth/: issuer ORIGIN/auth/, every endpoint public, republished by Synapse', async (rec) => {
      // The library fetches ORIGIN/auth/.well-known/openid-configuration and refuses an issuer
      // other than the one asked for.
      const config = await discover(app, rec);
      const meta = config.serverMetadata();
      const base = issuerOf(app);
      assert.equal(meta.issuer, base);
      const endpoints = {
        authorization_endpoint: 'authorize',
        token_endpoint: 'oauth2/token',
        jwks_uri: 'oauth2/keys.json',
        registration_endpoint: 'oauth2/registration',
        introspection_endpoint: 'oauth2/introspect',
        revocation_endpoint: 'oauth2/revoke',
        userinfo_endpoint: 'oauth2/userinfo',
        account_management_uri: 'account/',
      };
      for (const [field, rel] of Object.entries(endpoints)) {
        assert.equal(meta[field], `${base}${rel}`, `${field} must be the public URL ${base}${rel}`);
      }
      for (const [field, value] of Object.entries(meta)) {
        if (typeof value === 'string' && /^https?:/.test(value)) {
          assert.ok(value.startsWith(base), `${field} = ${value} is not under the public base ${base}`);
        }
      }
      for (const [field, must] of Object.entries({
        response_types_supported: ['code'],
        grant_types_supported: ['authorization_code', 'refresh_token'],
        code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
        subject_types_supported: ['public'],
        response_modes_supported: ['query', 'fragment', 'form_post'],
      })) {
        assert.ok(Array.isArray(meta[field]), `${field} missing: ${JSON.stringify(meta)}`);
        for (const v of must) assert.ok(meta[field].includes(v), `${field} lacks ${v}: ${JSON.stringify(meta[field])}`);
      }
      assert.ok(Array.isArray(meta.prompt_values_supported), 'prompt_values_supported missing');
      assert.ok(!meta.account_management_uri.includes('?'), 'account_management_uri must have no query');

      // Synapse republishes the same document to Matrix clients.
      const own = await rec.send(app.url('/auth/.well-known/openid-configuration'));
      assert.equal(own.status, 200, own.body);
      const republished = await rec.send(app.url('/_matrix/client/v1/auth_metadata'));
      assert.equal(republished.status, 200, republished.body);
      assert.deepEqual(republished.json(), own.json());

      // The JWKS: public halves only, an RS256 key and an ES256 key, distinct kids.
      const jwks = await rec.send(meta.jwks_uri.replace(app.origin, `http://127.0.0.1:${app.ports.http}`));
      assert.equal(jwks.status, 200, jwks.body);
      const { keys } = jwks.json();
      assert.ok(Array.isArray(keys) && keys.length >= 2, jwks.body);
      assert.ok(keys.some((k) => k.kty === 'RSA' && k.n && k.e), 'no RSA key');
      assert.ok(keys.some((k) => k.kty === 'EC' && k.crv === 'P-256'), 'no P-256 key');
      for (const k of keys) {
        assert.ok(k.kid, `key without kid: ${JSON.stringify(k)}`);
        for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(priv in k), `private part ${priv} published`);
      }
      assert.equal(new Set(keys.map((k) => k.kid)).size, keys.length, 'kids must be distinct');
    });

    check('registration of a web client (MSC2966): 201 with client_id, client_secret and the metadata', async (rec) => {
      const metadata = {
        client_name: 'E2E web RP',
        client_uri: 'https://web-e2e.example.org/',
        logo_uri: 'https://web-e2e.example.org/logo.png',
        policy_uri: 'https://web-e2e.example.org/privacy',
        tos_uri: 'https://web-e2e.example.org/terms',
        application_type: 'web',
        redirect_uris: ['https://web-e2e.example.org/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      };
      // dynamicClientRegistration insists on 201 and a client_id.
      const config = await registerClient(app, rec, metadata);
      const client = config.clientMetadata();
      assert.match(client.client_id, /^[0-9A-HJKMNP-TV-Z]{26}$/, `client_id should be a ULID: ${client.client_id}`);
      assert.match(client.client_secret ?? '', /^[A-Za-z0-9]{20}$/, 'a client_secret_basic client gets a 20-character secret');
      assert.equal(client.token_endpoint_auth_method, 'client_secret_basic');
      assert.deepEqual(client.redirect_uris, metadata.redirect_uris);
      assert.equal(client.client_uri, metadata.client_uri);
      assert.equal(client.application_type ?? 'web', 'web');

      // A web client whose redirect is not on the client_uri host is refused, with a 400 and an
      // RFC 7591 error.
      const err = await expectOAuthError('web client redirecting to another host', () =>
        registerClient(app, rec, { ...metadata, redirect_uris: ['https://elsewhere-e2e.example.net/callback'] }),
      );
      assert.equal(statusOf(err), 400, String(err.message));
      assert.ok(['invalid_redirect_uri', 'invalid_client_metadata'].includes(err.error), `error ${oauthErrorOf(err)}`);
    });

    check('registration of a native client with a loopback redirect; identical public metadata → same client_id', async (rec) => {
      nativeConfig = await registerClient(app, rec, nativeMetadata());
      const client = nativeConfig.clientMetadata();
      assert.match(client.client_id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(client.client_secret, undefined, 'a public client gets no secret');
      assert.equal(client.token_endpoint_auth_method, 'none');
      assert.deepEqual(client.redirect_uris, [callback.redirectUri]);
      const again = await registerClient(app, rec, nativeMetadata());
      assert.equal(again.clientMetadata().client_id, client.client_id, 'identical public clients are deduplicated');
    });

    check('code + PKCE S256 in Chromium: tokens in the MAS format, ID token verified against the JWKS, nonce checked, code single-use', async (rec) => {
      const config = await native(rec);
      // With this the library also verifies the ID token's signature with the keys from jwks_uri
      // (otherwise it checks only the claims).
      oidc.enableNonRepudiationChecks(config);
      const mark = rec.mark();
      const { tokens, request, callbackUrl, consent } = await flow(rec, 'openid');
      const jwksUri = config.serverMetadata().jwks_uri;
      assert.ok(
        rec.entries.slice(mark).some((e) => e.url === jwksUri && e.status === 200) || rec.entries.some((e) => e.url === jwksUri && e.status === 200),
        'the library fetched the JWKS to verify the ID token',
      );
      assert.equal(callbackUrl.searchParams.get('state'), request.state);
      assert.match(callbackUrl.searchParams.get('code') ?? '', /^[A-Za-z0-9]{32}$/, `code: ${callbackUrl}`);
      assert.match(consent.text, /alice/, 'the consent page names the signed-in user');

      assert.match(tokens.access_token, ACCESS_TOKEN);
      assert.match(tokens.refresh_token ?? '', REFRESH_TOKEN);
      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(Number.isInteger(tokens.expires_in) && tokens.expires_in > 0, `expires_in ${tokens.expires_in}`);
      const tokenExchange = rec.entries.findLast((e) => e.url.endsWith('/oauth2/token'));
      assert.match(tokenExchange.responseHeaders['cache-control'] ?? '', /no-store/);

      const claims = tokens.claims();
      assert.ok(claims, 'an ID token for the openid scope');
      assert.equal(claims.iss, issuerOf(app));
      assert.equal(claims.aud, config.clientMetadata().client_id);
      assert.equal(claims.nonce, request.nonce);
      assert.ok(claims.sub, 'sub');
      assert.ok(claims.exp > claims.iat, 'exp after iat');
      if (claims.at_hash !== undefined) {
        // OIDC Core §3.1.3.6: the left half of the SHA-256 of the access token.
        const digest = crypto.createHash('sha256').update(tokens.access_token).digest();
        assert.equal(claims.at_hash, digest.subarray(0, 16).toString('base64url'), 'at_hash');
      }
      const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString());
      assert.equal(header.alg, 'RS256', 'ID tokens are RS256 by default');

      // The same code again: invalid_grant.
      const replay = await expectOAuthError('second exchange of the code', () =>
        oidc.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce }),
      );
      assert.equal(oauthErrorOf(replay), 'invalid_grant');
    });

    check('PKCE: a public client without S256 is refused at /authorize (a page with the way back); a wrong code_verifier gets invalid_grant', async (rec) => {
      const config = await native(rec);
      // A dynamically registered client is not redirected to before the person did anything
      // (RFC 9700 §4.11.2): the page names it and links back to its (valid) redirect URI with
      // the error and the state.
      for (const [what, extra] of [
        ['no code_challenge', { code_challenge: undefined, code_challenge_method: undefined }],
        ['code_challenge_method=plain', { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }],
      ]) {
        const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: 'openid', extra });
        const res = await rec.send(req.url.href.replace(app.origin, `http://127.0.0.1:${app.ports.http}`));
        assert.equal(res.status, 400, `${what}: expected the error page, got ${res.status}`);
        assert.equal(res.headers.location, undefined, `${what}: no redirect`);
        assert.match(res.headers['content-security-policy'] ?? '', /default-src 'none'/, what);
        const html = res.body.replaceAll('&#x2f;', '/').replaceAll('&amp;', '&');
        assert.match(html, /E2E native RP/, `${what}: the client is named`);
        const href = html.match(/href="(http:\/\/127\.0\.0\.1[^"]*)"/)?.[1];
        assert.ok(href, `${what}: a link back to the client in ${html}`);
        const to = new URL(href);
        assert.equal(`${to.origin}${to.pathname}`, callback.redirectUri, `${what}: links to ${to}`);
        assert.equal(to.searchParams.get('error'), 'invalid_request', `${what}: ${to}`);
        assert.equal(to.searchParams.get('state'), req.state, `${what}: state must come back`);
        assert.ok(!to.searchParams.has('code'), `${what}: no code`);
      }

      // A complete flow, then the exchange with another verifier.
      const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: 'openid' });
      const since = callback.received.length;
      await signInAndConsent(browser, req.url, { user: await ensureAlice(), waitForRedirect: () => callback.next(since) });
      const url = await callback.next(since);
      const err = await expectOAuthError('exchange with a wrong code_verifier', () =>
        oidc.authorizationCodeGrant(config, url, { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: req.state, expectedNonce: req.nonce }),
      );
      assert.equal(oauthErrorOf(err), 'invalid_grant');
    });

    check('the pages, without JavaScript: a wrong password is refused on the sign-in page; Cancel on the consent page sends access_denied; DENY framing, HttpOnly SameSite=Lax cookies under /auth/', async (rec) => {
      const config = await native(rec);
      const user = await ensureAlice();
      // A browser of its own (not signed in yet), with JavaScript off: the pages need none.
      const fresh = await Browser.launch(`${backend}-pages`, { javaScriptEnabled: false });
      const pages = [];
      fresh.context.on('response', (res) => {
        if (res.request().resourceType() === 'document' && res.url().startsWith(`${app.origin}/auth/`)) pages.push(res);
      });
      try {
        const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: 'openid' });
        const since = callback.received.length;
        await fresh.step('sign in with a wrong password', async (page) => {
          await page.goto(String(req.url));
          await page.getByRole('heading', { name: 'Sign in' }).waitFor();
          await page.getByLabel('Username').fill(user.username);
          await page.getByLabel('Password').fill(`${user.password}-wrong`);
          await page.getByRole('button', { name: 'Continue', exact: true }).click();
          await page.getByRole('alert').waitFor();
          assert.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'still on the sign-in page');
        });
        await fresh.step('sign in with the right password, then cancel', async (page) => {
          await page.getByLabel('Username').fill(user.username);
          await page.getByLabel('Password').fill(user.password);
          await page.getByRole('button', { name: 'Continue', exact: true }).click();
          await page.getByRole('heading', { name: /wants to access your account/ }).waitFor();
          await page.getByRole('button', { name: 'Cancel', exact: true }).click();
          await callback.next(since);
        });
        for (const res of pages) {
          if (res.status() >= 300 && res.status() < 400) continue;
          assert.equal((res.headers()['x-frame-options'] ?? '').toUpperCase(), 'DENY', `X-Frame-Options of ${res.url()} (${res.status()})`);
        }
        assert.ok(pages.length >= 3, `pages seen: ${pages.map((r) => r.url()).join(' ')}`);
        const cookies = await fresh.context.cookies(`${app.origin}/auth/`);
        assert.ok(cookies.length > 0, 'the sign-in set cookies');
        for (const c of cookies) {
          assert.equal(c.httpOnly, true, `cookie ${c.name} must be HttpOnly`);
          assert.equal(c.sameSite, 'Lax', `cookie ${c.name} must be SameSite=Lax`);
          assert.equal(c.path, '/auth/', `cookie ${c.name} path`);
          assert.equal(c.secure, false, `cookie ${c.name}: Secure only on https origins`);
        }
        const url = callback.received[since];
        assert.equal(url.searchParams.get('error'), 'access_denied', String(url));
        assert.equal(url.searchParams.get('state'), req.state, String(url));
        assert.ok(!url.searchParams.has('code'), String(url));
      } finally {
        await fresh.close();
      }
    });

    check('userinfo: the ID token\'s sub and the username; a bad token is refused with 401', async (rec) => {
      const config = await native(rec);
      const { tokens } = await flow(rec, 'openid');
      const sub = tokens.claims().sub;
      const info = await oidc.fetchUserInfo(config, tokens.access_token, sub);
      assert.equal(info.sub, sub);
      assert.equal(info.username, 'alice');
      const bad = await expectOAuthError('userinfo with a made-up token', () =>
        oidc.fetchUserInfo(config, 'mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4', sub),
      );
      assert.equal(statusOf(bad), 401, `${bad.constructor.name}: ${bad.message}`);
    });

    check('refresh: a new pair, the old access token revoked; replaying the consumed refresh token once the new pair was used ends the session', async (rec) => {
      const config = await native(rec);
      const { tokens: t0 } = await flow(rec, 'openid');
      const t1 = await oidc.refreshTokenGrant(config, t0.refresh_token);
      assert.match(t1.access_token, ACCESS_TOKEN);
      assert.match(t1.refresh_token ?? '', REFRESH_TOKEN, 'refresh tokens rotate');
      assert.notEqual(t1.access_token, t0.access_token);
      assert.notEqual(t1.refresh_token, t0.refresh_token);
      assert.ok(Number.isInteger(t1.expires_in) && t1.expires_in > 0);

      assert.equal((await introspect(app, rec, t0.access_token)).active, false, 'the old access token is revoked by the refresh');
      // Synapse introspecting the new access token marks it used...
      const active = await introspect(app, rec, t1.access_token);
      assert.equal(active.active, true, JSON.stringify(active));
      assert.equal(active.username, 'alice');
      assert.ok(Number.isInteger(active.expires_in), `expires_in must be an integer: ${JSON.stringify(active)}`);
      const info = await oidc.fetchUserInfo(config, t1.access_token, t0.claims().sub);
      assert.equal(info.username, 'alice');
      // ...so the consumed refresh token coming back is a replay: refused, and the whole
      // session ends (RFC 9700 §4.14.2).
      const replay = await expectOAuthError('replay of a consumed refresh token after its successor was used', () =>
        oidc.refreshTokenGrant(config, t0.refresh_token),
      );
      assert.equal(oauthErrorOf(replay), 'invalid_grant');
      assert.equal((await introspect(app, rec, t1.access_token)).active, false, 'the replay ended the session');
      const gone = await expectOAuthError('userinfo after the replay ended the session', () =>
        oidc.fetchUserInfo(config, t1.access_token, t0.claims().sub),
      );
      assert.equal(statusOf(gone), 401, `${gone.constructor.name}: ${gone.message}`);
    });

    check('refresh, lost response: replaying the consumed token before the new pair is used gives a fresh pair and revokes the lost one', async (rec) => {
      const config = await native(rec);
      const { tokens: t0 } = await flow(rec, 'openid');
      const lost = await oidc.refreshTokenGrant(config, t0.refresh_token); // the client never saw this
      const t2 = await oidc.refreshTokenGrant(config, t0.refresh_token);
      assert.match(t2.access_token, ACCESS_TOKEN);
      assert.notEqual(t2.access_token, lost.access_token);
      assert.notEqual(t2.refresh_token, lost.refresh_token);
      assert.equal((await introspect(app, rec, lost.access_token)).active, false, 'the lost access token is revoked');
      const err = await expectOAuthError('refresh with the lost refresh token', () => oidc.refreshTokenGrant(config, lost.refresh_token));
      assert.equal(oauthErrorOf(err), 'invalid_grant');
      assert.equal((await introspect(app, rec, t2.access_token)).active, true, 'the fresh pair works');
      const t3 = await oidc.refreshTokenGrant(config, t2.refresh_token);
      assert.match(t3.access_token, ACCESS_TOKEN);
    });

    check('revoke: 200 accepted by the library, the whole session ends (access or refresh token); unknown tokens 200', async (rec) => {
      const config = await native(rec);
      for (const which of ['access_token', 'refresh_token']) {
        const { tokens } = await flow(rec, 'openid');
        assert.equal((await introspect(app, rec, tokens.access_token)).active, true);
        await oidc.tokenRevocation(config, tokens[which], { token_type_hint: which }); // throws unless 200
        assert.equal((await introspect(app, rec, tokens.access_token)).active, false, `access token after revoking the ${which}`);
        assert.equal((await introspect(app, rec, tokens.refresh_token, 'refresh_token')).active, false, `refresh token after revoking the ${which}`);
        const err = await expectOAuthError(`refresh after revoking the ${which}`, () => oidc.refreshTokenGrant(config, tokens.refresh_token));
        assert.equal(oauthErrorOf(err), 'invalid_grant');
        const denied = await expectOAuthError(`userinfo after revoking the ${which}`, () =>
          oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck),
        );
        assert.equal(statusOf(denied), 401, `${denied.constructor.name}: ${denied.message}`);
      }
      await oidc.tokenRevocation(config, 'mat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_96elV4');
      await oidc.tokenRevocation(config, 'not-a-token-at-all');
    });

    check('a confidential web client: code flow in Chromium to its https redirect, client_secret_basic at token and revoke; a wrong secret is invalid_client', async (rec) => {
      const host = 'conf-e2e.example.org';
      const config = await registerClient(app, rec, {
        client_name: 'E2E confidential RP',
        client_uri: `https://${host}/`,
        application_type: 'web',
        redirect_uris: [`https://${host}/oauth/callback`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      const { client_id: clientId, client_secret: secret } = config.clientMetadata();
      assert.ok(secret, 'secret issued');
      // The library authenticates as registered: HTTP basic.
      const basic = await oidc.discovery(new URL(issuerOf(app)), clientId, secret, oidc.ClientSecretBasic(secret), {
        execute: [oidc.allowInsecureRequests],
        [oidc.customFetch]: rec.fetch,
      });
      oidc.enableNonRepudiationChecks(basic);

      // The browser really follows the redirect to https://conf-e2e.example.org/...; the test
      // answers it in place of that host.
      const landed = [];
      await browser.context.route(`https://${host}/**`, (route) => {
        landed.push(new URL(route.request().url()));
        return route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>RP</h1>' });
      });
      try {
        const req = await authorizationRequest(basic, { redirectUri: `https://${host}/oauth/callback`, scope: 'openid' });
        await signInAndConsent(browser, req.url, {
          user: await ensureAlice(),
          clientName: 'E2E confidential RP',
          waitForRedirect: (page) => page.waitForURL((u) => u.host === host),
        });
        assert.equal(landed.length, 1, `redirects seen: ${landed.join(' ')}`);
        const tokens = await oidc.authorizationCodeGrant(basic, landed[0], {
          pkceCodeVerifier: req.verifier,
          expectedState: req.state,
          expectedNonce: req.nonce,
          idTokenExpected: true,
        });
        const exchange = rec.entries.findLast((e) => e.url.endsWith('/oauth2/token'));
        assert.match(exchange.requestHeaders.authorization ?? '', /^Basic /, 'the exchange used client_secret_basic');
        assert.equal(tokens.claims().aud, clientId);

        const refreshed = await oidc.refreshTokenGrant(basic, tokens.refresh_token);
        assert.match(refreshed.access_token, ACCESS_TOKEN);

        // The same refresh with a wrong secret: invalid_client (401).
        const wrong = await oidc.discovery(new URL(issuerOf(app)), clientId, 'x'.repeat(20), oidc.ClientSecretBasic('x'.repeat(20)), {
          execute: [oidc.allowInsecureRequests],
          [oidc.customFetch]: rec.fetch,
        });
        await expectOAuthError('refresh with a wrong client secret', () => oidc.refreshTokenGrant(wrong, refreshed.refresh_token));
        // RFC 6749 §5.2: 401, a challenge for the scheme the client used, error invalid_client.
        const refused = rec.entries.findLast((e) => e.url.endsWith('/oauth2/token'));
        assert.equal(refused.status, 401, refused.responseBody);
        assert.match(refused.responseHeaders['www-authenticate'] ?? '', /^Basic\b/i, 'a Basic challenge');
        assert.equal(JSON.parse(refused.responseBody).error, 'invalid_client', refused.responseBody);
        // The failed attempt did not consume the refresh token.

        const still = await oidc.refreshTokenGrant(basic, refreshed.refresh_token);
        await oidc.tokenRevocation(basic, still.refresh_token);
        assert.equal((await introspect(app, rec, still.access_token)).active, false, 'revoked by the confidential client');
      } finally {
        await browser.context.unroute(`https://${host}/**`);
      }
    });
  });
}
