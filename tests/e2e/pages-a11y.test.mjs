// Accessibility of every page, in headless Chromium with axe-core (tests/lib/a11y.mjs): the
// front page, the sign-in page, an error page, the consent page, the account page (signed in),
// the device link page (also with a wrong code), the device approval and denial pages, the
// cross-signing reset page and the legacy single sign-on page, on one appliance on SQLite (the
// registration, account and password suites check their own pages). No violation of impact
// serious or critical; screenshots of each at phone and desktop width under
// target/test-results/screenshots.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { checkPage } from '../lib/a11y.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { skipReason } from '../lib/config.mjs';
import { Harness, sharedCheck } from '../lib/harness.mjs';
import {
  LoopbackCallback,
  Recorder,
  authorizationRequest,
  matrixScopes,
  randomAlnum,
  registerClient,
  registerUser,
} from '../lib/oidc.mjs';

describe('sqlite: accessibility of the pages (axe-core, Chromium)', { skip: skipReason('sqlite') || browserSkipReason() }, () => {
  const h = new Harness('sqlite: pages a11y');
  let app;
  let browser;
  let user;
  let callback;

  before(async () => {
    try {
      app = await h.appliance('sqlite', { env: { APPLIANCE_REGISTRATION: 'token' } });
      app.start();
      await app.waitHealthy();
      user = await registerUser(app, `a11y${randomAlnum(6).toLowerCase()}`);
      callback = await LoopbackCallback.start();
      h.defer(() => callback.close());
      browser = await Browser.launch('pages-a11y');
      h.defer(() => browser.close());
    } catch (err) {
      h.dump(err);
      throw err;
    }
  }, { timeout: 180000 });

  after(() => h.cleanup(), { timeout: 60000 });

  const check = sharedCheck(h);
  // The browser uses the public origin (cookies are per host), as people do.
  const at = (p) => `${app.origin}${p}`;

  check('the front page', async () => {
    await browser.step('front page', async (page) => {
      await page.goto(at('/'));
      await page.getByRole('heading', { level: 1 }).waitFor();
      await checkPage(page, 'front');
    });
  });

  check('the sign-in page', async () => {
    await browser.step('sign-in page', async (page) => {
      await page.goto(at('/auth/login'));
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      await checkPage(page, 'login');
    });
  });

  check('the sign-in page showing an error', async () => {
    await browser.step('sign-in page with an error', async (page) => {
      await page.goto(at('/auth/login'));
      await page.getByLabel('Username').fill(user.username);
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await page.locator('#error-summary').waitFor();
      await checkPage(page, 'login-error');
    });
  });

  check('an error page', async () => {
    await browser.step('error page', async (page) => {
      const res = await page.goto(at('/auth/authorize?client_id=01ARZ3NDEKTSV4RRFFQ69G5FAV&response_type=code'));
      assert.ok(res.status() >= 400, `status ${res.status()}`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await checkPage(page, 'error');
    });
  });

  check('the consent page, then the account page signed in', async () => {
    const rec = new Recorder();
    const config = await registerClient(app, rec, {
      client_name: 'Accessible Client',
      client_uri: 'https://a11y-e2e.example.org/',
      application_type: 'native',
      redirect_uris: [callback.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const { api, device } = matrixScopes('stable', randomAlnum(10));
    const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: `openid ${api} ${device}` });
    await browser.step('sign in for the consent page', async (page) => {
      await page.goto(String(req.url));
      await page.getByLabel('Username').fill(user.username);
      await page.getByLabel('Password').fill(user.password);
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await page.getByRole('heading', { name: /wants to access your account/ }).waitFor();
      await checkPage(page, 'consent');
    });
    await browser.step('account page', async (page) => {
      await page.goto(at('/auth/account/'));
      await page.getByRole('heading', { level: 1 }).waitFor();
      await checkPage(page, 'account');
    });
  });

  check('the device link page (signed in)', async () => {
    await browser.step('device link page', async (page) => {
      await page.goto(at('/auth/link'));
      await page.getByRole('heading', { level: 1 }).waitFor();
      await checkPage(page, 'device-link');
    });
  });

  check('the device approval and denial pages, the wrong-code page', async () => {
    const rec = new Recorder();
    const config = await registerClient(app, rec, {
      client_name: 'Accessible TV',
      client_uri: 'https://a11y-e2e.example.org/',
      application_type: 'native',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    });
    const { api, device } = matrixScopes('stable', randomAlnum(10));
    const res = await rec.send(at('/auth/oauth2/device'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: config.clientMetadata().client_id, scope: `openid ${api} ${device}` }).toString(),
    });
    assert.equal(res.status, 200, res.body);
    const grant = res.json();
    await browser.step('device approval page', async (page) => {
      await page.goto(grant.verification_uri_complete);
      await page.getByRole('heading', { name: 'Sign in on a new device?' }).waitFor();
      await checkPage(page, 'device-consent');
      await page.getByRole('button', { name: 'Deny', exact: true }).click();
      await page.getByRole('heading', { name: 'Sign-in denied' }).waitFor();
      await checkPage(page, 'device-done');
    });
    await browser.step('device link page with a wrong code', async (page) => {
      await page.goto(at('/auth/link?code=WXYZ-WXYZ'));
      await page.getByRole('heading', { level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await page.getByText('There is a problem').waitFor();
      await checkPage(page, 'device-link-error');
    });
  });

  check('the cross-signing reset and legacy single sign-on pages (signed in)', async () => {
    await browser.step('cross-signing reset page', async (page) => {
      await page.goto(at('/auth/account/?action=org.matrix.cross_signing_reset'));
      await page.getByRole('heading', { name: 'Reset your identity?' }).waitFor();
      await checkPage(page, 'cross-signing-reset');
    });
    await browser.step('legacy single sign-on page', async (page) => {
      const back = encodeURIComponent('http://127.0.0.1:9/sso-done');
      await page.goto(at(`/_matrix/client/v3/login/sso/redirect?redirectUrl=${back}`));
      await page.getByRole('heading', { name: /Continue to/ }).waitFor();
      await checkPage(page, 'compat-sso');
    });
  });
});
