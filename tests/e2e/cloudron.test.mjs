// The appliance run the way the image runs it on Cloudron (issue 6, "container behaviour without
// Docker"): as root through start/start.sh with CLOUDRON=1, a data dir and a run dir in temp
// folders, the image's environment, and a Cloudron-shaped set of addons: PostgreSQL
// (CLOUDRON_POSTGRESQL_*), the platform OIDC provider (tests/lib/idp.mjs), mail to an SMTP sink
// (tests/lib/smtp.mjs) and TURN values. Checks: healthy; the rendered Synapse and MAS configs
// carry mail and TURN; `appliance doctor --send-test-email` delivers with the right From; after
// the privilege drop, the supervisor and its children run as `cloudron` and the data dir is
// owned by `cloudron` with private secrets.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { applianceBin, repoRoot } from '../lib/config.mjs';
import { e2eTest } from '../lib/harness.mjs';
import { TestIdp } from '../lib/idp.mjs';
import { databaseUrlFor } from '../lib/pg.mjs';
import { listProcesses } from '../lib/procs.mjs';
import { SmtpSink } from '../lib/smtp.mjs';
import { skipReason } from '../lib/config.mjs';

const isRoot = process.getuid?.() === 0;

function cloudronIds() {
  try {
    const uid = Number(execFileSync('id', ['-u', 'cloudron'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'cloudron'], { encoding: 'utf8' }));
    return { uid, gid };
  } catch {
    return null;
  }
}

function skip() {
  if (!isRoot) return 'needs root (the image starts as root and drops to cloudron)';
  if (!cloudronIds()) return 'no `cloudron` user (./start/test creates it)';
  return skipReason('postgres');
}

function uidOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.split('\n').find((l) => l.startsWith('Uid:')).split(/\s+/)[2]);
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

/** The split CLOUDRON_POSTGRESQL_* variables Cloudron sets next to the URL. */
function postgresEnv(dbName) {
  const url = new URL(databaseUrlFor(dbName));
  return {
    CLOUDRON_POSTGRESQL_URL: url.toString(),
    CLOUDRON_POSTGRESQL_HOST: url.hostname,
    CLOUDRON_POSTGRESQL_PORT: url.port || '5432',
    CLOUDRON_POSTGRESQL_USERNAME: decodeURIComponent(url.username),
    // The test server trusts loopback; Cloudron always sets a password.
    CLOUDRON_POSTGRESQL_PASSWORD: decodeURIComponent(url.password) || 'unused-with-trust-auth',
    CLOUDRON_POSTGRESQL_DATABASE: dbName,
  };
}

/** The value of `key: "..."` in rendered YAML (the templates write JSON strings, `<` as \u003c). */
function quoted(text, key) {
  const m = text.match(new RegExp(`^${key}: (".*")$`, 'm'));
  assert.ok(m, `${key} in\n${text}`);
  return JSON.parse(m[1]);
}

const TURN = {
  CLOUDRON_TURN_SERVER: 'turn.localhost.test',
  CLOUDRON_TURN_PORT: '3478',
  CLOUDRON_TURN_TLS_PORT: '5349',
  CLOUDRON_TURN_SECRET: 'turn-shared-secret-value',
};

e2eTest('cloudron mode: root → cloudron through start/start.sh, with PostgreSQL, SSO, mail and TURN', {
  skip: skip(),
  timeout: 240000,
}, async (h) => {
  const cloudron = cloudronIds();
  const base = h.tempDir('cloudron');
  // mkdtemp makes a 0700 directory: `cloudron` must reach the data and run dirs inside it.
  fs.chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  const runDir = path.join(base, 'run');
  const sink = await SmtpSink.start();
  h.defer(() => sink.stop());
  const dbName = await h.database();
  const startSh = path.join(repoRoot, 'start', 'start.sh');
  const app = await h.appliance('postgres', {
    dataDir,
    runDir,
    dbName,
    // The image's CMD: start.sh execs `$APPLIANCE_BIN run` (same pid as the one spawned here).
    wrap: ['sh', '-c', `exec "${startSh}"`, 'start.sh'],
    env: {
      CLOUDRON: '1',
      APPLIANCE_BIN: applianceBin,
      CLOUDRON_APP_DOMAIN: 'localhost',
      ...postgresEnv(dbName),
      ...sink.env(),
      ...TURN,
    },
  });
  const idp = await TestIdp.start(app.origin, { name: 'Test Cloud' });
  h.defer(() => idp.stop());
  Object.assign(app.extraEnv, await idp.env());

  app.start();
  await app.waitHealthy();

  // The supervisor (the pid start.sh exec'd into) and its children run as cloudron.
  assert.equal(uidOf(app.pid), cloudron.uid, 'the supervisor dropped to cloudron');
  const children = listProcesses().filter((p) => p.ppid === app.pid);
  const synapse = children.find((p) => p.cmdline.includes('synapse.app.homeserver'));
  const mas = children.find((p) => p.cmdline.includes('mas-cli') && p.cmdline.includes('server'));
  assert.ok(synapse && mas, JSON.stringify(children.map((p) => p.cmdline)));
  assert.equal(uidOf(synapse.pid), cloudron.uid, 'Synapse runs as cloudron');
  assert.equal(uidOf(mas.pid), cloudron.uid, 'MAS runs as cloudron');
  assert.match(synapse.cmdline, new RegExp(`^${path.join(repoRoot, '.venv', 'bin', 'python')}`));

  // Rendered configs: mail (plain port, display name) and TURN, for both services.
  const hs = fs.readFileSync(path.join(runDir, 'homeserver.yaml'), 'utf8');
  assert.match(hs, /turn_uris:\n {2}- "turn:turn\.localhost\.test:3478\?transport=udp"\n {2}- "turn:turn\.localhost\.test:3478\?transport=tcp"\n {2}- "turns:turn\.localhost\.test:5349\?transport=tcp"/);
  assert.match(hs, /^turn_shared_secret: "turn-shared-secret-value"$/m);
  assert.match(hs, /^email:\n {2}smtp_host: "127\.0\.0\.1"\n {2}smtp_port: (\d+)$/m);
  assert.equal(Number(hs.match(/^ {2}smtp_port: (\d+)$/m)[1]), sink.port, 'the plain port, not SMTPS');
  assert.match(hs, /^ {2}force_tls: false$/m);
  assert.match(hs, /^ {2}smtp_user: "matrix-app"$/m);
  assert.match(hs, /^ {2}smtp_pass: "relay-secret"$/m);
  assert.equal(quoted(hs, '  notif_from'), '"Example Chat" <matrix.app@localhost.test>');
  const masYaml = fs.readFileSync(path.join(runDir, 'mas.yaml'), 'utf8');
  const email = masYaml.slice(masYaml.indexOf('\nemail:\n'));
  assert.match(email, /^ {2}transport: smtp$/m);
  assert.match(email, /^ {2}mode: "plain"$/m);
  assert.match(email, /^ {2}hostname: "127\.0\.0\.1"$/m);
  assert.match(email, new RegExp(`^ {2}port: ${sink.port}$`, 'm'));
  assert.equal(quoted(email, '  from'), '"Example Chat" <matrix.app@localhost.test>');
  assert.match(masYaml, /upstream_oauth2:/, 'the platform OIDC provider is rendered');

  assert.doesNotMatch(app.logText(), /mail is off/);

  // The admin's proof of mail delivery, run as root like `cloudron exec` would.
  const r = await app.command(['doctor', '--send-test-email', 'admin@example.org']);
  const out = r.stdout.join('\n');
  assert.equal(r.code, 0, `${out}\n${r.stderr.join('\n')}`);
  for (const line of r.stdout.filter(Boolean)) assert.match(line, /^✅ /, out);
  assert.match(out, /✅ database: PostgreSQL .* has collation and ctype C/);
  assert.match(out, new RegExp(`✅ test email to admin@example\\.org handed to smtp://127\\.0\\.0\\.1:${sink.port} \\(plain\\)`));
  const mail = await sink.waitFor('admin@example.org');
  assert.equal(mail.headers.get('from'), '"Example Chat" <matrix.app@localhost.test>');
  assert.equal(mail.from, 'matrix.app@localhost.test', 'envelope sender');
  assert.match(mail.headers.get('subject'), /^Test email from the Matrix server localhost$/);
  assert.deepEqual(sink.authFailures, [], 'the relay credentials were used');

  // Ownership and modes after the drop: everything in the data and run dirs is cloudron's.
  for (const f of [dataDir, ...walk(dataDir), runDir, ...walk(runDir)]) {
    const st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [cloudron.uid, cloudron.gid], `owner of ${f}`);
  }
  const mode = (p) => fs.statSync(p).mode & 0o777;
  const secrets = path.join(dataDir, 'secrets');
  assert.equal(mode(secrets).toString(8), '700');
  const secretFiles = fs.readdirSync(secrets);
  assert.equal(secretFiles.length, 8, secretFiles.join(' '));
  for (const f of secretFiles) assert.equal(mode(path.join(secrets, f)).toString(8), '600', f);
  for (const f of ['homeserver.yaml', 'mas.yaml']) assert.equal(mode(path.join(runDir, f)).toString(8), '600', f);

  const stopped = await app.stop();
  assert.deepEqual([stopped.code, stopped.signal], [0, null]);
});
