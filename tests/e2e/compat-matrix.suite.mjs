// Legacy Matrix clients against the appliance (issue 4, the compat layer): matrix-js-sdk logs in
// with passwords through the public port (/_matrix/client/v3/login, which the router hands to
// MAS), then does what a client does with real Synapse: alice creates a room and invites bob,
// bob joins, both send a message and each sees both via /sync. A wrong password is M_FORBIDDEN;
// the tenth quick wrong password is M_LIMIT_EXCEEDED with retry_after_ms. (Refresh and logout:
// compat-session.suite.mjs; legacy SSO: compat-sso.suite.mjs.) compat-matrix.<backend>.test.mjs
// run it once per backend, one appliance each.
//
// Password attempts: MAS allows a burst of 3 per client IP, then one per 20 s
// (docs/protocol.md#rate-limits), and every request here comes from 127.0.0.1. The tests run in
// order and make exactly 3 before the rate-limit test (alice, bob, the wrong password), which then
// expects the limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Harness } from '../lib/harness.mjs';
import {
  expectMatrixError,
  matrixClient,
  passwordLogin,
  roomConversation,
} from '../lib/matrix.mjs';
import { Recorder, introspect, randomAlnum, registerUser, serverNameOf, recordedTest } from '../lib/oidc.mjs';

/** Asserts a Matrix error from matrix-js-sdk: HTTP status and errcode. */
function assertMatrixError(err, status, errcode, what) {
  assert.equal(err.errcode, errcode, `${what}: expected ${errcode}, got ${err.errcode} (${err.httpStatus}): ${err.message}`);
  assert.equal(err.httpStatus, status, `${what}: HTTP status`);
}

/** Declares the compat-layer tests with matrix-js-sdk on `backend`. */
export function compatMatrixSuite(backend) {
  const skip = skipReason(backend);
  describe(`${backend}: legacy Matrix login (compat layer) with matrix-js-sdk against real Synapse`, { skip }, () => {
    const h = new Harness(`${backend}: compat matrix`);
    let app;
    let serverName;
    let alice;
    let bob;
    const clients = [];

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
        alice = await registerUser(app, 'alice');
        bob = await registerUser(app, 'bob');
        h.defer(() => {
          for (const c of clients) c.stopClient();
        });
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);

    /** A signed-in client of `login` (remembered for cleanup). */
    const clientOf = (login) => {
      const c = matrixClient(app, rec, login);
      clients.push(c);
      return c;
    };

    check('GET /login lists m.login.password, then m.login.sso (oauth_aware_preferred, MSC3824 flag), then m.login.token', async (rec) => {
      const { flows } = await matrixClient(app, rec).loginFlows();
      assert.deepEqual(flows.map((f) => f.type), ['m.login.password', 'm.login.sso', 'm.login.token'], JSON.stringify(flows));
      const sso = flows[1];
      assert.equal(sso.oauth_aware_preferred, true, JSON.stringify(sso));
      assert.equal(sso['org.matrix.msc3824.delegated_oidc_compatibility'], true, JSON.stringify(sso));
    });

    check('alice and bob log in with passwords; alice creates a room and invites bob; both send a message and see both via sync', async (rec) => {
      // alice: m.id.user with her localpart, a device of her choosing, a refreshable pair.
      const aliceDevice = `E2E${randomAlnum(8)}`;
      const aliceLogin = await passwordLogin(app, rec, alice, {
        device_id: aliceDevice,
        initial_device_display_name: 'alice on matrix-js-sdk',
        refresh_token: true,
      });
      assert.equal(aliceLogin.user_id, `@alice:${serverName}`);
      assert.equal(aliceLogin.device_id, aliceDevice, 'the client-chosen device ID is used as is');
      assert.match(aliceLogin.access_token, /^mct_/);
      assert.match(aliceLogin.refresh_token ?? '', /^mcr_/, 'refresh_token: true gives an mcr_ refresh token');
      assert.ok(Number.isInteger(aliceLogin.expires_in_ms) && aliceLogin.expires_in_ms > 0, `expires_in_ms: ${aliceLogin.expires_in_ms}`);

      // bob: his full MXID as the identifier (reduced to the localpart), no device, no refresh.
      const bobLogin = await passwordLogin(app, rec, { username: `@bob:${serverName}`, password: bob.password });
      assert.equal(bobLogin.user_id, `@bob:${serverName}`);
      assert.match(bobLogin.device_id, /^[A-Za-z0-9]{10}$/, 'a generated device ID is 10 alphanumerics');
      assert.match(bobLogin.access_token, /^mct_/);
      assert.equal(bobLogin.refresh_token, undefined, 'no refresh token unless asked for');
      assert.equal(bobLogin.expires_in_ms, undefined, 'a non-refreshable token never expires');

      const aliceClient = clientOf(aliceLogin);
      const bobClient = clientOf(bobLogin);

      // Synapse knows both tokens and the devices (upserted before /login answered).
      const me = await aliceClient.whoami();
      assert.deepEqual({ user_id: me.user_id, device_id: me.device_id }, { user_id: `@alice:${serverName}`, device_id: aliceDevice });
      assert.equal((await bobClient.whoami()).device_id, bobLogin.device_id);
      const { devices } = await aliceClient.getDevices();
      const dev = devices.find((d) => d.device_id === aliceDevice);
      assert.ok(dev, `alice's device ${aliceDevice} in Synapse: ${JSON.stringify(devices)}`);
      assert.equal(dev.display_name, 'alice on matrix-js-sdk');

      // What Synapse learns from MAS about a compat token.
      const seen = await introspect(app, rec, aliceLogin.access_token);
      assert.equal(seen.active, true, JSON.stringify(seen));
      assert.equal(seen.client_id, 'legacy');
      assert.equal(seen.username, 'alice');
      assert.equal(seen.device_id, aliceDevice);
      const scopes = (seen.scope ?? '').split(' ');
      for (const s of ['urn:matrix:client:api:*', 'urn:matrix:org.matrix.msc2967.client:api:*']) {
        assert.ok(scopes.includes(s), `introspection scope "${seen.scope}" lacks ${s}`);
      }
      assert.ok(!scopes.includes('urn:synapse:admin:*'), 'no admin scope for a password login');

      await roomConversation(aliceClient, bobClient);
    });

    check('a wrong password gives 403 M_FORBIDDEN', async (rec) => {
      const err = await expectMatrixError('wrong password', () => passwordLogin(app, rec, { username: 'alice', password: `${alice.password}-wrong` }));
      assertMatrixError(err, 403, 'M_FORBIDDEN', 'wrong password');
      assert.ok(!err.data?.access_token, 'no token with an error');
    });

    check('the tenth quick wrong password gives 429 M_LIMIT_EXCEEDED with retry_after_ms; while limited, the right password is refused too', async (rec) => {
      const answers = [];
      for (let i = 1; i <= 10; i++) {
        const err = await expectMatrixError(`wrong password #${i}`, () => passwordLogin(app, rec, { username: 'bob', password: `wrong-${i}` }));
        answers.push(err);
      }
      const codes = answers.map((e) => e.errcode);
      for (const c of codes) assert.ok(['M_FORBIDDEN', 'M_LIMIT_EXCEEDED'].includes(c), `answers: ${codes.join(' ')}`);
      const firstLimited = codes.indexOf('M_LIMIT_EXCEEDED');
      assert.ok(firstLimited >= 0, `no M_LIMIT_EXCEEDED in 10 quick wrong passwords: ${codes.join(' ')}`);
      assert.ok(codes.slice(firstLimited).every((c) => c === 'M_LIMIT_EXCEEDED'), `once limited, stays limited: ${codes.join(' ')}`);
      const tenth = answers[9];
      assertMatrixError(tenth, 429, 'M_LIMIT_EXCEEDED', 'the tenth wrong password');
      const retry = tenth.data?.retry_after_ms;
      assert.ok(Number.isInteger(retry) && retry > 0, `retry_after_ms: ${JSON.stringify(tenth.data)}`);

      // The limit applies before the password is checked: the right one gets no token now.
      const right = await expectMatrixError('the right password while limited', () => passwordLogin(app, rec, bob));
      assertMatrixError(right, 429, 'M_LIMIT_EXCEEDED', 'the right password while limited');
    });
  });
}
