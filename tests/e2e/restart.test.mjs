// A restart keeps the data: every secret byte-identical, the pinned server name, and Synapse's
// users (provisioned through Synapse's internal /_synapse/mas API with the shared secret).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { backends, skipReason } from '../lib/config.mjs';
import { e2eTest, snapshotDir } from '../lib/harness.mjs';

const SECRETS = [
  'synapse_signing.key',
  'synapse_macaroon',
  'synapse_form_secret',
  'synapse_registration_secret',
  'mas_synapse_shared_secret',
  'mas_encryption_key',
  'mas_rsa.pem',
  'mas_ec_p256.pem',
];

for (const backend of backends) {
  e2eTest(`${backend}: restart keeps every secret byte-identical and Synapse's users`, {
    skip: skipReason(backend),
    timeout: 240000,
  }, async (h) => {
    const app = await h.appliance(backend);
    app.start();
    await app.waitHealthy();

    const secretsDir = path.join(app.dataDir, 'secrets');
    assert.equal(fs.statSync(secretsDir).mode & 0o777, 0o700, 'secrets/ must be 0700');
    for (const name of SECRETS) {
      const st = fs.statSync(path.join(secretsDir, name));
      assert.equal(st.mode & 0o777, 0o600, `${name} must be 0600`);
      assert.ok(st.size > 0, `${name} is empty`);
    }
    assert.match(fs.readFileSync(path.join(secretsDir, 'mas_encryption_key'), 'utf8').trim(), /^[0-9a-f]{64}$/);

    const created = await app.masApi('POST', 'provision_user', { localpart: 'alice', set_displayname: 'Alice' });
    assert.equal(created.status, 201, created.body);
    const before = snapshotDir(secretsDir);
    const pin = fs.readFileSync(path.join(app.dataDir, 'appliance.json'), 'utf8');
    const serverName = JSON.parse(pin).server_name;

    const stop = await app.stop();
    assert.deepEqual([stop.code, stop.signal], [0, null], 'first run must exit 0 on SIGTERM');

    app.start();
    await app.waitHealthy();
    assert.deepEqual(snapshotDir(secretsDir), before, 'secrets/ changed across a restart');
    assert.equal(fs.readFileSync(path.join(app.dataDir, 'appliance.json'), 'utf8'), pin);

    const found = await app.masApi('GET', 'query_user?localpart=alice');
    assert.equal(found.status, 200, found.body);
    assert.deepEqual(found.json(), {
      user_id: `@alice:${serverName}`,
      display_name: 'Alice',
      avatar_url: null,
      is_suspended: false,
      is_deactivated: false,
    });
    const again = await app.masApi('POST', 'provision_user', { localpart: 'alice' });
    assert.equal(again.status, 200, `an existing user is answered 200, got ${again.status} ${again.body}`);
  });
}
