// The public router (docs/architecture.md#public-routing) in front of a real Synapse and MAS:
// health, pass-through to Synapse, the well-known documents, /auth, the blocked internal API, and a
// request held open for 35 s. The tests of one backend share one appliance and run concurrently, so
// the slow one costs no extra wall time; routing.<backend>.test.mjs run this suite once per
// backend, as separate files so that the two run at the same time.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Harness, sharedCheck } from '../lib/harness.mjs';
import { request, response } from '../lib/http.mjs';

/** Declares the routing tests on `backend`. */
export function routingSuite(backend) {
  describe(`${backend}: routing`, { concurrency: true, skip: skipReason(backend) }, () => {
    const h = new Harness(`${backend}: routing`);
    let app;

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    // Tests share the appliance above: dump its output on failure.
    const check = sharedCheck(h);

    check('GET /healthz → 200 with {"status":"ok"}', async () => {
      const res = await app.request('/healthz');
      assert.equal(res.status, 200, res.body);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(res.json().status, 'ok');
    });

    check('GET /_matrix/client/versions → Synapse\'s own answer', async () => {
      const direct = await request(app.synapseUrl('/_matrix/client/versions'));
      assert.equal(direct.status, 200, direct.body);
      const res = await app.request('/_matrix/client/versions');
      assert.equal(res.status, 200, res.body);
      assert.ok(Array.isArray(res.json().versions), res.body);
      assert.deepEqual(res.json(), direct.json());
    });

    check('GET /.well-known/matrix/client → base_url and the MAS issuer/account, CORS *', async () => {
      const res = await app.request('/.well-known/matrix/client');
      assert.equal(res.status, 200, res.body);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(res.headers['access-control-allow-origin'], '*');
      assert.deepEqual(res.json(), {
        'm.homeserver': { base_url: app.origin },
        'org.matrix.msc2965.authentication': {
          issuer: `${app.origin}/auth/`,
          account: `${app.origin}/auth/account/`,
        },
      });
    });

    check('GET /.well-known/matrix/server → host:port of the http origin', async () => {
      const res = await app.request('/.well-known/matrix/server');
      assert.equal(res.status, 200, res.body);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.deepEqual(res.json(), { 'm.server': `localhost:${app.ports.http}` });
    });

    check('GET /auth → 308 to /auth/', async () => {
      const res = await app.request('/auth');
      assert.equal(res.status, 308, res.body);
      assert.equal(new URL(res.headers.location, app.url('/auth')).pathname, '/auth/');
    });

    check('GET /auth/health → MAS answers through the router', async () => {
      const res = await app.request('/auth/health');
      assert.equal(res.status, 200, res.body);
    });

    check('/_synapse/mas/* → 404 from the public port, even with the shared secret', async () => {
      // Straight to Synapse with the secret, a provisioned user is found...
      const made = await app.masApi('POST', 'provision_user', { localpart: 'bob' });
      assert.equal(made.status, 201, made.body);
      const direct = await app.masApi('GET', 'query_user?localpart=bob');
      assert.equal(direct.status, 200, direct.body);
      // ...through the router it is 404, with or without the secret (no auth error either).
      for (const headers of [{}, { authorization: `Bearer ${app.sharedSecret()}` }]) {
        const res = await app.request('/_synapse/mas/query_user?localpart=bob', { headers });
        assert.equal(res.status, 404, res.body);
        assert.doesNotMatch(res.body, /@bob:/);
      }
      const post = await app.request('/_synapse/mas/provision_user', {
        method: 'POST',
        headers: { authorization: `Bearer ${app.sharedSecret()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ localpart: 'mallory' }),
      });
      assert.equal(post.status, 404, post.body);
      const stillUnknown = await app.masApi('GET', 'query_user?localpart=mallory');
      assert.equal(stillUnknown.status, 404, 'the blocked provision_user must not have reached Synapse');
    });

    check('a request whose body trickles in over 35 s gets Synapse\'s real answer', async () => {
      // The same request sent at once, straight to Synapse, gives the answer to expect.
      const path = '/_matrix/client/v3/createRoom';
      const direct = await request(app.synapseUrl(path), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.ok(direct.status >= 400 && direct.status < 500 && direct.status !== 404, direct.body);
      assert.match(direct.json().errcode, /^M_/);

      const started = Date.now();
      const res = await new Promise((resolve, reject) => {
        const req = http.request(app.url(path), {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        }, (r) => {
          const chunks = [];
          r.on('data', (c) => chunks.push(c));
          r.on('end', () => resolve(response(r, Buffer.concat(chunks))));
          r.on('error', reject);
        });
        req.on('error', reject);
        // '{' now, a space every 5 s, '}' after 35 s.
        req.write('{');
        let n = 0;
        const timer = setInterval(() => {
          n += 1;
          if (n < 7) {
            req.write(' ');
          } else {
            clearInterval(timer);
            req.end('}');
          }
        }, 5000);
        req.on('close', () => clearInterval(timer));
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 35000, `answered after ${elapsed} ms, before the body was complete`);
      assert.equal(res.status, direct.status, `router answered ${res.status} ${res.body}`);
      assert.deepEqual(res.json(), direct.json());
    }, 90000);
  });
}
