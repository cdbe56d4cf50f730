// "Sign in with a QR code" with the real Element X engine (issue 12): the test client of
// tests/qr-client (matrix-sdk, both devices in one process; built and cached by
// start/lib/qrclient.sh, found through APPLIANCE_QR_CLIENT) against the appliance's public port
// with real Synapse. Device A signs in with OAuth in headless Chromium and sets up cross-signing;
// A shows a QR code (MSC4108, the rendezvous channel through Synapse), device B scans it and asks
// MAS for a device authorization (RFC 8628); the approval page A's verification URI leads to is
// driven in the SAME browser that signed A in (no second password), and after Allow B is signed
// in as the same user with its own device and holds the cross-signing secrets A sent it. After
// Deny, B's login fails with access_denied. qr-login.<backend>.test.mjs run it once per backend.
//
// Password attempts: MAS allows a burst of 3 per client IP (docs/protocol.md#rate-limits); this
// suite makes 2 (alice, then bob for Deny: a second cross-signing bootstrap for alice would need
// MAS's approval of a cross-signing reset).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { after, afterEach, before, describe } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness, sharedCheck } from '../lib/harness.mjs';
import { LoopbackCallback, registerUser, serverNameOf, signInAndConsent } from '../lib/oidc.mjs';

/** The name the test client registers with (tests/qr-client/src/main.rs, CLIENT_NAME). */
const CLIENT_NAME = 'QR login test client';

/**
 * The test client binary, or an error that fails the test: the QR-login tests never skip, since
 * a missing client would silently hide the feature's only end-to-end check.
 */
function qrClientBin() {
  const bin = process.env.APPLIANCE_QR_CLIENT;
  if (!bin) {
    throw new Error('APPLIANCE_QR_CLIENT is not set: run ./start/test, or build tests/qr-client (start/lib/qrclient.sh, qr_client_ensure) and export its path');
  }
  if (!fs.existsSync(bin)) {
    throw new Error(`APPLIANCE_QR_CLIENT=${bin} does not exist: rebuild it with start/lib/qrclient.sh (qr_client_ensure)`);
  }
  return bin;
}

/**
 * One run of the test client, spoken to in JSON lines: `next(name)` resolves with the next event
 * of that name (earlier events of other names stay queued for their own `next`), and rejects on
 * an `error` event (unless `name` is 'error'), an exit, or a timeout; `send(obj)` answers on stdin.
 */
class QrClient {
  constructor(args) {
    this.events = [];
    this.lines = [];
    this.waiters = [];
    this.exit = null;
    this.child = spawn(qrClientBin(), args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(`out: ${line}`);
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      this.events.push(event);
      this.wake();
    });
    readline.createInterface({ input: this.child.stderr }).on('line', (line) => this.lines.push(`err: ${line}`));
    this.child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      this.wake();
    });
    this.child.on('error', (err) => {
      this.exit = { code: null, signal: null, error: err };
      this.wake();
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The client's output so far, for failure messages. */
  transcript() {
    return this.lines.slice(-60).join('\n');
  }

  fail(what) {
    return new Error(`qr-client: ${what}\n--- qr-client output (last 60 lines):\n${this.transcript()}`);
  }

  async next(name, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex((e) => e.event === name || (name !== 'error' && e.event === 'error'));
      if (i >= 0) {
        const [event] = this.events.splice(i, 1);
        if (event.event === 'error' && name !== 'error') {
          throw this.fail(`failed at ${event.stage} while the test waited for "${name}": ${event.message}`);
        }
        return event;
      }
      if (this.exit) throw this.fail(`exited (${JSON.stringify(this.exit)}) before "${name}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.fail(`no "${name}" event within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(obj) {
    this.child.stdin.write(`${JSON.stringify(obj)}\n`);
  }

  /** Resolves with the exit code once the process has ended. */
  async exited(timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.exit) {
      if (Date.now() > deadline) throw this.fail(`still running after ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.exit.code;
  }

  kill() {
    if (!this.exit) this.child.kill('SIGKILL');
  }
}

/** Declares the QR-login tests on `backend`. */
export function qrLoginSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: sign in with a QR code, matrix-sdk against real Synapse (Chromium)`, { skip }, () => {
    const h = new Harness(`${backend}: qr login`);
    const check = sharedCheck(h);
    let app;
    let serverName;
    let callback;

    before(async () => {
      try {
        app = await h.appliance(backend);
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

    // The test clients still running: each test ends its own (a failed one would otherwise keep
    // polling until its own timeout), and cleanup ends any left.
    const running = new Set();
    h.defer(() => running.forEach((c) => c.kill()));
    afterEach(() => {
      running.forEach((c) => c.kill());
      running.clear();
    });

    /**
     * A test client for a new `username`: A signed in through OAuth in a fresh browser (the
     * password typed once), cross-signing set up, the QR code shown and scanned, and both the
     * verification URI (A) and the user code (B) reported. Returns { client, browser, user,
     * signedIn, approveUrl, userCode }; the caller approves or denies.
     */
    async function upToApproval(username) {
      qrClientBin(); // fails the test at once, before anything is started, when it is missing
      const user = await registerUser(app, username);
      const browser = await Browser.launch(`${backend}-qr-${username}`);
      h.defer(() => browser.close());
      const client = new QrClient(['--homeserver', app.origin, '--redirect-uri', callback.redirectUri]);
      running.add(client);

      const { url } = await client.next('authorize');
      const since = callback.received.length;
      await signInAndConsent(browser, url, {
        user,
        clientName: CLIENT_NAME,
        expectSignIn: true,
        waitForRedirect: () => callback.next(since),
      });
      client.send({ callback: String(await callback.next(since)) });
      const signedIn = await client.next('signed_in');
      assert.equal(signedIn.user_id, `@${username}:${serverName}`);
      await client.next('cross_signing_ready', 60000);

      const qr = await client.next('qr_ready');
      assert.ok(
        String(qr.rendezvous_url).startsWith(`${app.origin}/_synapse/client/rendezvous/`),
        `the MSC4108 rendezvous URL is on the public origin: ${qr.rendezvous_url}`,
      );
      const checkCode = await client.next('check_code');
      assert.match(checkCode.code, /^[0-9]{2}$/);
      const { url: approveUrl } = await client.next('approve', 60000);
      const { code: userCode } = await client.next('user_code', 60000);
      return { client, browser, user, signedIn, approveUrl, userCode };
    }

    /** Opens the verification URI in `browser` (signed in already) and reads the approval page. */
    async function openApproval(browser, approveUrl) {
      return browser.step('open the approval page', async (page) => {
        await page.goto(approveUrl);
        await page.getByRole('heading', { name: /new device/i }).waitFor();
        return {
          heading: await page.getByRole('heading', { name: /new device/i }).innerText(),
          text: (await page.locator('body').innerText()).replace(/\s+/g, ' '),
        };
      });
    }

    check('Synapse advertises MSC4108 (QR login) on /_matrix/client/versions', async () => {
      const res = await app.request('/_matrix/client/versions');
      assert.equal(res.status, 200, res.body);
      const features = res.json().unstable_features ?? {};
      assert.equal(features['org.matrix.msc4108'], true, `unstable_features: ${JSON.stringify(features)}`);
    });

    check('A signs in with OAuth and shows a QR code, B scans it; after Allow B is the same user on its own device, verified, with the secrets', async () => {
      const { client, browser, signedIn, approveUrl, userCode } = await upToApproval('alice');
      assert.ok(approveUrl.startsWith(`${app.origin}/auth/link`), `verification URI: ${approveUrl}`);
      assert.equal(new URL(approveUrl).searchParams.get('code'), userCode, 'verification_uri_complete carries the user code B shows');

      const approval = await openApproval(browser, approveUrl);
      assert.ok(approval.text.includes(userCode), `the approval page shows the user code ${userCode}: ${approval.text}`);
      assert.ok(approval.text.includes(CLIENT_NAME), `the approval page names the client: ${approval.text}`);
      await browser.step('allow', async (page) => {
        await page.getByRole('button', { name: 'Allow', exact: true }).click();
        await page.getByRole('heading', { name: /signed in/i }).waitFor();
      });

      const done = await client.next('done', 120000);
      assert.equal(await client.exited(), 0, client.transcript());
      assert.deepEqual(done.a, { user_id: signedIn.user_id, device_id: signedIn.device_id });
      assert.equal(done.b.user_id, done.a.user_id, 'B is signed in as the same user');
      assert.notEqual(done.b.device_id, done.a.device_id, 'B has its own device');
      assert.ok(approval.text.includes(done.b.device_id), `the approval page shows B's device ID ${done.b.device_id}: ${approval.text}`);
      assert.deepEqual(
        { user_id: done.whoami.user_id, device_id: done.whoami.device_id },
        done.b,
        "B's whoami names B's user and device",
      );
      assert.equal(done.b_has_cross_signing_secrets, true, 'B holds the private cross-signing keys');
      assert.equal(done.b_verified, true, "B's device is cross-signed by the user's identity");
      assert.equal(done.a_sees_b_verified, true, "A sees B's device as verified");
    }, 300000);

    check('after Deny on the approval page, B gets access_denied and is not signed in', async () => {
      const { client, browser, approveUrl, userCode } = await upToApproval('bob');
      const approval = await openApproval(browser, approveUrl);
      assert.ok(approval.text.includes(userCode), `the approval page shows the user code ${userCode}: ${approval.text}`);
      await browser.step('deny', async (page) => {
        await page.getByRole('button', { name: 'Deny', exact: true }).click();
        // Whatever the next page says, the approval form is gone.
        await page.getByRole('button', { name: 'Allow', exact: true }).waitFor({ state: 'detached' });
        await page.locator('h1').first().waitFor();
      });
      const error = await client.next('error', 60000);
      assert.equal(error.stage, 'new_device_login', JSON.stringify(error));
      assert.equal(error.oauth_error, 'access_denied', JSON.stringify(error));
      assert.equal(await client.exited(), 1);
    }, 300000);
  });
}
