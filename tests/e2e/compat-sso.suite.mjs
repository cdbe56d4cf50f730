// Legacy SSO login (issue 4, the compat layer) as an older Matrix client does it, in headless
// Chromium against real Synapse: the client opens /_matrix/client/v3/login/sso/redirect with its
// redirectUrl (matrix-js-sdk's getSsoLoginUrl); MAS shows its sign-in page, then the "continue to
// the application" page (/auth/complete-compat-sso/{id}); its button sends the browser back to
// redirectUrl with `loginToken` added; the client exchanges it with `m.login.token` and whoami
// names the user and the new device. The login token works once and for 30 s only; a redirectUrl
// with a userinfo part is refused. compat-sso.<backend>.test.mjs run it once per backend.
//
// Password attempts: one sign-in (dora's) out of MAS's burst of 3 per client IP
// (docs/protocol.md#rate-limits); the second SSO login reuses her signed-in browser.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { skipReason } from '../lib/config.mjs';
import { Harness } from '../lib/harness.mjs';
import { sleep } from '../lib/http.mjs';
import { baseUrlOf, expectMatrixError, matrixClient, tokenLogin } from '../lib/matrix.mjs';
import { LoopbackCallback, Recorder, introspect, registerUser, serverNameOf, whoami, recordedTest } from '../lib/oidc.mjs';

/** Declares the legacy SSO tests on `backend`. */
export function compatSsoSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: legacy SSO login (compat layer) in Chromium against real Synapse`, { skip }, () => {
    const h = new Harness(`${backend}: compat sso`);
    let app;
    let serverName;
    let dora;
    let browser;
    let callback;

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
        dora = await registerUser(app, 'dora');
        callback = await LoopbackCallback.start();
        h.defer(() => callback.close());
        browser = await Browser.launch(`${backend}-dora`);
        h.defer(() => browser.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /**
     * One legacy SSO round in `browser`: the client's redirect URL (with a query of its own that
     * must survive), the pages, and the callback. `signIn`: whether the sign-in page must come up
     * (true) or must not (false, a signed-in browser). Returns { loginToken, callbackUrl }.
     */
    async function ssoRound(rec, { signIn }) {
      const state = Math.random().toString(36).slice(2, 10);
      const redirectUrl = `${callback.redirectUri}?client_state=${state}`;
      const ssoUrl = matrixClient(app, rec).getSsoLoginUrl(redirectUrl, 'sso');
      assert.equal(new URL(ssoUrl).origin, baseUrlOf(app), ssoUrl);
      const since = callback.received.length;

      await browser.step('open the client\'s SSO redirect URL', async (page) => {
        await page.goto(ssoUrl);
      });
      if (signIn) {
        await browser.step('sign in on MAS\'s sign-in page', async (page) => {
          await page.getByRole('heading', { name: 'Sign in' }).waitFor();
          await page.getByLabel('Username').fill(dora.username);
          await page.getByLabel('Password').fill(dora.password);
          await page.getByRole('button', { name: 'Continue', exact: true }).click();
        });
      }
      await browser.step('continue to the application', async (page) => {
        await page.waitForURL(/\/auth\/complete-compat-sso\//);
        // The page names where the browser goes next (the client's host).
        await page.getByRole('heading', { name: /Continue to .*127\.0\.0\.1/ }).waitFor();
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await callback.next(since);
      });
      const callbackUrl = await callback.next(since);
      assert.equal(callbackUrl.searchParams.get('client_state'), state, `the redirectUrl's own query is kept: ${callbackUrl}`);
      const loginToken = callbackUrl.searchParams.get('loginToken');
      assert.ok(loginToken, `no loginToken in ${callbackUrl}`);
      return { loginToken, callbackUrl };
    }

    check('redirect → sign-in page → continue page → redirectUrl with loginToken → m.login.token → whoami; the token works once', async (rec) => {
      const { loginToken } = await ssoRound(rec, { signIn: true });
      const login = await tokenLogin(app, rec, loginToken, { initial_device_display_name: 'dora via SSO' });
      assert.equal(login.user_id, `@dora:${serverName}`);
      assert.match(login.access_token, /^mct_/);
      assert.match(login.device_id, /^[A-Za-z0-9]{10}$/, 'a generated device ID is 10 alphanumerics');

      const me = await matrixClient(app, rec, login).whoami();
      assert.equal(me.user_id, `@dora:${serverName}`);
      assert.equal(me.device_id, login.device_id);
      const seen = await introspect(app, rec, login.access_token);
      assert.equal(seen.active, true, JSON.stringify(seen));
      assert.equal(seen.client_id, 'legacy');
      assert.equal(seen.device_id, login.device_id);

      const again = await expectMatrixError('the same loginToken twice', () => tokenLogin(app, rec, loginToken));
      assert.equal(again.errcode, 'M_FORBIDDEN', `the same loginToken twice: ${again.errcode} ${again.message}`);
      assert.equal(again.httpStatus, 403);
    });

    check('a signed-in browser goes straight to the continue page; its loginToken is refused 30 s after it was issued', async (rec) => {
      const { loginToken } = await ssoRound(rec, { signIn: false });
      await sleep(31000);
      const late = await expectMatrixError('a loginToken after 31 s', () => tokenLogin(app, rec, loginToken));
      assert.equal(late.errcode, 'M_FORBIDDEN', `a loginToken after 31 s: ${late.errcode} ${late.message}`);
    }, 120000);

    check('a made-up loginToken is M_FORBIDDEN; a redirectUrl with a userinfo part or none at all is refused before any page', async (rec) => {
      const bogus = await expectMatrixError('a made-up loginToken', () => tokenLogin(app, rec, 'A'.repeat(32)));
      assert.equal(bogus.errcode, 'M_FORBIDDEN', `${bogus.errcode} ${bogus.message}`);

      for (const [what, query] of [
        ['a userinfo part', `?redirectUrl=${encodeURIComponent(`http://user:pw@127.0.0.1:${callback.server.address().port}/callback`)}`],
        ['no redirectUrl', ''],
      ]) {
        const res = await rec.send(app.url(`/_matrix/client/v3/login/sso/redirect${query}`));
        assert.ok(res.status >= 400 && res.status < 500, `${what}: expected a 4xx, got ${res.status} ${res.headers.location ?? ''} ${res.body.slice(0, 300)}`);
        assert.equal(res.headers.location, undefined, `${what}: no redirect`);
      }
      // The token of a real login is no use to Synapse once MAS refused it: whoami with junk.
      assert.equal((await whoami(app, rec, 'mct_not_a_token')).status, 401);
    });
  });
}
