// The front page at `/` (README "The front page"): answered by the router, not Synapse; it names
// the server and links to the account page, and to registration only when that is on; the
// operator's `<data>/config/index.html` replaces it at the next start; HEAD has no body, other
// methods 405. And `/.well-known/change-password` leads to the password form. One appliance on
// SQLite, restarted between settings.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Harness, sharedCheck } from '../lib/harness.mjs';
import { request } from '../lib/http.mjs';

describe('sqlite: the front page', { skip: skipReason('sqlite') }, () => {
  const h = new Harness('sqlite: front page');
  let app;

  before(async () => {
    try {
      app = await h.appliance('sqlite', { env: { APPLIANCE_REGISTRATION: 'open' } });
      app.start();
      await app.waitHealthy();
    } catch (err) {
      h.dump(err);
      throw err;
    }
  }, { timeout: 180000 });

  after(() => h.cleanup(), { timeout: 60000 });

  const check = sharedCheck(h);

  /** Restarts the appliance with `env` over its own. */
  async function restart(env) {
    const r = await app.stop();
    assert.deepEqual([r.code, r.signal], [0, null]);
    app.start(env);
    await app.waitHealthy();
  }

  check('GET / is the built-in page: server name, sign-in help, account and register links, security headers', async () => {
    const res = await app.request('/');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(res.headers['content-security-policy'], /default-src 'none'/);
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['referrer-policy'], 'same-origin');
    const serverName = JSON.parse(fs.readFileSync(path.join(app.dataDir, 'appliance.json'), 'utf8')).server_name;
    assert.ok(res.body.includes(`<h1>${serverName}</h1>`), res.body);
    assert.ok(!res.body.includes('It works'), 'not Synapse\'s static page');
    for (const expected of ['Element X', 'Element Web', 'href="/auth/account/"', 'href="/auth/register"', 'appliance doctor', 'lang="en"']) {
      assert.ok(res.body.includes(expected), `no ${expected} in ${res.body}`);
    }
    // Open registration with mail off needs a token: the page says so.
    assert.match(res.body, /needs a registration token/);
    assert.ok(app.logText().includes('registration needs a registration token'), 'the start says so too');
  });

  check('HEAD / has the headers and no body; other methods 405 with Allow', async () => {
    const get = await app.request('/');
    const head = await app.request('/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)));
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await app.request('/', { method, body: '' });
      assert.equal(res.status, 405, `${method}: ${res.body}`);
      assert.equal(res.headers.allow, 'GET, HEAD', method);
    }
    // Only `/` exactly: anything else still goes to Synapse.
    const other = await app.request('/index.html');
    assert.notEqual(other.headers['content-security-policy'], get.headers['content-security-policy']);
  });

  check('/.well-known/change-password redirects to the password form', async () => {
    const res = await app.request('/.well-known/change-password');
    assert.equal(res.status, 302, res.body);
    assert.equal(res.headers.location, '/auth/account/password');
  });

  check('registration off: no register link', async () => {
    await restart({ APPLIANCE_REGISTRATION: 'off' });
    const res = await app.request('/');
    assert.equal(res.status, 200);
    assert.ok(res.body.includes('href="/auth/account/"'), res.body);
    assert.ok(!res.body.includes('/auth/register'), res.body);
  }, 180000);

  check('<data>/config/index.html replaces the page at the next start', async () => {
    const custom = '<!DOCTYPE html><html lang="de"><title>Willkommen</title><h1>Unser Chat</h1></html>\n';
    fs.mkdirSync(path.join(app.dataDir, 'config'), { recursive: true });
    const file = path.join(app.dataDir, 'config', 'index.html');
    fs.writeFileSync(file, custom);
    const before = await app.request('/');
    assert.ok(before.body.includes('Element X'), 'read at start only: the built-in page until a restart');
    await restart({ APPLIANCE_REGISTRATION: 'off' });
    const res = await app.request('/');
    assert.equal(res.status, 200);
    assert.equal(res.body, custom);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    fs.rmSync(file);
    await restart({ APPLIANCE_REGISTRATION: 'off' });
    assert.ok((await app.request('/')).body.includes('Element X'), 'the built-in page is back');
  }, 240000);
});
