// Password change and recovery with real Synapse, headless Chromium and a real SMTP sink
// (tests/lib/smtp.mjs, the appliance's CLOUDRON_MAIL_* pointing at it). Recovery is turned on with
// a <data>/config/mas.yaml override (account.password_recovery_enabled) until the supervisor
// renders it. Change: alice signs in on /auth/account/password (through the login page and back),
// changes her password; the old one is refused and the new one accepted through compat
// m.login.password and through an OAuth login. Recovery: bob, with a compat token and an OAuth
// token, asks for a link on the login page's "Forgot password?", opens the mailed link, sets a new
// password; both old tokens are refused by Synapse (401), the link works once, the new password
// signs in. password.<backend>.test.mjs run it once per backend.
//
// Password attempts: MAS allows a burst of 3 per client IP, then one per 20 s
// (docs/protocol.md#rate-limits), and every request here comes from 127.0.0.1: `attempt()` waits
// when the burst is spent.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness } from '../lib/harness.mjs';
import { attemptGate, sleep } from '../lib/http.mjs';
import { expectMatrixError, passwordLogin } from '../lib/matrix.mjs';
import {
  LoopbackCallback,
  Recorder,
  codeFlow,
  manage,
  matrixScopes,
  randomAlnum,
  recordedTest,
  registerClient,
  registerUser,
  serverNameOf,
  strongPassword,
  whoami,
} from '../lib/oidc.mjs';
import { SmtpSink } from '../lib/smtp.mjs';
import { checkPage } from '../lib/a11y.mjs';


/** The text part of a raw message, quoted-printable soft breaks and `=3D` undone. */
function decoded(raw) {
  return raw.replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
}

/** Declares the password tests on `backend`. */
export function passwordSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: password change and recovery (Chromium, real Synapse, SMTP sink)`, { skip }, () => {
    const h = new Harness(`${backend}: password`);
    let app;
    let sink;
    let serverName;
    let callback;
    /** Runs one password attempt, waiting out the per-address burst of 3 first. */
    const attempt = attemptGate();

    before(async () => {
      try {
        sink = await SmtpSink.start();
        h.defer(() => sink.stop());
        app = await h.appliance(backend, { env: sink.env() });
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

    /** An OAuth login of `user` in a fresh browser; the tokens. */
    async function oauthLogin(rec, user) {
      const config = await registerClient(app, rec, {
        client_name: 'Password e2e',
        client_uri: 'https://password-e2e.example.org/',
        application_type: 'native',
        redirect_uris: [callback.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes('stable', deviceId);
      const browser = await Browser.launch(`${backend}-oauth-${user.username}`);
      try {
        const { tokens } = await attempt(() =>
          codeFlow({ config, browser, callback, scope: `${api} ${device}`, user, deviceId }),
        );
        return tokens;
      } finally {
        await browser.close();
      }
    }

    /** whoami's status for `token`, waiting up to 15 s for it to become `status`. */
    async function whoamiBecomes(rec, token, status) {
      const deadline = Date.now() + 15000;
      for (;;) {
        const res = await whoami(app, rec, token);
        if (res.status === status || Date.now() > deadline) return res.status;
        await sleep(500);
      }
    }

    check('change: the old password is refused and the new one works through compat and OAuth', async (rec) => {
      const alice = await registerUser(app, 'alice');
      const next = strongPassword();
      const browser = await Browser.launch(`${backend}-alice`);
      h.defer(() => browser.close());
      await browser.step('open the password page (the well-known URL): the login page first', async (page) => {
        await page.goto(app.url('/.well-known/change-password'));
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await page.getByLabel('Username').fill(alice.username);
        await page.getByLabel('Password').fill(alice.password);
      });
      await attempt(() => browser.step('sign in and come back', async (page) => {
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByRole('heading', { name: 'Change your password' }).waitFor();
        await checkPage(page, `${backend}-password-change`);
      }));
      await attempt(() => browser.step('change the password', async (page) => {
        await page.getByLabel('Current password').fill(alice.password);
        await page.getByLabel('New password', { exact: true }).fill(next);
        await page.getByLabel('New password again').fill(next);
        await page.getByRole('button', { name: 'Change password' }).click();
        await page.getByRole('heading', { name: 'Password changed' }).waitFor();
        await checkPage(page, `${backend}-password-changed`);
      }));
      const old = await attempt(() => expectMatrixError('the old password', () => passwordLogin(app, rec, alice)));
      assert.equal(old.errcode, 'M_FORBIDDEN', 'the old password is refused');
      const compat = await attempt(() => passwordLogin(app, rec, { username: 'alice', password: next }));
      assert.ok(compat.access_token, 'compat login with the new password');
      assert.equal(await whoamiBecomes(rec, compat.access_token, 200), 200);
      const tokens = await oauthLogin(rec, { username: 'alice', password: next });
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.equal(me.json().user_id, `@alice:${serverName}`);
    });

    check('recovery: the mailed link sets a new password once and every old session is gone', async (rec) => {
      const bob = await registerUser(app, 'bob');
      await manage(app, 'add-email', 'bob', 'bob@example.org');
      const compat = await attempt(() => passwordLogin(app, rec, bob));
      const tokens = await oauthLogin(rec, bob);
      assert.equal(await whoamiBecomes(rec, compat.access_token, 200), 200);
      assert.equal(await whoamiBecomes(rec, tokens.access_token, 200), 200);

      const next = strongPassword();
      const browser = await Browser.launch(`${backend}-bob`);
      h.defer(() => browser.close());
      await browser.step('ask for a link from the login page', async (page) => {
        await page.goto(app.url('/auth/login'));
        await page.getByRole('link', { name: 'Forgot password?' }).click();
        await page.getByLabel('Email address').waitFor();
        await checkPage(page, `${backend}-recover`);
        await page.getByLabel('Email address').fill('Bob@Example.org');
        await page.getByRole('button', { name: 'Send the link' }).click();
        await page.getByText('If an account has the address').waitFor();
        await checkPage(page, `${backend}-recover-sent`);
      });
      const mail = await sink.waitFor('bob@example.org', 30000);
      assert.match(mail.headers.get('subject'), new RegExp(`Reset your password on ${serverName.replace(/\./g, '\\.')}`));
      const link = decoded(mail.raw).match(/https?:\/\/[^\s"<>]+\/auth\/recover\/complete\?ticket=[A-Za-z0-9]+/)?.[0];
      assert.ok(link, `a link in the mail:\n${mail.raw}`);
      await browser.step('set the new password from the link', async (page) => {
        await page.goto(link);
        await page.getByLabel('New password', { exact: true }).waitFor();
        await checkPage(page, `${backend}-recover-complete`);
        await page.getByLabel('New password', { exact: true }).fill(next);
        await page.getByLabel('New password again').fill(next);
        await page.getByRole('button', { name: 'Set the password' }).click();
        await page.getByRole('heading', { name: /Password changed/ }).waitFor();
      });
      assert.equal(await whoamiBecomes(rec, compat.access_token, 401), 401, 'the compat token is gone');
      assert.equal(await whoamiBecomes(rec, tokens.access_token, 401), 401, 'the OAuth token is gone');
      await browser.step('the link works once', async (page) => {
        await page.goto(link);
        await page.getByRole('heading', { name: 'This link no longer works' }).waitFor();
        await checkPage(page, `${backend}-recover-used`);
      });
      const fresh = await attempt(() => passwordLogin(app, rec, { username: 'bob', password: next }));
      assert.equal(await whoamiBecomes(rec, fresh.access_token, 200), 200);
    });
  });
}
