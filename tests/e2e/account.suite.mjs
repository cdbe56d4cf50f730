// The self-service account page with real Synapse, headless Chromium and a real SMTP sink
// (tests/lib/smtp.mjs, the appliance's CLOUDRON_MAIL_* pointing at it). carol (made with
// `manage register-user`) signs in on /auth/account/ (through the login page and back), adds an
// email address with the code mailed to it and removes it again (Synapse's admin API
// /_synapse/admin/v2/users/{id} shows its threepids follow), changes her display name (seen in
// Synapse's profile /_matrix/client/v3/profile/{id}), and closes her account: the login page and
// compat m.login.password refuse her afterwards, and Synapse's admin API says deactivated.
// checkPage (tests/lib/a11y.mjs) runs on the account page, the code page, the deactivation page
// and the "closed" page. Synapse's admin API is called with a compat token with admin rights
// (`manage issue-compatibility-token root --admin`). account.<backend>.test.mjs run it once per
// backend.
//
// Password attempts: MAS allows a burst of 3 per client IP, then one per 20 s
// (docs/protocol.md#rate-limits), and every request here comes from 127.0.0.1: `attempt()` waits
// when the burst is spent (the deactivation page's password check counts as one).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { checkPage } from '../lib/a11y.mjs';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness } from '../lib/harness.mjs';
import { attemptGate, sleep } from '../lib/http.mjs';
import { expectMatrixError, passwordLogin } from '../lib/matrix.mjs';
import { Recorder, manage, recordedTest, registerUser, serverNameOf } from '../lib/oidc.mjs';
import { SmtpSink } from '../lib/smtp.mjs';


/** Declares the account tests on `backend`. */
export function accountSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: the account page: emails, display name, deactivation (Chromium, real Synapse, SMTP sink)`, { skip }, () => {
    const h = new Harness(`${backend}: account`);
    let app;
    let sink;
    let serverName;
    let adminToken;
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
        await registerUser(app, 'root', { admin: true });
        const issued = await manage(app, 'issue-compatibility-token', 'root', '--admin');
        adminToken = issued.match(/^mct_\S+$/m)?.[0];
        assert.ok(adminToken, `an admin token in:\n${issued}`);
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /** GET `path` on Synapse (through the public port) with the admin token; the JSON body. */
    async function asAdmin(rec, path) {
      const res = await rec.send(app.url(path), { headers: { authorization: `Bearer ${adminToken}` } });
      assert.equal(res.status, 200, `GET ${path}: ${res.status} ${res.body}`);
      return res.json();
    }

    /** Polls `read()` up to 20 s until `predicate` holds on its result; the last result. */
    async function eventually(what, read, predicate) {
      const deadline = Date.now() + 20000;
      for (;;) {
        const value = await read();
        if (predicate(value)) return value;
        if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(value)}`);
        await sleep(500);
      }
    }

    check('emails, display name and deactivation from the account page reach Synapse', async (rec) => {
      const carol = await registerUser(app, 'carol');
      const mxid = `@carol:${serverName}`;
      const userPath = `/_synapse/admin/v2/users/${encodeURIComponent(mxid)}`;
      const profilePath = `/_matrix/client/v3/profile/${encodeURIComponent(mxid)}`;
      const emailsOf = (user) => (user.threepids ?? []).filter((t) => t.medium === 'email').map((t) => t.address).sort();
      const user = await eventually('carol in Synapse', () => asAdmin(rec, userPath), (u) => u.name === mxid);
      assert.deepEqual(emailsOf(user), [], 'no email at first');

      const browser = await Browser.launch(`${backend}-carol`);
      h.defer(() => browser.close());
      await browser.step('open the account page: the login page first', async (page) => {
        await page.goto(app.url('/auth/account/'));
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await page.getByLabel('Username').fill(carol.username);
        await page.getByLabel('Password').fill(carol.password);
      });
      await attempt(() => browser.step('sign in and come back to the account page', async (page) => {
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
        await checkPage(page, `${backend}-account`);
      }));

      // Add an email address with the mailed code.
      await browser.step('ask for a code for carol@example.org', async (page) => {
        await page.getByLabel('Add an email address').fill('carol@example.org');
        await page.getByRole('button', { name: 'Send a code' }).click();
        await page.getByRole('heading', { name: 'Verify your email' }).waitFor();
        await page.getByText('carol@example.org').first().waitFor();
        await checkPage(page, `${backend}-account-email-code`);
      });
      const mail = await sink.waitFor('carol@example.org', 30000);
      const code = mail.headers.get('subject').match(/^(\d{6}) is your code for /)?.[1];
      assert.ok(code, `a code in the subject: ${mail.headers.get('subject')}`);
      assert.ok(mail.raw.includes(code), 'the code is in the text too');
      await browser.step('type the code', async (page) => {
        await page.getByLabel('Code').fill(code);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByText('carol@example.org was added and verified.').waitFor();
        await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
      });
      await eventually('Synapse gets the email', () => asAdmin(rec, userPath), (u) => emailsOf(u).join() === 'carol@example.org');

      // Remove it again.
      await browser.step('remove carol@example.org', async (page) => {
        await page.getByRole('button', { name: 'Remove carol@example.org' }).click();
        await page.getByText('carol@example.org was removed.').waitFor();
        await page.getByText('No email address.').waitFor();
      });
      await eventually('Synapse loses the email', () => asAdmin(rec, userPath), (u) => emailsOf(u).length === 0);

      // Change the display name.
      await browser.step('change the display name', async (page) => {
        await page.getByLabel('Display name').fill('Carol Example');
        await page.getByRole('button', { name: 'Save' }).click();
        await page.getByText('Your display name is now Carol Example.').waitFor();
        await page.getByLabel('Display name').and(page.locator('[value="Carol Example"]')).waitFor();
      });
      await eventually('Synapse shows the new display name', () => asAdmin(rec, profilePath), (p) => p.displayname === 'Carol Example');

      // Close the account.
      const carolToken = (await manage(app, 'issue-compatibility-token', 'carol')).match(/^mct_\S+$/m)?.[0];
      assert.ok(carolToken, 'a compat token before closing');
      const before = await rec.send(app.url('/_matrix/client/v3/account/whoami'), { headers: { authorization: `Bearer ${carolToken}` } });
      assert.equal(before.status, 200, `the compat token works before: ${before.status} ${before.body}`);
      await browser.step('open the deactivation page', async (page) => {
        await page.getByRole('link', { name: 'Close your account' }).click();
        await page.getByRole('heading', { name: 'Close your account?' }).waitFor();
        await checkPage(page, `${backend}-account-deactivate`);
      });
      await attempt(() => browser.step('confirm with the password', async (page) => {
        await page.getByLabel('Your password').fill(carol.password);
        await page.getByRole('button', { name: 'Close my account' }).click();
        await page.getByRole('heading', { name: 'Your account is closed' }).waitFor();
        await checkPage(page, `${backend}-account-closed`);
      }));
      const gone = await eventually('Synapse deactivates carol', () => asAdmin(rec, userPath), (u) => u.deactivated === true);
      assert.deepEqual(emailsOf(gone), [], 'no email left in Synapse');
      await eventually(
        'the compat token is refused by Synapse',
        async () => (await rec.send(app.url('/_matrix/client/v3/account/whoami'), { headers: { authorization: `Bearer ${carolToken}` } })).status,
        (status) => status === 401,
      );

      // Every way in refuses her.
      await browser.step('the account page asks to sign in again', async (page) => {
        await page.goto(app.url('/auth/account/'));
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await page.getByLabel('Username').fill(carol.username);
        await page.getByLabel('Password').fill(carol.password);
      });
      await attempt(() => browser.step('the login page refuses the closed account', async (page) => {
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await page.getByText('This account has been deactivated.').waitFor();
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      }));
      const refused = await attempt(() => expectMatrixError('compat login of the closed account', () => passwordLogin(app, rec, carol)));
      assert.equal(refused.errcode, 'M_USER_DEACTIVATED', `compat login refused: ${JSON.stringify(refused)}`);
    });
  });
}
