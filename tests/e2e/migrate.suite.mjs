// Moving an existing Synapse onto the appliance (issue 13), end to end with real Synapse. A plain,
// pre-MAS Synapse (tests/lib/legacy-synapse.mjs: its own password login with a pepper, the test
// OIDC provider as its `oidc_providers` entry `testidp`) is populated only through Synapse's own
// APIs (password users, one with a non-ASCII password, an admin, a user with an email, a
// deactivated and a locked user, a user made by signing in through Synapse's OIDC in Chromium,
// a room with messages, a client with a device and one with a refresh token, a media upload) and
// stopped. Then the appliance takes the data over, with the same provider as its platform
// provider:
//
// (a) `appliance migrate --from <its homeserver.yaml> --dry-run` changes nothing (the appliance's
//     data dir, the legacy dir and both databases) and prints a summary naming the user count;
// (b) `appliance migrate --from …`, then `appliance run`: every password user signs in with the
//     old password through the compat API and through OAuth in Chromium; the old access token
//     answers whoami with the same device; the old refresh token refreshes; the SSO user signs in
//     through the platform provider into the same account; the admin is still admin (the admin
//     API answers an admin-scoped session, and the old admin's token); the deactivated and locked
//     users cannot sign in; the email is on the account page; the room, its messages and the media
//     are there; `/_matrix/key/v2/server` shows the same key id; a second migrate is refused;
// (c) the automatic path: a data dir laid out as the appliance's own with the pre-MAS Synapse
//     database (SQLite file in <data>/synapse, or the appliance's PostgreSQL database a copy of
//     the old one) and the old signing key and pepper in <data>/secrets: `appliance run`
//     migrates by itself, and a subset of the same assertions holds;
// (d) the same with an SSO link to an unknown provider (`oidc-other`) in the database: the start
//     stops with the reason, and neither database changes.
//
// On PostgreSQL `--from` only reads the config of a Synapse whose database is the appliance's
// configured one, so (b) gives the appliance the old database itself; (c) and (d) get copies made
// before (a) (CREATE DATABASE … TEMPLATE).
//
// Password attempts: MAS allows a burst of 3 per client address (docs/protocol.md#rate-limits)
// and every request here comes from loopback, whose X-Forwarded-For the router believes: each
// attempt below sends its own documentation address (RFC 5737), so none is limited.
// migrate.<backend>.test.mjs run it once per backend.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { after, before, describe } from 'node:test';
import { Browser, browserSkipReason } from '../lib/browser.mjs';
import { databaseUrl, skipReason, synapsePython } from '../lib/config.mjs';
import { Harness, snapshotDir } from '../lib/harness.mjs';
import { waitFor } from '../lib/http.mjs';
import { PLATFORM_PROVIDER_ID, TestIdp, upstreamCallbackOf } from '../lib/idp.mjs';
import { LEGACY_AUTH_PROVIDER, LegacySynapse, populateLegacy, synapseOidcCallbackOf } from '../lib/legacy-synapse.mjs';
import { matrixClient } from '../lib/matrix.mjs';
import { LoopbackCallback, Recorder, authorizationRequest, matrixScopes, oidc, randomAlnum, recordedTest, registerClient, whoami } from '../lib/oidc.mjs';
import { freePort } from '../lib/ports.mjs';
import { queryDatabase } from '../lib/pg.mjs';

const SERVER_NAME = 'legacy.test';
const ADMIN_SCOPE = 'urn:synapse:admin:*';

/** A fresh TEST-NET address (RFC 5737) per password attempt: MAS's limit is per address. */
let nextAddress = 1;
const freshAddress = () => `192.0.2.${nextAddress++}`;

/** What a native client sends when it registers (with a loopback redirect). */
function nativeClientMetadata(redirectUri) {
  return {
    client_name: 'Migration check (e2e)',
    client_uri: 'https://migration-e2e.example.org/',
    application_type: 'native',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

/** CREATE DATABASE <new> TEMPLATE <src> (src must have no connections); the new name. */
async function copyDatabase(h, src) {
  const name = `${src}_c${h.databases.length}`;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}" TEMPLATE "${src}"`);
  } finally {
    await client.end();
  }
  h.databases.push(name);
  return name;
}

/** Runs one statement on an SQLite file with the venv's Python (no sqlite3 CLI needed). */
function sqliteExec(file, sql, params = []) {
  const script = 'import json,sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nr=c.execute(sys.argv[2],sys.argv[3:]).fetchall()\nc.commit()\nprint(json.dumps(r))';
  return JSON.parse(execFileSync(synapsePython, ['-c', script, file, sql, ...params.map(String)], { encoding: 'utf8' }));
}

/**
 * A fingerprint of a PostgreSQL database: every table of every schema but the system's, with
 * its row count and an MD5 of its sorted rows. Equal fingerprints = nothing changed.
 */
async function pgFingerprint(dbName) {
  const tables = await queryDatabase(dbName, "SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2");
  const out = {};
  for (const { s, t } of tables) {
    const [row] = await queryDatabase(dbName, `SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM "${s}"."${t}" x`);
    out[`${s}.${t}`] = `${row.n} ${row.h}`;
  }
  return out;
}

/** How many MAS users the appliance has (0 when MAS's database or schema does not exist yet). */
async function masUserCount(app) {
  if (app.backend === 'postgres') {
    const [{ present }] = await queryDatabase(app.dbName, "SELECT to_regclass('mas.users') IS NOT NULL AS present");
    if (!present) return 0;
    return (await queryDatabase(app.dbName, 'SELECT count(*)::int AS n FROM mas.users'))[0].n;
  }
  const file = path.join(app.dataDir, 'mas', 'mas.db');
  if (!fs.existsSync(file)) return 0;
  const [[present]] = sqliteExec(file, "SELECT count(*) FROM sqlite_master WHERE name = 'users'");
  return present ? sqliteExec(file, 'SELECT count(*) FROM users')[0][0] : 0;
}

/** POST /login with a password from `address`: the raw answer. */
function compatPasswordLogin(app, rec, { username, password }, address = freshAddress(), extra = {}) {
  return rec.send(app.url('/_matrix/client/v3/login'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password, ...extra }),
  });
}

/** GET with a bearer token through the router: the raw answer. */
function authed(app, rec, p, token) {
  return rec.send(app.url(p), { headers: { authorization: `Bearer ${token}` } });
}

/** Declares the migration tests on `backend`. */
export function migrateSuite(backend) {
  const skip = skipReason(backend) || browserSkipReason();
  describe(`${backend}: moving a plain Synapse (own passwords, OIDC, sessions) onto the appliance`, { skip }, () => {
    const h = new Harness(`${backend}: migrate`);
    let legacy;
    let idp;
    let record;
    let callback;
    // (b) migrate --from, (c) the automatic path, (d) a failing check.
    let appB;
    let appC;
    let appD;
    const env = { APPLIANCE_SERVER_NAME: SERVER_NAME };

    /**
     * Lays out `app`'s data dir as the appliance's own around a copy of the legacy database:
     * the SQLite file in <data>/synapse (PostgreSQL: `app.dbName` is already a copy), the old
     * signing key and pepper in <data>/secrets, and the old OIDC provider's id on the platform
     * provider (<data>/config/mas.yaml), since there is no old config to read it from.
     */
    function layOutAutomatic(app) {
      const secrets = path.join(app.dataDir, 'secrets');
      fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
      fs.copyFileSync(legacy.signingKeyPath, path.join(secrets, 'synapse_signing.key'));
      fs.writeFileSync(path.join(secrets, 'synapse_password_pepper'), legacy.pepper, { mode: 0o600 });
      fs.chmodSync(path.join(secrets, 'synapse_signing.key'), 0o600);
      fs.mkdirSync(path.join(app.dataDir, 'synapse', 'media_store'), { recursive: true });
      if (app.backend === 'sqlite') fs.copyFileSync(legacy.sqlitePath, path.join(app.dataDir, 'synapse', 'homeserver.db'));
      fs.mkdirSync(path.join(app.dataDir, 'config'), { recursive: true });
      fs.writeFileSync(path.join(app.dataDir, 'config', 'mas.yaml'), JSON.stringify({
        upstream_oauth2: { providers: [{ id: PLATFORM_PROVIDER_ID, synapse_idp_id: LEGACY_AUTH_PROVIDER }] },
      }));
    }

    /** Synapse's database of `app`: the SQLite file's hash, or the public schema's fingerprint. */
    async function synapseDbState(app) {
      if (app.backend === 'postgres') {
        const all = await pgFingerprint(app.dbName);
        return Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('public.')));
      }
      return snapshotDir(path.join(app.dataDir, 'synapse'));
    }

    before(async () => {
      try {
        const legacyDb = backend === 'postgres' ? await h.database() : undefined;
        // PostgreSQL: (b) runs on the legacy database itself, (c) and (d) on copies made below.
        appB = await h.appliance(backend, { dbName: legacyDb ?? 'unused', env: { ...env } });
        appC = await h.appliance(backend, { dbName: 'pending', env: { ...env, APPLIANCE_PASSWORD_LOGIN: 'true' } });
        appD = await h.appliance(backend, { dbName: 'pending', env: { ...env, APPLIANCE_PASSWORD_LOGIN: 'true' } });
        if (backend !== 'postgres') appB.dbName = appC.dbName = appD.dbName = undefined;

        const legacyDir = h.tempDir('legacy');
        legacy = new LegacySynapse({ dir: legacyDir, backend, dbName: legacyDb, serverName: SERVER_NAME, port: await freePort() });
        h.watch(legacy);
        idp = await TestIdp.start(appB.origin, {
          name: 'Test Cloud',
          extraRedirectUris: [synapseOidcCallbackOf(legacy.publicBaseUrl), upstreamCallbackOf(appC.origin), upstreamCallbackOf(appD.origin)],
        });
        h.defer(() => idp.stop());
        h.watch({ name: 'test OIDC provider', dataDir: '-', logText: (n) => idp.logText(n) });
        for (const app of [appB, appC, appD]) Object.assign(app.extraEnv, idp.env());

        legacy.writeConfig(idp);
        await legacy.generateKeys();
        legacy.start();
        h.defer(() => legacy.stop());
        await legacy.waitHealthy();
        record = await populateLegacy(legacy, idp, { browserLabel: `${backend}-legacy-sso` });
        await legacy.stop();

        if (backend === 'postgres') {
          appC.dbName = await copyDatabase(h, legacyDb);
          appD.dbName = await copyDatabase(h, legacyDb);
        }
        layOutAutomatic(appC);
        layOutAutomatic(appD);
        // (d): an SSO link to a provider neither config knows.
        const otherLink = "INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES ('oidc-other', 'someone', '@alice:legacy.test')";
        if (backend === 'postgres') await queryDatabase(appD.dbName, otherLink);
        else sqliteExec(path.join(appD.dataDir, 'synapse', 'homeserver.db'), otherLink);

        callback = await LoopbackCallback.start();
        h.defer(() => callback.close());
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 240000 });

    after(() => h.cleanup(), { timeout: 60000 });

    const rec = new Recorder();
    const check = recordedTest(h, rec);
    const passwordUsers = () => ['admin', 'alice', 'chloe', 'dora'].map((k) => record.people[k]);

    /** A fresh browser whose requests all come from `address` (X-Forwarded-For), closed at cleanup. */
    async function freshBrowser(label, address = freshAddress()) {
      const b = await Browser.launch(`${backend}-${label}`);
      h.defer(() => b.close());
      await b.context.setExtraHTTPHeaders({ 'x-forwarded-for': address });
      return b;
    }

    /**
     * The OAuth sign-in of a native client on `app` in `browser`: the authorization request with
     * PKCE and the Matrix scopes (+ `extraScope`); on MAS's login page either the password form
     * (`user` with a password) or the platform provider's button and its sign-in page (`user`
     * with `sso`); MAS's consent page; the code redeemed. Returns the tokens and the device id.
     */
    async function oauthSignIn(app, browser, user, { extraScope } = {}) {
      const config = await registerClient(app, rec, nativeClientMetadata(callback.redirectUri));
      const deviceId = randomAlnum(10);
      const { api, device } = matrixScopes('stable', deviceId);
      const req = await authorizationRequest(config, { redirectUri: callback.redirectUri, scope: [api, device, extraScope].filter(Boolean).join(' ') });
      const since = callback.received.length;
      await browser.step('open the authorization URL', (page) => page.goto(String(req.url)));
      if (user.sso) {
        await browser.step(`choose ${idp.name} on MAS's login page (or be sent there)`, async (page) => {
          const atIdp = page.getByRole('heading', { name: `Sign in to ${idp.name}` });
          const button = page.getByRole('link', { name: idp.name }).or(page.getByRole('button', { name: idp.name })).first();
          await atIdp.or(button).first().waitFor();
          if (!(await atIdp.isVisible())) await button.click();
        });
        await browser.step(`sign in at the provider as ${user.account.username}`, async (page) => {
          await page.getByRole('heading', { name: `Sign in to ${idp.name}` }).waitFor();
          await page.getByLabel('Username').fill(user.account.username);
          await page.getByLabel('Password').fill(user.account.password);
          await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        });
      } else {
        await browser.step(`sign in on MAS's login page as ${user.username} with the old password`, async (page) => {
          await page.getByRole('heading', { name: 'Sign in' }).waitFor();
          await page.getByLabel('Username').fill(user.username);
          await page.getByLabel('Password').fill(user.password);
          await page.getByRole('button', { name: 'Continue', exact: true }).click();
        });
      }
      await browser.step('approve on MAS\'s consent page', async (page) => {
        // Without the imported link MAS refuses the existing localpart (409 "already taken").
        const consent = page.getByRole('heading', { name: /wants to access your account/ });
        const taken = page.getByRole('heading', { name: /already taken/i });
        await consent.or(taken).first().waitFor();
        assert.ok(!(await taken.isVisible()), `${user.username}: "username already taken": the account was not linked to the provider`);
        await page.getByRole('button', { name: 'Continue', exact: true }).click();
        await callback.next(since);
      });
      const callbackUrl = await callback.next(since);
      assert.ok(!callbackUrl.searchParams.has('error'), `error at the client's callback: ${callbackUrl}`);
      const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: req.verifier, expectedState: req.state });
      return { tokens, deviceId };
    }

    // --- (a) the dry run ----------------------------------------------------------------------

    check('(a) `appliance migrate --from <homeserver.yaml> --dry-run` prints a summary naming the user count and changes nothing (data dir, legacy dir, databases)', async () => {
      const before = {
        data: snapshotDir(appB.dataDir),
        legacy: snapshotDir(legacy.dir),
        db: backend === 'postgres' ? await pgFingerprint(appB.dbName) : null,
      };
      const r = await appB.command(['migrate', '--from', legacy.configPath, '--dry-run'], {}, 180000);
      const out = [...r.stdout, ...r.stderr].join('\n');
      assert.equal(r.code, 0, `dry run exited ${r.code}:\n${out}`);
      assert.match(r.stdout.join('\n'), /dry.run/i, 'the summary says it was a dry run');
      assert.match(r.stdout.join('\n'), new RegExp(`\\b${record.userCount}\\b[^\\n]*users?|users?[^\\n]*\\b${record.userCount}\\b`, 'i'), `the summary names ${record.userCount} users:\n${r.stdout.join('\n')}`);
      for (const p of Object.values(record.people)) {
        if (p.password) assert.ok(!out.includes(p.password), 'never a password in the output');
      }
      assert.ok(!out.includes(record.sessions.device.accessToken), 'never a token in the output');
      assert.deepEqual(snapshotDir(appB.dataDir), before.data, 'the appliance\'s data dir is untouched');
      assert.deepEqual(snapshotDir(legacy.dir), before.legacy, 'the legacy dir is untouched');
      if (backend === 'postgres') assert.deepEqual(await pgFingerprint(appB.dbName), before.db, 'the database is untouched');
    }, 200000);

    // --- (b) migrate --from, then run -------------------------------------------------------

    check('(b) `appliance migrate --from <homeserver.yaml>` into a fresh data dir, then `appliance run` with the same provider as platform provider starts', async () => {
      const legacyBefore = snapshotDir(legacy.dir);
      const r = await appB.command(['migrate', '--from', legacy.configPath], {}, 180000);
      const out = [...r.stdout, ...r.stderr].join('\n');
      assert.equal(r.code, 0, `migrate exited ${r.code}:\n${out}`);
      assert.match(r.stdout.join('\n'), new RegExp(`\\b${record.userCount}\\b`), `the summary names ${record.userCount} users:\n${r.stdout.join('\n')}`);
      assert.deepEqual(snapshotDir(legacy.dir), legacyBefore, 'the legacy dir is untouched (SQLite copied, not moved)');
      appB.start();
      await appB.waitHealthy(180000);
    }, 400000);

    check('(b) every password user (one with a non-ASCII password) signs in with the old password through the compat API', async () => {
      for (const p of passwordUsers()) {
        const res = await compatPasswordLogin(appB, rec, p);
        assert.equal(res.status, 200, `${p.username}: ${res.status} ${res.body}`);
        assert.equal(res.json().user_id, p.userId);
        const me = await whoami(appB, rec, res.json().access_token);
        assert.equal(me.status, 200, `${p.username} whoami: ${me.status} ${me.body}`);
      }
    });

    const browsers = {};

    check('(b) every password user signs in with the old password through OAuth (Chromium, MAS\'s login page); the admin gets an admin-scoped session that opens Synapse\'s admin API', async () => {
      for (const p of passwordUsers()) {
        browsers[p.username] = await freshBrowser(`oauth-${p.username}`);
        const { tokens, deviceId } = await oauthSignIn(appB, browsers[p.username], p, { extraScope: p.admin ? ADMIN_SCOPE : undefined });
        const me = await whoami(appB, rec, tokens.access_token);
        assert.equal(me.status, 200, `${p.username}: ${me.status} ${me.body}`);
        assert.equal(me.json().user_id, p.userId);
        assert.equal(me.json().device_id, deviceId);
        if (p.admin) {
          const res = await authed(appB, rec, `/_synapse/admin/v2/users/${encodeURIComponent(record.people.alice.userId)}`, tokens.access_token);
          assert.equal(res.status, 200, `the admin API with the admin's admin-scoped token: ${res.status} ${res.body}`);
        }
      }
    }, 240000);

    check('(b) the old admin\'s access token still opens Synapse\'s admin API', async () => {
      const res = await authed(appB, rec, `/_synapse/admin/v2/users/${encodeURIComponent(record.people.alice.userId)}`, record.people.admin.registration.access_token);
      assert.equal(res.status, 200, `${res.status} ${res.body}`);
    });

    check('(b) the old access token answers whoami with the same user and device', async () => {
      const { accessToken, userId, deviceId } = record.sessions.device;
      const me = await whoami(appB, rec, accessToken);
      assert.equal(me.status, 200, `${me.status} ${me.body}`);
      assert.deepEqual([me.json().user_id, me.json().device_id], [userId, deviceId]);
    });

    check('(b) the old refresh token refreshes (same device)', async () => {
      const { refreshToken, userId, deviceId } = record.sessions.refresh;
      const refreshed = await matrixClient(appB, rec).refreshToken(refreshToken);
      assert.ok(refreshed.access_token, JSON.stringify(refreshed));
      const me = await whoami(appB, rec, refreshed.access_token);
      assert.equal(me.status, 200, `${me.status} ${me.body}`);
      assert.deepEqual([me.json().user_id, me.json().device_id], [userId, deviceId]);
    });

    check('(b) the SSO user signs in through the platform provider into the same account (no "username already taken", no second user)', async () => {
      const olga = record.people.olga;
      const { tokens } = await oauthSignIn(appB, await freshBrowser('sso-olga'), olga);
      const me = await whoami(appB, rec, tokens.access_token);
      assert.equal(me.status, 200, `${me.status} ${me.body}`);
      assert.equal(me.json().user_id, olga.userId);
      assert.equal(await masUserCount(appB), record.userCount, 'no user was added');
    }, 120000);

    check('(b) the deactivated and the locked user cannot sign in (compat API)', async () => {
      for (const p of [record.people.dave, record.people.lena]) {
        const res = await compatPasswordLogin(appB, rec, p);
        assert.ok([401, 403].includes(res.status), `${p.username}: expected a refusal, got ${res.status} ${res.body}`);
        assert.ok(!res.body.includes('access_token'), res.body);
      }
    });

    check('(b) the email added through Synapse\'s admin API is on the account page', async () => {
      const dora = record.people.dora;
      const browser = browsers[dora.username] ?? (await freshBrowser('account-dora'));
      await browser.step('open the account page', async (page) => {
        await page.goto(`${appB.origin}/auth/account/`);
        await page.getByText(dora.email).first().waitFor();
      });
    });

    check('(b) the room, its messages and the media are there', async () => {
      const { accessToken } = record.sessions.device;
      const { roomId, messages } = record.room;
      const res = await authed(appB, rec, `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, accessToken);
      assert.equal(res.status, 200, `${res.status} ${res.body}`);
      const bodies = res.json().chunk.filter((e) => e.type === 'm.room.message').map((e) => ({ sender: e.sender, body: e.content.body }));
      for (const m of messages) assert.ok(bodies.some((b) => b.sender === m.sender && b.body === m.body), `${JSON.stringify(m)} in ${JSON.stringify(bodies)}`);
      const media = new URL(record.media.contentUri);
      const dl = await authed(appB, rec, `/_matrix/client/v1/media/download/${media.host}${media.pathname}`, accessToken);
      assert.equal(dl.status, 200, `media download: ${dl.status} ${dl.body.slice(0, 300)}`);
      assert.equal(dl.body, record.media.bytes.toString('utf8'));
    });

    check('(b) /_matrix/key/v2/server shows the same signing key id', async () => {
      const res = await rec.send(appB.url('/_matrix/key/v2/server'));
      assert.equal(res.status, 200, `${res.status} ${res.body}`);
      assert.equal(res.json().server_name, SERVER_NAME);
      assert.deepEqual(Object.keys(res.json().verify_keys).sort(), record.signingKeyIds);
    });

    check('(b) a second `appliance migrate --from` is refused as already done, and changes nothing', async () => {
      await appB.stop();
      const before = backend === 'postgres' ? await pgFingerprint(appB.dbName) : snapshotDir(path.join(appB.dataDir, 'mas'));
      const r = await appB.command(['migrate', '--from', legacy.configPath], {}, 180000);
      const out = [...r.stdout, ...r.stderr].join('\n');
      assert.notEqual(r.code, 0, `a second migrate must fail:\n${out}`);
      assert.match(out, /already|not empty/i, out);
      const afterState = backend === 'postgres' ? await pgFingerprint(appB.dbName) : snapshotDir(path.join(appB.dataDir, 'mas'));
      assert.deepEqual(afterState, before);
    }, 200000);

    // --- (c) the automatic path ---------------------------------------------------------------

    check('(c) `appliance run` on a data dir holding a pre-MAS Synapse database migrates by itself and starts', async () => {
      appC.start();
      await appC.waitHealthy(180000);
      assert.equal(await masUserCount(appC), record.userCount);
    }, 200000);

    check('(c) after the automatic migration: old passwords (compat), the old token and device, the room and the key id', async () => {
      for (const p of [record.people.alice, record.people.chloe]) {
        const res = await compatPasswordLogin(appC, rec, p);
        assert.equal(res.status, 200, `${p.username}: ${res.status} ${res.body}`);
        assert.equal(res.json().user_id, p.userId);
      }
      const { accessToken, userId, deviceId } = record.sessions.device;
      const me = await whoami(appC, rec, accessToken);
      assert.equal(me.status, 200, `${me.status} ${me.body}`);
      assert.deepEqual([me.json().user_id, me.json().device_id], [userId, deviceId]);
      const msgs = await authed(appC, rec, `/_matrix/client/v3/rooms/${encodeURIComponent(record.room.roomId)}/messages?dir=b&limit=50`, accessToken);
      assert.equal(msgs.status, 200, `${msgs.status} ${msgs.body}`);
      const bodies = msgs.json().chunk.map((e) => e.content?.body);
      for (const m of record.room.messages) assert.ok(bodies.includes(m.body), `${m.body} in ${JSON.stringify(bodies)}`);
      const key = await rec.send(appC.url('/_matrix/key/v2/server'));
      assert.deepEqual(Object.keys(key.json().verify_keys).sort(), record.signingKeyIds);
      const deactivated = await compatPasswordLogin(appC, rec, record.people.dave);
      assert.ok([401, 403].includes(deactivated.status), `dave: ${deactivated.status} ${deactivated.body}`);
    });

    check('(c) the SSO user signs in through the platform provider into the same account', async () => {
      const olga = record.people.olga;
      const { tokens } = await oauthSignIn(appC, await freshBrowser('sso-olga-auto'), olga);
      const me = await whoami(appC, rec, tokens.access_token);
      assert.equal(me.status, 200, `${me.status} ${me.body}`);
      assert.equal(me.json().user_id, olga.userId);
      assert.equal(await masUserCount(appC), record.userCount, 'no user was added');
    }, 120000);

    // --- (d) a check failure stops the start --------------------------------------------------

    check('(d) an SSO link to an unknown provider (oidc-other): `appliance run` stops with the reason; Synapse\'s database unchanged, MAS empty', async () => {
      const before = await synapseDbState(appD);
      const logMark = appD.log.length;
      appD.start();
      // Either it stops (as it must) or it comes up: no need to wait out the timeout then.
      const outcome = await waitFor('the supervisor to stop (or come up)', async () => appD.lastExit ?? ((await statusOf200(appD)) && 'healthy'), { timeoutMs: 180000, intervalMs: 250 });
      assert.notEqual(outcome, 'healthy', 'the appliance started although the check must fail');
      const exit = outcome;
      const out = appD.log.slice(logMark).map((l) => l.line).join('\n');
      assert.notEqual(exit.code, 0, `the start must fail:\n${out.slice(-3000)}`);
      assert.match(out, /oidc-other/, `the reason names the unknown provider:\n${out.slice(-3000)}`);
      assert.equal(await masUserCount(appD), 0, 'nothing imported');
      assert.deepEqual(await synapseDbState(appD), before, 'Synapse\'s database is untouched');
      assert.equal(await statusOf200(appD), false, 'nothing answers');
    }, 200000);
  });
}

/** Whether the appliance's /healthz answers 200 (it must not, after a refused start). */
async function statusOf200(app) {
  try {
    return (await fetch(app.url('/healthz'))).status === 200;
  } catch {
    return false;
  }
}
