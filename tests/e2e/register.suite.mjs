// Self-registration with real Synapse, headless Chromium and a real SMTP sink (tests/lib/smtp.mjs,
// the appliance's CLOUDRON_MAIL_* pointing at it), registration switched on with
// APPLIANCE_REGISTRATION=token (README "Self-registration"): with mail on, the form asks for an
// email address and a registration token, the 6-digit code goes out by mail, and the account
// exists once the display-name step is done.
//
// Token: dana gets a single-use token from `appliance mas -- manage
// issue-user-registration-token`, follows "Create an account" from the sign-in page, registers
// (form, mailed code, display name) and lands on her account page; the token is then used up.
// She then signs in from a fresh browser through OAuth (code flow, Matrix scopes) and uses the
// token with matrix-js-sdk: sync, a room, a message seen through sync, her display name at
// Synapse. prompt=create: an OAuth client's authorization request with `prompt=create` opens the
// registration page; erin registers there and the flow goes on to the consent page and the
// client's callback: the client gets tokens for erin. axe-core and screenshots (a11y.mjs
// checkPage) on the registration form, the code page and the display-name page.
// register.<backend>.test.mjs run it once per backend.
//
// Limits (docs/protocol.md#rate-limits): 3 registrations per address before the 20-minute wait
// (this suite makes 2), 3 password attempts before the 20 s wait (this suite makes 1).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { checkPage } from '../lib/a11y.mjs';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness } from '../lib/harness.mjs';
import { matrixClient, messageBodies, startSyncing, waitForSync } from '../lib/matrix.mjs';
import {
  LoopbackCallback,
  Recorder,
  authorizationRequest,
  codeFlow,
  manage,
  matrixScopes,
  oidc,
  randomAlnum,
  recordedTest,
  registerClient,
  serverNameOf,
  strongPassword,
  whoami,
} from '../lib/oidc.mjs';
import { SmtpSink } from '../lib/smtp.mjs';

/** Declares the registration tests on `backend`. */
export function registerSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: self-registration with a token and a mailed code (Chromium, real Synapse, SMTP sink)`, { skip }, () => {
    const h = new Harness(`${backend}: register`);
    let app;
    let sink;
    let serverName;
    let callback;

    before(async () => {
      try {
        sink = await SmtpSink.start();
        h.defer(() => sink.stop());
        app = await h.appliance(backend, { env: { ...sink.env(), APPLIANCE_REGISTRATION: 'token' } });
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

    /** A fresh registration token from the CLI (`extra`: more flags); the token. */
    async function issueToken(...extra) {
      const out = await manage(app, 'issue-user-registration-token', ...extra);
      const token = out.split('\n').map((l) => l.trim()).find((l) => /^[A-Za-z0-9]{16}$/.test(l));
      assert.ok(token, `a token in the output:\n${out}`);
      return token;
    }

    /** A public native client with the loopback redirect. */
    function nativeClient(rec) {
      return registerClient(app, rec, {
        client_name: 'Register e2e',
        client_uri: 'https://register-e2e.example.org/',
        application_type: 'native',
        redirect_uris: [callback.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      });
    }

    /**
     * From the registration form (open in `browser`) to the display-name page's button: fills the
     * form, reads the code from the mail to `user.email`, enters it, sets `user.displayName`. Runs
     * checkPage on the three pages (names prefixed `label`).
     */
    async function register(browser, label, user) {
      await browser.step('fill the registration form', async (page) => {
        await page.getByRole('heading', { name: 'Create an account' }).waitFor();
        await checkPage(page, `${label}-register-form`);
        await page.getByLabel('Username').fill(user.username);
        await page.getByLabel('Password', { exact: true }).fill(user.password);
        await page.getByLabel('Password again').fill(user.password);
        await page.getByLabel('Email address').fill(user.email);
        await page.getByLabel('Registration token').fill(user.token);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByRole('heading', { name: 'Verify your email' }).waitFor();
        await checkPage(page, `${label}-register-code`);
      });
      const mail = await sink.waitFor(user.email, 30000);
      const subject = mail.headers.get('subject');
      const code = subject.match(/\b(\d{6})\b/)?.[1];
      assert.ok(code, `a 6-digit code in the subject: ${subject}`);
      assert.ok(subject.includes(serverName), `the server name in the subject: ${subject}`);
      assert.ok(mail.raw.includes(code), 'the code in the body too');
      await browser.step('enter the mailed code', async (page) => {
        await page.getByLabel('Code').fill(code);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByRole('heading', { name: 'Choose a display name' }).waitFor();
        await page.getByText(`@${user.username}:${serverName}`).waitFor();
        await checkPage(page, `${label}-register-display-name`);
        await page.getByLabel('Display name').fill(user.displayName);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
      });
    }

    check('token and mailed code: the account is made, signs in through OAuth, syncs and sends a message with matrix-js-sdk', async (rec) => {
      const token = await issueToken('--usage-limit', '1');
      const dana = {
        username: `dana${randomAlnum(4).toLowerCase()}`,
        password: strongPassword(),
        email: 'dana@example.org',
        token,
        displayName: 'Dana Registered',
      };
      const browser = await Browser.launch(`${backend}-dana-register`);
      h.defer(() => browser.close());
      await browser.step('follow "Create an account" from the sign-in page', async (page) => {
        await page.goto(app.url('/auth/login'));
        await page.getByRole('link', { name: 'Create an account' }).click();
      });
      await register(browser, `${backend}`, dana);
      await browser.step('land on the account page', async (page) => {
        await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
      });
      const listed = await manage(app, 'list-user-registration-tokens');
      const line = listed.split('\n').find((l) => l.startsWith(token));
      assert.match(line ?? '', /\s1\/1\s.*used up$/, `the single-use token is used up:\n${listed}`);

      // The account from a client: a fresh browser, the sign-in page, the code flow.
      const config = await nativeClient(rec);
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes('stable', deviceId);
      const other = await Browser.launch(`${backend}-dana-oauth`);
      h.defer(() => other.close());
      const { tokens } = await codeFlow({ config, browser: other, callback, scope: `${api} ${device}`, user: dana, deviceId, expectSignIn: true });
      const userId = `@${dana.username}:${serverName}`;
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.deepEqual({ user_id: me.json().user_id, device_id: me.json().device_id }, { user_id: userId, device_id: deviceId });

      const client = matrixClient(app, rec, { access_token: tokens.access_token, user_id: userId, device_id: deviceId });
      try {
        await startSyncing(client);
        const profile = await client.getProfileInfo(userId);
        assert.equal(profile.displayname, dana.displayName, 'the display name from registration is at Synapse');
        const { room_id: roomId } = await client.createRoom({ name: 'Registered', visibility: 'private' });
        const body = `hello from a registered account ${randomAlnum(6)}`;
        await client.sendTextMessage(roomId, body);
        await waitForSync(client, 'the message', (c) => messageBodies(c, roomId).some((m) => m.body === body && m.sender === userId));
      } finally {
        client.stopClient();
      }
    });

    check('prompt=create: the client\'s request opens the registration page and ends with tokens for the new account', async (rec) => {
      const erin = {
        username: `erin${randomAlnum(4).toLowerCase()}`,
        password: strongPassword(),
        email: 'erin@example.org',
        token: await issueToken(),
        displayName: 'Erin Created',
      };
      const config = await nativeClient(rec);
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes('stable', deviceId);
      const req = await authorizationRequest(config, {
        redirectUri: callback.redirectUri,
        scope: `${api} ${device}`,
        extra: { prompt: 'create' },
      });
      const since = callback.received.length;
      const browser = await Browser.launch(`${backend}-erin`);
      h.defer(() => browser.close());
      await browser.step('open the authorization URL with prompt=create', async (page) => {
        await page.goto(String(req.url));
      });
      await register(browser, `${backend}-prompt-create`, erin);
      await browser.step('approve on the consent page', async (page) => {
        await page.getByRole('heading', { name: /Register e2e.*wants to access your account/ }).waitFor();
        await page.getByText(deviceId).first().waitFor();
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await callback.next(since);
      });
      const callbackUrl = await callback.next(since);
      assert.ok(callbackUrl.searchParams.has('code'), `a code at the callback: ${callbackUrl}`);
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: req.verifier,
        expectedState: req.state,
        idTokenExpected: false,
      });
      assert.ok(tokens.access_token && tokens.refresh_token, 'access and refresh tokens');
      const me = await whoami(app, rec, tokens.access_token);
      assert.equal(me.status, 200, me.body);
      assert.deepEqual(
        { user_id: me.json().user_id, device_id: me.json().device_id },
        { user_id: `@${erin.username}:${serverName}`, device_id: deviceId },
      );
    });
  });
}
