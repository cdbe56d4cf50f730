// Attacks on the appliance's own origin, tried as a stranger would, in headless Chromium through
// the public port with real Synapse behind it: a client registered with a script redirect URI
// (`javascript:`, the reversed one-label host of its client_uri) is refused; the same client put
// straight into the database, as if stored under older rules, is never redirected or posted to:
// its authorization request ends on an error page that runs no script and carries the
// Content-Security-Policy. security.<backend>.test.mjs run it once per backend.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { Harness, sharedCheck } from '../lib/harness.mjs';
import { queryDatabase } from '../lib/pg.mjs';

const EXPLOIT = 'javascript:alert(document.domain)//';

/** Runs `sql` with `params` ($1, $2…) on MAS's database of `app`, on either backend. */
async function masQuery(app, sql, params) {
  if (app.backend === 'postgres') {
    return queryDatabase(app.dbName, sql.replaceAll('oauth2_clients', 'mas.oauth2_clients'), params);
  }
  // Node 20 has no SQLite module; Python's is on every machine that runs Synapse.
  const db = path.join(app.dataDir, 'mas', 'mas.db');
  const script = 'import json,sqlite3,sys\n'
    + 'c=sqlite3.connect(sys.argv[1]);c.execute(sys.argv[2].replace("$1","?").replace("$2","?").replace("$3","?"),json.loads(sys.argv[3]));c.commit()';
  execFileSync('python3', ['-c', script, db, sql, JSON.stringify(params)]);
  return [];
}

/** Declares the security tests on `backend`. */
export function securitySuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: security of the pages (Chromium)`, { skip }, () => {
    const h = new Harness(`${backend}: security`);
    let app;
    let browser;

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        browser = await Browser.launch(`${backend}-security`);
        h.defer(() => browser.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const sharedTest = sharedCheck(h);

    const check = (name, fn, timeout = 90000) => sharedTest(name, fn, timeout);

    const register = (metadata) =>
      app.request('/auth/oauth2/registration', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          application_type: 'native',
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
          ...metadata,
        }),
      });

    check('registering a javascript: redirect URI (any case) is refused with invalid_redirect_uri', async () => {
      for (const uri of [EXPLOIT, 'JavaScript:alert(document.domain)//', 'vbscript:msgbox(1)']) {
        const scheme = uri.split(':')[0].toLowerCase();
        const res = await register({ client_uri: `https://${scheme}/`, redirect_uris: [uri] });
        assert.equal(res.status, 400, res.body);
        assert.equal(res.json().error, 'invalid_redirect_uri', res.body);
      }
    });

    check('a stored client with a javascript: redirect URI: the authorize page runs no script and sends a CSP', async () => {
      // A good registration, then rewritten in the database as registration used to allow.
      const res = await register({ client_name: 'Evil', client_uri: 'https://example.org/', redirect_uris: ['org.example.app:/cb'] });
      assert.equal(res.status, 201, res.body);
      const clientId = res.json().client_id;
      await masQuery(
        app,
        'UPDATE oauth2_clients SET redirect_uris = $1, client_uri = $2 WHERE oauth2_client_id = $3',
        [JSON.stringify([EXPLOIT]), 'https://javascript/', clientId],
      );

      await browser.step('authorize with the stored exploit', async (page) => {
        const dialogs = [];
        const scriptNavigations = [];
        const onDialog = (dialog) => {
          dialogs.push(dialog.message());
          dialog.dismiss().catch(() => {});
        };
        const onRequest = (req) => {
          if (req.url().startsWith('javascript:')) scriptNavigations.push(req.url());
        };
        const onFrame = (frame) => {
          if (frame.url().startsWith('javascript:')) scriptNavigations.push(frame.url());
        };
        page.on('dialog', onDialog);
        page.on('request', onRequest);
        page.on('framenavigated', onFrame);
        try {
          for (const query of [
            `client_id=${clientId}&response_mode=form_post&response_type=x`,
            `client_id=${clientId}&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(EXPLOIT)}`,
          ]) {
            const answer = await page.goto(`${app.origin}/auth/authorize?${query}`);
            assert.equal(answer.status(), 400, query);
            const csp = answer.headers()['content-security-policy'] ?? '';
            assert.match(csp, /default-src 'none'/, csp);
            assert.match(csp, /form-action 'self';/, csp);
            assert.match(csp, /frame-ancestors 'none'/, csp);
            const html = await page.content();
            assert.ok(!html.includes('javascript:'), html);
            assert.equal(await page.locator('form').count(), 0, html);
            await page.getByRole('heading', { name: 'This application cannot sign you in' }).waitFor();
            // Whatever a person could press on the page leads nowhere near the script.
            for (const link of await page.locator('a, button').all()) {
              const href = (await link.getAttribute('href')) ?? '';
              assert.ok(!href.toLowerCase().startsWith('javascript:'), href);
            }
          }
          await page.waitForTimeout(500);
          assert.deepEqual(dialogs, [], 'no alert ran');
          assert.deepEqual(scriptNavigations, [], 'no javascript: navigation');
        } finally {
          page.off('dialog', onDialog);
          page.off('request', onRequest);
          page.off('framenavigated', onFrame);
        }
      });
    });
  });
}
