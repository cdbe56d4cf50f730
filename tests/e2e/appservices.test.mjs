// Bridges (README "Bridges"): an appservice registration dropped into <data>/appservices/ reaches
// Synapse, and an encrypted bridge can work under MAS. A tiny appservice (an HTTP server in this
// process) is registered with MSC4190 and MSC3202 turned on; through the public port and its
// as_token it registers a user of its namespace, creates that user's device itself (MSC4190),
// uploads the device's keys while masquerading as it (the `device_id` parameter of MSC3202), and
// joins a room where a normal user (made with `appliance mas -- manage register-user`, signed in
// through the legacy login) talks. The appservice must receive the message in a transaction
// carrying the hs_token, a to-device message for its device (MSC2409/MSC4203) and that device's
// one-time key count (MSC3202). On SQLite and PostgreSQL.
//
// A malformed registration file stops `appliance run` before anything starts: exit 1 and one
// line naming the file and the key, without a token.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { backends, skipReason } from '../lib/config.mjs';
import { Harness, e2eTest, sharedCheck } from '../lib/harness.mjs';
import { request, waitFor } from '../lib/http.mjs';
import { randomAlnum, registerUser, serverNameOf } from '../lib/oidc.mjs';

/**
 * The appservice: answers `PUT /_matrix/app/v1/transactions/:txn` with `{}` and keeps every
 * transaction whose `Authorization` is `Bearer <hsToken>`; anything else is counted as refused.
 */
class TinyAppservice {
  constructor(hsToken) {
    this.hsToken = hsToken;
    this.transactions = [];
    this.refused = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const answer = (status, body) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        const txn = req.url.match(/^\/_matrix\/app\/v1\/transactions\/([^/?]+)/);
        if (req.method !== 'PUT' || !txn) {
          return answer(404, { errcode: 'M_UNRECOGNIZED', error: 'not here' });
        }
        if (req.headers.authorization !== `Bearer ${this.hsToken}`) {
          this.refused.push(req.url);
          return answer(403, { errcode: 'M_FORBIDDEN', error: 'bad hs_token' });
        }
        this.transactions.push({ txnId: decodeURIComponent(txn[1]), ...JSON.parse(Buffer.concat(chunks)) });
        answer(200, {});
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  close() {
    return new Promise((resolve) => this.server.close(resolve));
  }

  /** The first transaction `predicate` accepts. */
  waitFor(what, predicate) {
    return waitFor(what, () => this.transactions.find(predicate), { timeoutMs: 45000 });
  }
}

/** A registration file; `extra` lines are appended. */
function registration({ url, asToken, hsToken }, extra = '') {
  return [
    'id: e2e-bridge',
    `url: ${url}`,
    `as_token: ${asToken}`,
    `hs_token: ${hsToken}`,
    'sender_localpart: e2ebridgebot',
    'rate_limited: false',
    'receive_ephemeral: true',
    'io.element.msc4190: true',
    'org.matrix.msc3202: true',
    'namespaces:',
    '  users:',
    "    - exclusive: true",
    "      regex: '@e2ebridge_.*'",
    '  aliases: []',
    '  rooms: []',
    extra,
  ].join('\n');
}

function writeRegistration(app, name, text) {
  const dir = path.join(app.dataDir, 'appservices');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), text);
}

/** Canonical JSON (the Matrix spec's "Signing JSON"): sorted keys, no spaces. */
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Real device keys for `userId`/`deviceId`, self-signed with a fresh ed25519 key. */
function deviceKeys(userId, deviceId) {
  const ed = crypto.generateKeyPairSync('ed25519');
  const curve = crypto.generateKeyPairSync('x25519');
  const unpadded = (key) =>
    key.export({ format: 'jwk' }).x.replace(/-/g, '+').replace(/_/g, '/');
  const keys = {
    user_id: userId,
    device_id: deviceId,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: {
      [`curve25519:${deviceId}`]: unpadded(curve.publicKey),
      [`ed25519:${deviceId}`]: unpadded(ed.publicKey),
    },
  };
  const signature = crypto.sign(null, Buffer.from(canonicalJson(keys)), ed.privateKey).toString('base64').replace(/=+$/, '');
  return { ...keys, signatures: { [userId]: { [`ed25519:${deviceId}`]: signature } } };
}

for (const backend of backends) {
  describe(`${backend}: an encrypted bridge under MAS`, { skip: skipReason(backend) }, () => {
    const h = new Harness(`${backend}: appservices`);
    const check = sharedCheck(h);
    const asToken = `as-${randomAlnum(32)}`;
    const hsToken = `hs-${randomAlnum(32)}`;
    const bridge = new TinyAppservice(hsToken);
    let app;
    let serverName;

    /** A client-server call through the public port: { status, body (parsed) }. */
    async function call(method, p, token, body) {
      const res = await request(app.url(p), {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: res.body ? res.json() : null };
    }
    /** `call` that must answer 200. */
    async function ok(method, p, token, body) {
      const res = await call(method, p, token, body);
      assert.equal(res.status, 200, `${method} ${p}: ${JSON.stringify(res.body)}`);
      return res.body;
    }

    before(async () => {
      try {
        const url = await bridge.listen();
        h.defer(() => bridge.close());
        app = await h.appliance(backend);
        writeRegistration(app, 'e2e-bridge.yaml', registration({ url, asToken, hsToken }));
        app.start();
        await app.waitHealthy();
        serverName = serverNameOf(app);
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });
    after(() => h.cleanup(), { timeout: 60000 });

    check('the rendered homeserver.yaml lists the registration and the bridge features', () => {
      const rendered = fs.readFileSync(path.join(app.runDir, 'homeserver.yaml'), 'utf8');
      assert.ok(rendered.includes(path.join(app.dataDir, 'appservices', 'e2e-bridge.yaml')), rendered);
      assert.match(rendered, /msc3202_transaction_extensions: true/);
      assert.match(rendered, /msc2409_to_device_messages_enabled: true/);
      assert.ok(!app.logText().includes(asToken) && !app.logText().includes(hsToken), 'a token was logged');
    });

    check('appliance doctor lists the bridge and finds its URL answering', async () => {
      const r = await app.command(['doctor']);
      const out = [...r.stdout, ...r.stderr].join('\n');
      assert.equal(r.code, 0, out);
      assert.match(
        out,
        new RegExp(`^✅ appservice e2e-bridge \\(appservices/e2e-bridge\\.yaml\\): http://127\\.0\\.0\\.1:\\d+ answers \\(HTTP 404\\); sender @e2ebridgebot:${serverName}$`, 'm'),
      );
      assert.ok(!out.includes(asToken) && !out.includes(hsToken), 'a token was shown');
    });

    check('a bridge user gets a device of its own, keys, and the room traffic', async () => {
      const ghost = `@e2ebridge_alice:${serverName}`;
      const deviceId = `BRIDGE${randomAlnum(6)}`;
      const as = (p) => `${p}${p.includes('?') ? '&' : '?'}user_id=${encodeURIComponent(ghost)}`;

      // Registration under MAS: the appservice login type, and no access token (MSC4190).
      const registered = await ok('POST', '/_matrix/client/v3/register', asToken, {
        type: 'm.login.application_service',
        username: 'e2ebridge_alice',
        inhibit_login: true,
      });
      assert.equal(registered.user_id, ghost);
      assert.equal(registered.access_token, undefined);

      // MSC4190: the appservice creates the device itself.
      const created = await call('PUT', as(`/_matrix/client/v3/devices/${deviceId}`), asToken, {
        display_name: 'e2e bridge device',
      });
      assert.ok([200, 201].includes(created.status), JSON.stringify(created));
      const devices = await ok('GET', as('/_matrix/client/v3/devices'), asToken);
      assert.ok(devices.devices.some((d) => d.device_id === deviceId), JSON.stringify(devices));

      // MSC3202 device masquerading: keys uploaded as that device.
      const keys = deviceKeys(ghost, deviceId);
      const uploaded = await ok(
        'POST',
        as(`/_matrix/client/v3/keys/upload?device_id=${deviceId}`),
        asToken,
        {
          device_keys: keys,
          one_time_keys: {
            [`signed_curve25519:AAAAAQ`]: { key: keys.keys[`curve25519:${deviceId}`], signatures: keys.signatures },
          },
        },
      );
      assert.equal(uploaded.one_time_key_counts?.signed_curve25519, 1, JSON.stringify(uploaded));

      // A normal user sees the device and its keys, and talks to the bridge user in a room.
      const user = await registerUser(app, `e2e${randomAlnum(6).toLowerCase()}`);
      const login = await ok('POST', '/_matrix/client/v3/login', 'none', {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: user.username },
        password: user.password,
      });
      const token = login.access_token;
      const queried = await ok('POST', '/_matrix/client/v3/keys/query', token, { device_keys: { [ghost]: [] } });
      assert.equal(
        queried.device_keys?.[ghost]?.[deviceId]?.keys?.[`ed25519:${deviceId}`],
        keys.keys[`ed25519:${deviceId}`],
        JSON.stringify(queried),
      );
      const { room_id: roomId } = await ok('POST', '/_matrix/client/v3/createRoom', token, { invite: [ghost] });
      await ok('POST', as(`/_matrix/client/v3/join/${encodeURIComponent(roomId)}`), asToken, {});
      const text = `hello bridge ${randomAlnum(8)}`;
      const sent = await ok('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${randomAlnum(8)}`, token, {
        msgtype: 'm.text',
        body: text,
      });
      const withMessage = await bridge.waitFor('the message in a transaction', (t) =>
        t.events?.some((e) => e.event_id === sent.event_id),
      );
      const event = withMessage.events.find((e) => e.event_id === sent.event_id);
      assert.equal(event.content.body, text);
      assert.equal(event.sender, login.user_id);

      // MSC2409/MSC4203: a to-device message to the bridge's device reaches the appservice,
      // and MSC3202 adds that device's one-time key count to the transaction.
      const secret = randomAlnum(12);
      await ok('PUT', `/_matrix/client/v3/sendToDevice/m.e2e.test/${randomAlnum(8)}`, token, {
        messages: { [ghost]: { [deviceId]: { secret } } },
      });
      const withToDevice = await bridge.waitFor('the to-device message in a transaction', (t) =>
        t['de.sorunome.msc2409.to_device']?.some((m) => m.content?.secret === secret),
      );
      const message = withToDevice['de.sorunome.msc2409.to_device'].find((m) => m.content?.secret === secret);
      assert.equal(message.to_user_id, ghost);
      assert.equal(message.to_device_id, deviceId);
      assert.equal(
        withToDevice['org.matrix.msc3202.device_one_time_keys_count']?.[ghost]?.[deviceId]?.signed_curve25519,
        1,
        JSON.stringify(withToDevice),
      );
      assert.deepEqual(bridge.refused, [], 'a transaction came without the hs_token');
    }, 120000);
  });
}

e2eTest('a malformed registration file stops the start with one line naming it', {}, async (h) => {
  const app = await h.appliance('sqlite');
  const hsToken = `hs-${randomAlnum(32)}`;
  // No as_token: Synapse would refuse it at start, over and over.
  writeRegistration(
    app,
    'telegram.yaml',
    registration({ url: 'http://127.0.0.1:1', asToken: 'x', hsToken }).replace(/^as_token: .*\n/m, ''),
  );
  const r = await app.command(['run'], {}, 60000);
  const shown = `exit ${JSON.stringify([r.code, r.signal])}\nstdout:\n${r.stdout.join('\n')}\nstderr:\n${r.stderr.join('\n')}`;
  assert.equal(r.code, 1, shown);
  assert.deepEqual(r.stderr, ['appliance: appservices/telegram.yaml: as_token: missing'], shown);
  assert.ok(!r.stdout.some((l) => l.startsWith('synapse |') || l.startsWith('mas |')), `a child started; ${shown}`);
  assert.ok(![...r.stdout, ...r.stderr].some((l) => l.includes(hsToken)), `the token was shown; ${shown}`);
});
