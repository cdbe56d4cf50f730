// Compat sessions after the login (issue 4, the compat layer), with matrix-js-sdk through the
// public port against real Synapse: /refresh rotates a refreshable mct_/mcr_ pair (a consumed
// refresh token is M_UNKNOWN_TOKEN); /logout ends a token at once (MAS deletes the device, so
// Synapse's 2-minute introspection cache cannot keep it alive); /logout/all needs
// `io.element.only_compat_is_fine: true` (else M_UNRECOGNIZED) and then ends the user's compat
// sessions. compat-session.<backend>.test.mjs run it once per backend, one appliance each.
//
// Password attempts: 2 (erin, frank) of MAS's burst of 3 per client IP
// (docs/protocol.md#rate-limits).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Harness } from '../lib/harness.mjs';
import { expectMatrixError, matrixClient, passwordLogin } from '../lib/matrix.mjs';
import { Recorder, introspect, randomAlnum, registerUser, serverNameOf, whoami, recordedTest } from '../lib/oidc.mjs';

/** Asserts a Matrix error from matrix-js-sdk: HTTP status and errcode. */
function assertMatrixError(err, status, errcode, what) {
  assert.equal(err.errcode, errcode, `${what}: expected ${errcode}, got ${err.errcode} (${err.httpStatus}): ${err.message}`);
  assert.equal(err.httpStatus, status, `${what}: HTTP status`);
}

/** Asserts a raw answer is the Matrix error `status`/`errcode`. */
function assertRawError(res, status, errcode, what) {
  assert.equal(res.status, status, `${what}: expected ${status} ${errcode}, got ${res.status} ${res.body}`);
  assert.equal(res.json().errcode, errcode, `${what}: ${res.body}`);
}

/** Declares the refresh and logout tests on `backend`. */
export function compatSessionSuite(backend) {
  const skip = skipReason(backend);
  describe(`${backend}: compat sessions (refresh, logout) with matrix-js-sdk against real Synapse`, { skip }, () => {
    const h = new Harness(`${backend}: compat session`);
    let app;
    let serverName;
    let erin;
    let frank;
    // erin's current pair (the refresh test rotates it; the logout/all test ends it).
    let erinLogin;

    before(async () => {
      try {
        app = await h.appliance(backend);
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
        erin = await registerUser(app, 'erin');
        frank = await registerUser(app, 'frank');
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);

    check('refresh rotates: a new mct_/mcr_ pair for the same device; the consumed refresh token is M_UNKNOWN_TOKEN', async (rec) => {
      const deviceId = `E2E${randomAlnum(8)}`;
      const login = await passwordLogin(app, rec, erin, { device_id: deviceId, refresh_token: true });
      assert.match(login.refresh_token ?? '', /^mcr_/, 'refresh_token: true gives an mcr_ refresh token');
      assert.equal((await matrixClient(app, rec, login).whoami()).device_id, deviceId);

      const refreshed = await matrixClient(app, rec).refreshToken(login.refresh_token);
      assert.match(refreshed.access_token, /^mct_/);
      assert.match(refreshed.refresh_token, /^mcr_/);
      assert.notEqual(refreshed.access_token, login.access_token);
      assert.notEqual(refreshed.refresh_token, login.refresh_token);
      assert.ok(Number.isInteger(refreshed.expires_in_ms) && refreshed.expires_in_ms > 0, `expires_in_ms: ${refreshed.expires_in_ms}`);

      const me = await matrixClient(app, rec, { ...login, ...refreshed }).whoami();
      assert.equal(me.user_id, `@erin:${serverName}`);
      assert.equal(me.device_id, deviceId, 'refresh keeps the device');

      const err = await expectMatrixError('the consumed refresh token again', () => matrixClient(app, rec).refreshToken(login.refresh_token));
      assertMatrixError(err, 401, 'M_UNKNOWN_TOKEN', 'the consumed refresh token again');

      // The new pair goes on rotating.
      const again = await matrixClient(app, rec).refreshToken(refreshed.refresh_token);
      assert.match(again.access_token, /^mct_/);
      assert.equal((await matrixClient(app, rec, { ...login, ...again }).whoami()).device_id, deviceId);
      erinLogin = { ...login, ...again };
    });

    check('logout ends the token at once (whoami 401 M_UNKNOWN_TOKEN on the next request); another user is not affected', async (rec) => {
      const login = await passwordLogin(app, rec, frank);
      const before = await whoami(app, rec, login.access_token);
      assert.equal(before.status, 200, `whoami before logout: ${before.status} ${before.body}`);
      // Synapse now holds "active" for this token in its 2-minute cache: only the deletion of
      // frank's device can make the next request fail.
      assert.deepEqual(await matrixClient(app, rec, login).logout(), {});
      assertRawError(await whoami(app, rec, login.access_token), 401, 'M_UNKNOWN_TOKEN', 'whoami right after logout');
      assert.equal((await introspect(app, rec, login.access_token)).active, false, 'MAS answers inactive after logout');
      const err = await expectMatrixError('logout again with the ended token', () => matrixClient(app, rec, login).logout());
      assertMatrixError(err, 401, 'M_UNKNOWN_TOKEN', 'logout again with the ended token');
      if (erinLogin) assert.equal((await whoami(app, rec, erinLogin.access_token)).status, 200, 'erin\'s token still works');
    });

    check('logout/all: M_UNRECOGNIZED without io.element.only_compat_is_fine; with it, the user\'s compat token fails at once', async (rec) => {
      assert.ok(erinLogin, 'needs erin\'s login from the refresh test');
      const send = (body) =>
        rec.send(app.url('/_matrix/client/v3/logout/all'), {
          method: 'POST',
          headers: { authorization: `Bearer ${erinLogin.access_token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const plain = await send({});
      assert.equal(plain.json().errcode, 'M_UNRECOGNIZED', `logout/all without the flag: ${plain.status} ${plain.body}`);
      assert.equal((await whoami(app, rec, erinLogin.access_token)).status, 200, 'nothing ended without the flag');

      const all = await send({ 'io.element.only_compat_is_fine': true });
      assert.equal(all.status, 200, `logout/all with the flag: ${all.status} ${all.body}`);
      assertRawError(await whoami(app, rec, erinLogin.access_token), 401, 'M_UNKNOWN_TOKEN', 'whoami right after logout/all');
    });
  });
}
