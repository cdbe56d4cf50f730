// Signing in to the appliance the way Element X does, with real Synapse and headless Chromium: a
// native client registers itself (MSC2966: application_type native, loopback redirect), runs the
// code flow with PKCE and the Matrix scopes (the client-server API and a device of its choosing,
// no `openid`), a user made with `appliance mas -- manage register-user` signs in on the login
// page and approves the consent page, and the token then works against Synapse: whoami names the
// user and the device; refresh works; revocation, and locking the user, end it at once (the device
// is deleted, so Synapse's 2-minute introspection cache cannot keep it alive); only a user allowed
// to be admin gets `urn:synapse:admin:*`, and only that scope opens Synapse's admin API. Both the
// unstable (MSC2967) and the stable scope spellings. oauth-matrix.<backend>.test.mjs run it once
// per backend.
//
// Password attempts: MAS allows a burst of 3 per client IP, then one per 20 s
// (docs/protocol.md#rate-limits), and every browser here is 127.0.0.1. This suite makes exactly 3
// (alice, root and carol); a test that signs in once more must reuse a signed-in browser or wait.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness } from '../lib/harness.mjs';
import { checkPage } from '../lib/a11y.mjs';
import {
  LoopbackCallback,
  Recorder,
  authorizationRequest,
  codeFlow,
  expectOAuthError,
  introspect,
  manage,
  matrixScopes,
  oidc,
  randomAlnum,
  registerClient,
  registerUser,
  serverNameOf,
  whoami,
  recordedTest,
} from '../lib/oidc.mjs';

const ADMIN_SCOPE = 'urn:synapse:admin:*';

/** What Element X sends when it registers (its real metadata, with a loopback redirect). */
function elementXMetadata(redirectUri) {
  return {
    client_name: 'Element X (e2e)',
    client_uri: 'https://element-e2e.example.org/',
    logo_uri: 'https://element-e2e.example.org/logo.png',
    policy_uri: 'https://element-e2e.example.org/privacy',
    tos_uri: 'https://element-e2e.example.org/terms',
    application_type: 'native',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/** Asserts a Matrix error answer: `status` and `errcode`. */
function assertMatrixError(res, status, errcode, what) {
  assert.equal(res.status, status, `${what}: expected ${status} ${errcode}, got ${res.status} ${res.body}`);
  let body;
  try {
    body = res.json();
  } catch {
    assert.fail(`${what}: not a Matrix JSON error: ${res.body}`);
  }
  assert.equal(body.errcode, errcode, `${what}: ${res.body}`);
}

/** Declares the Element-X-style tests on `backend`. */
export function matrixSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: Element-X-style sign-in against real Synapse (Chromium)`, { skip }, () => {
    const h = new Harness(`${backend}: oauth matrix`);
    let app;
    let serverName;
    let alice;
    let aliceBrowser;
    let callback;
    let elementX;

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
        alice = await registerUser(app, 'alice');
        callback = await LoopbackCallback.start();
        h.defer(() => callback.close());
        aliceBrowser = await Browser.launch(`${backend}-alice`);
        h.defer(() => aliceBrowser.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    // One record for the suite (clients registered in one test make requests in later ones);
    // a failing test shows the exchanges made since it started.
    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /** Element X's registration (the same metadata every time: deduplicated to one client). */
    async function registerElementX(rec) {
      const config = await registerClient(app, rec, elementXMetadata(callback.redirectUri));
      elementX ??= config.clientMetadata().client_id;
      assert.equal(config.clientMetadata().client_id, elementX, 'the same public metadata gives the same client');
      return config;
    }

    /** A Matrix sign-in of `user` in `browser`: API scope, a fresh device, plus `extraScopes`. */
    async function matrixSignIn(rec, { config, browser, user, spelling = 'unstable', extraScopes = [] }) {
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes(spelling, deviceId);
      const scope = [api, device, ...extraScopes].join(' ');
      const { tokens, consent } = await codeFlow({
        config,
        browser,
        callback,
        scope,
        user,
        clientName: 'Element X (e2e)',
        deviceId,
      });
      return { tokens, deviceId, scope, consent };
    }

    /**
     * Opens an authorization URL in a signed-in browser and approves whatever consent page comes
     * up, without ever typing a password; asserts that the client gets no code (an error page, a
     * sign-in page, or an error redirect to the client are all fine).
     */
    async function assertNoCode(browser, req, what) {
      const since = callback.received.length;
      const outcome = await browser.step(what, async (page) => {
        // Whatever comes first: the consent page, an error page, the sign-in page, or the
        // client's callback page (an error redirect); each has a top heading.
        await page.goto(String(req.url));
        await page.locator('h1').first().waitFor();
        const consent = page.getByRole('heading', { name: /wants to access your account/ });
        if (await consent.isVisible()) {
          await page.getByRole('button', { name: 'Continue', exact: true }).click();
          await page.waitForLoadState();
          await page.locator('h1').first().waitFor();
        }
        return {
          callback: callback.received.length > since ? callback.received[since] : null,
          url: page.url(),
          text: (await page.locator('body').innerText()).replace(/\s+/g, ' '),
        };
      });
      if (outcome.callback) {
        assert.ok(!outcome.callback.searchParams.has('code'), `${what}: the client got a code: ${outcome.callback}`);
        assert.ok(outcome.callback.searchParams.get('error'), `${what}: no error in ${outcome.callback}`);
      } else {
        assert.doesNotMatch(outcome.text, /wants to access your account/, `${what}: still on a consent page that could be approved (${outcome.url})`);
        assert.ok(!outcome.url.startsWith(callback.redirectUri), outcome.url);
      }
      return outcome;
    }

    for (const spelling of ['unstable', 'stable']) {
      check(`${spelling} scopes: whoami is alice on the client's device; refresh works; after revoke whoami fails at once`, async (rec) => {
        const config = await registerElementX(rec);
        const { tokens, deviceId, scope } = await matrixSignIn(rec, { config, browser: aliceBrowser, user: alice, spelling });
        const { api, device } = matrixScopes(spelling, deviceId);
        assert.equal(tokens.id_token, undefined, 'no openid scope, no ID token');
        assert.ok(tokens.refresh_token, 'a refresh token');
        const granted = (tokens.scope ?? '').split(' ');
        for (const s of [api, device]) assert.ok(granted.includes(s), `granted scope "${tokens.scope}" lacks ${s} (asked: ${scope})`);

        const me = await whoami(app, rec, tokens.access_token);
        assert.equal(me.status, 200, `whoami: ${me.status} ${me.body}`);
        assert.deepEqual(
          { user_id: me.json().user_id, device_id: me.json().device_id },
          { user_id: `@alice:${serverName}`, device_id: deviceId },
        );

        // What Synapse learns from MAS: both spellings of the API and device scopes.
        const seen = await introspect(app, rec, tokens.access_token);
        assert.equal(seen.active, true, JSON.stringify(seen));
        assert.equal(seen.username, 'alice');
        const seenScopes = (seen.scope ?? '').split(' ');
        for (const s of [
          'urn:matrix:client:api:*',
          'urn:matrix:org.matrix.msc2967.client:api:*',
          `urn:matrix:client:device:${deviceId}`,
          `urn:matrix:org.matrix.msc2967.client:device:${deviceId}`,
        ]) {
          assert.ok(seenScopes.includes(s), `introspection scope "${seen.scope}" lacks ${s}`);
        }
        assert.ok(!seenScopes.includes(ADMIN_SCOPE), 'no admin scope for alice');

        // Refresh: a new access token for the same device.
        const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
        assert.notEqual(refreshed.access_token, tokens.access_token);
        const again = await whoami(app, rec, refreshed.access_token);
        assert.equal(again.status, 200, `whoami after refresh: ${again.status} ${again.body}`);
        assert.equal(again.json().device_id, deviceId);
        assert.equal(again.json().user_id, `@alice:${serverName}`);

        // Revoke (RFC 7009, public client: client_id in the body): 200, and Synapse refuses the
        // token on the very next request, and the earlier one of the same device too. That one
        // is still in Synapse's 2-minute cache as active (whoami above), so only the deletion of
        // the device can make it fail now.
        await oidc.tokenRevocation(config, refreshed.access_token, { token_type_hint: 'access_token' });
        assertMatrixError(await whoami(app, rec, refreshed.access_token), 401, 'M_UNKNOWN_TOKEN', 'whoami right after revoke');
        assertMatrixError(await whoami(app, rec, tokens.access_token), 401, 'M_UNKNOWN_TOKEN', 'whoami with the pre-refresh token after revoke');
        const err = await expectOAuthError('refresh after revoke', () => oidc.refreshTokenGrant(config, refreshed.refresh_token));
        assert.equal(err.error, 'invalid_grant', err.message);
      });
    }

    check('account page (Element X\'s "Manage account" and identity reset): Synapse\'s cross-signing reset link leads to it and the reset then works; the device_delete deep link signs the session out (whoami 401 at once)', async (rec) => {
      const config = await registerElementX(rec);
      const { tokens, deviceId } = await matrixSignIn(rec, { config, browser: aliceBrowser, user: alice, spelling: 'stable' });
      const metadata = (await rec.send(app.url('/auth/.well-known/openid-configuration'))).json();
      assert.equal(metadata.account_management_uri, `${app.origin}/auth/account/`);
      const auth = { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' };
      const masterKey = () => {
        const { publicKey } = crypto.generateKeyPairSync('ed25519');
        const id = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('base64').replace(/=+$/, '');
        return { master_key: { user_id: `@alice:${serverName}`, usage: ['master'], keys: { [`ed25519:${id}`]: id } } };
      };
      const upload = (body) => rec.send(app.url('/_matrix/client/v3/keys/device_signing/upload'), { method: 'POST', headers: auth, body: JSON.stringify(body) });
      const first = await upload(masterKey());
      assert.equal(first.status, 200, `first master key: ${first.status} ${first.body}`);
      const replacement = masterKey();
      const refused = await upload(replacement);
      assert.equal(refused.status, 401, `replacing the master key needs approval: ${refused.status} ${refused.body}`);
      const resetUrl = Object.values(refused.json().params ?? {}).map((p) => p?.url).find(Boolean)
        ?? `${metadata.account_management_uri}?action=org.matrix.cross_signing_reset`;
      assert.ok(resetUrl.startsWith(`${app.origin}/auth/account/`), `Synapse points at our account page: ${resetUrl}`);
      await aliceBrowser.step('allow the identity reset on the account page', async (page) => {
        await page.goto(resetUrl);
        await page.getByRole('button', { name: 'Allow the reset' }).click();
        await page.getByRole('heading', { name: 'You can now reset your identity' }).waitFor();
      });
      const replaced = await upload(replacement);
      assert.equal(replaced.status, 200, `after the reset was allowed: ${replaced.status} ${replaced.body}`);

      assert.equal((await whoami(app, rec, tokens.access_token)).status, 200);
      await aliceBrowser.step('sign the device out through the device_delete deep link', async (page) => {
        await page.goto(`${metadata.account_management_uri}?action=org.matrix.device_delete&device_id=${deviceId}`);
        await page.getByRole('heading', { name: `Sign out device ${deviceId}?` }).waitFor();
        await checkPage(page, `${backend}-account-session-end`);
        await page.getByRole('button', { name: 'Sign out' }).first().click();
        await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
      });
      assertMatrixError(await whoami(app, rec, tokens.access_token), 401, 'M_UNKNOWN_TOKEN', 'whoami after signing the device out on the account page');
    });

    check('admin: a --admin user\'s urn:synapse:admin:* token reaches Synapse\'s admin API (200); alice\'s plain token gets 403; alice cannot get the admin scope', async (rec) => {
      const root = await registerUser(app, 'root', { admin: true });
      const config = await registerElementX(rec);
      const rootBrowser = await Browser.launch(`${backend}-root`);
      h.defer(() => rootBrowser.close());
      const adminPath = `/_synapse/admin/v2/users/${encodeURIComponent(`@alice:${serverName}`)}`;

      const { tokens: rootTokens, deviceId } = await matrixSignIn(rec, {
        config,
        browser: rootBrowser,
        user: root,
        spelling: 'stable',
        extraScopes: [ADMIN_SCOPE],
      });
      assert.ok((rootTokens.scope ?? '').split(' ').includes(ADMIN_SCOPE), `granted: ${rootTokens.scope}`);
      const me = await whoami(app, rec, rootTokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.deepEqual(me.json().user_id, `@root:${serverName}`);
      assert.equal(me.json().device_id, deviceId);
      const asAdmin = await rec.send(app.url(adminPath), { headers: { authorization: `Bearer ${rootTokens.access_token}` } });
      assert.equal(asAdmin.status, 200, `admin API with the admin token: ${asAdmin.status} ${asAdmin.body}`);
      assert.equal(asAdmin.json().name, `@alice:${serverName}`);

      // alice's ordinary Matrix token: a working token, but no admin.
      const { tokens: plain } = await matrixSignIn(rec, { config, browser: aliceBrowser, user: alice, spelling: 'stable' });
      assert.equal((await whoami(app, rec, plain.access_token)).status, 200);
      const notAdmin = await rec.send(app.url(adminPath), { headers: { authorization: `Bearer ${plain.access_token}` } });
      assertMatrixError(notAdmin, 403, 'M_FORBIDDEN', 'admin API with a plain token');

      // alice asks for the admin scope: she must not end up with a code (the policy refuses at
      // the consent step or before; an error page or an error redirect are both fine).
      const { api, device } = matrixScopes('stable', randomAlnum(10));
      const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: `${api} ${device} ${ADMIN_SCOPE}` });
      await assertNoCode(aliceBrowser, req, 'alice asks for the admin scope');
    });

    check('a user locked with `manage lock-user` loses their token at once (401), cannot refresh it, and her browser session gets no new code', async (rec) => {
      const carol = await registerUser(app, 'carol');
      const config = await registerElementX(rec);
      const carolBrowser = await Browser.launch(`${backend}-carol`);
      h.defer(() => carolBrowser.close());
      const { tokens, deviceId } = await matrixSignIn(rec, { config, browser: carolBrowser, user: carol });
      const before = await whoami(app, rec, tokens.access_token);
      assert.equal(before.status, 200, before.body);
      assert.equal(before.json().device_id, deviceId);
      // Synapse has now cached "active" for this token for 2 minutes; only deleting the device
      // makes it drop that.

      const out = await manage(app, 'lock-user', 'carol');
      const started = Date.now();
      const res = await whoami(app, rec, tokens.access_token);
      assertMatrixError(res, 401, 'M_UNKNOWN_TOKEN', `whoami ${Date.now() - started} ms after lock-user exited (its output: ${out.trim()})`);
      assert.equal((await introspect(app, rec, tokens.access_token)).active, false, 'MAS answers inactive for a locked user');
      const err = await expectOAuthError('refresh of a locked user', () => oidc.refreshTokenGrant(config, tokens.refresh_token));
      assert.ok(['invalid_grant', 'access_denied'].includes(err.error), `refresh of a locked user: ${err.error}: ${err.message}`);
      // Her browser session does not get her a new token either.
      const { api, device } = matrixScopes('unstable', randomAlnum(10));
      await assertNoCode(carolBrowser, await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: `${api} ${device}` }), 'carol, locked, asks again');
      // alice is not affected.
      const { tokens: aliceTokens } = await matrixSignIn(rec, { config, browser: aliceBrowser, user: alice });
      assert.equal((await whoami(app, rec, aliceTokens.access_token)).status, 200);
    });
  });
}
