// Accessibility of every page, in headless Chromium with axe-core (tests/lib/a11y.mjs): the
// front page, the sign-in page, an error page, the consent page, the account page (signed in)
// and the device link page of one appliance on SQLite. No violation of impact serious or
// critical; screenshots of each at phone and desktop width under
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
});
