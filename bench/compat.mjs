#!/usr/bin/env node
// Issue 4's whoami budget (printed, never asserted): `GET /_matrix/client/v3/account/whoami`
// with a compat token through the appliance's router, Synapse's token cache cold (each token is
// used for the first time), against the same call to a Synapse alone with its own native auth
// (the config the supervisor renders, minus the `matrix_authentication_service` section),
// also with never-used tokens. The two are measured interleaved (one request each in turn) so
// that background load affects both alike. Also prints the legacy password login through the
// appliance (MAS verification + the device upsert at the real Synapse) next to Synapse's own.
//
// Usage: node bench/compat.mjs [--requests N] [--backend sqlite|postgres]
// Needs the Synapse venv (.venv) and the release binaries (`cargo build --release --bins`;
// target/debug is used when they are missing, which overstates MAS's share). PostgreSQL needs
// DATABASE_URL (`source start/lib/postgres.sh && pg_ensure_running .`).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    backend: { type: 'string', default: 'sqlite' },
  },
});
const N = Number(opts.requests);
const backend = opts.backend;
if (!['sqlite', 'postgres'].includes(backend)) throw new Error('--backend is sqlite or postgres');

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
if (!process.env.APPLIANCE_BIN) {
  const release = path.join(repoRoot, 'target', 'release');
  const complete = ['appliance', 'mas-cli'].every((b) => fs.existsSync(path.join(release, b)));
  process.env.APPLIANCE_BIN = path.join(complete ? release : path.join(repoRoot, 'target', 'debug'), 'appliance');
}
// Imported after APPLIANCE_BIN is settled (the harness reads it when loaded).
const { Appliance } = await import('../tests/lib/appliance.mjs');
const { synapsePython } = await import('../tests/lib/config.mjs');
const { sleep } = await import('../tests/lib/http.mjs');
const { registerUser } = await import('../tests/lib/oidc.mjs');
const { createDatabase, dropDatabase } = await import('../tests/lib/pg.mjs');
const { appliancePorts } = await import('../tests/lib/ports.mjs');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-bench-compat-'));
const cleanups = [];
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One request on the shared keep-alive agent: { status, json, ms }. */
function call(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, json, text, ms });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const jsonPost = (url, payload, headers = {}) =>
  call(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(payload) });

async function until200(url, isDead, timeoutMs = 120000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (isDead()) throw new Error(`process exited before ${url} was 200`);
    const r = await call(url).catch(() => null);
    if (r?.status === 200) return;
    await sleep(50);
  }
  throw new Error(`${url} not 200 within ${timeoutMs} ms`);
}

/** A Synapse alone with native auth, from the config the supervisor renders. */
async function startSynapseAlone() {
  const ports = await appliancePorts();
  const dbName = backend === 'postgres' ? await createDatabase() : undefined;
  if (dbName) cleanups.push(() => dropDatabase(dbName));
  const ref = new Appliance({ name: 'synapse-alone', backend, dataDir: path.join(tmp, 'alone'), ports, dbName });
  const render = await ref.command(['render']);
  if (render.code !== 0) throw new Error(`appliance render failed: ${render.stderr.join('\n')}`);
  const rendered = fs.readFileSync(path.join(ref.runDir, 'homeserver.yaml'), 'utf8');
  // Drop the MAS section (a top-level key and its indented lines): Synapse authenticates itself.
  const native = rendered.replace(/^matrix_authentication_service:\n(?:[ \t]+.*\n)*/m, '');
  if (native === rendered) throw new Error('the rendered homeserver.yaml has no matrix_authentication_service section');
  // The benchmark logs in N times from one address; Synapse's login limits would refuse that.
  const limits = '{per_second: 1000, burst_count: 1000}';
  const config = path.join(ref.runDir, 'homeserver-native.yaml');
  fs.writeFileSync(config, `${native}\nrc_login:\n  address: ${limits}\n  account: ${limits}\n  failed_attempts: ${limits}\n`);
  const child = spawn(synapsePython, ['-m', 'synapse.app.homeserver', '-c', config], {
    env: ref.env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4000)));
  let dead = false;
  const exited = new Promise((r) => child.once('close', () => r((dead = true))));
  try {
    await until200(ref.synapseUrl('/health'), () => dead);
  } catch (err) {
    throw new Error(`${err.message}\n${stderr}`);
  }
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
  };
  // A user through the shared-secret registration API (what `register_new_matrix_user` does).
  const secret = fs.readFileSync(path.join(ref.dataDir, 'secrets', 'synapse_registration_secret'), 'utf8').trim();
  const { json: nonce } = await call(ref.synapseUrl('/_synapse/admin/v1/register'));
  const password = crypto.randomBytes(18).toString('base64url');
  const mac = crypto.createHmac('sha1', secret).update(`${nonce.nonce}\0bench\0${password}\0notadmin`).digest('hex');
  const reg = await jsonPost(ref.synapseUrl('/_synapse/admin/v1/register'), {
    nonce: nonce.nonce,
    username: 'bench',
    password,
    admin: false,
    mac,
  });
  if (reg.status !== 200) throw new Error(`shared-secret registration answered ${reg.status}: ${reg.text}`);
  return { url: (p) => ref.synapseUrl(p), password, stop };
}

/** N password logins at `url`, each from its own forwarded address: [{ token, ms }]. */
async function logins(url, user, password, forwarded) {
  const out = [];
  for (let i = 0; i < N; i++) {
    const headers = forwarded ? { 'x-forwarded-for': `10.77.${i >> 8}.${i & 255}` } : {};
    const r = await jsonPost(url, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }, headers);
    if (r.status !== 200) throw new Error(`login at ${url} answered ${r.status}: ${r.text}`);
    out.push({ token: r.json.access_token, ms: r.ms });
  }
  return out;
}

async function whoami(url, token) {
  const r = await call(url, { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`whoami at ${url} answered ${r.status}: ${r.text}`);
  return r.ms;
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const line = (label, xs) =>
  `  ${label.padEnd(44)} p50 ${pct(xs, 50).toFixed(3)} ms  p90 ${pct(xs, 90).toFixed(3)} ms  p99 ${pct(xs, 99).toFixed(3)} ms`;

async function main() {
  const bin = path.relative(repoRoot, process.env.APPLIANCE_BIN);
  console.log(`bench/compat: ${bin}, backend ${backend}, ${N} tokens each, ${os.cpus().length} cores`);

  const dbName = backend === 'postgres' ? await createDatabase() : undefined;
  if (dbName) cleanups.push(() => dropDatabase(dbName));
  const app = new Appliance({ name: 'bench', backend, dataDir: path.join(tmp, 'app'), ports: await appliancePorts(), dbName });
  app.start();
  cleanups.push(() => app.stop());
  await app.waitHealthy();
  const { password } = await registerUser(app, 'bench');
  const alone = await startSynapseAlone();
  cleanups.push(() => alone.stop());

  // Warm both paths (connections, code paths, caches of other things than these tokens).
  const warm = await logins(app.url('/_matrix/client/v3/login'), 'bench', password, true);
  const warmNative = await logins(alone.url('/_matrix/client/v3/login'), 'bench', alone.password, false);
  for (let i = 0; i < Math.min(20, N); i++) {
    await whoami(app.url('/_matrix/client/v3/account/whoami'), warm[i].token);
    await whoami(alone.url('/_matrix/client/v3/account/whoami'), warmNative[i].token);
  }

  const compat = await logins(app.url('/_matrix/client/v3/login'), 'bench', password, true);
  const native = await logins(alone.url('/_matrix/client/v3/login'), 'bench', alone.password, false);
  const cold = { compat: [], native: [] };
  const hot = { compat: [], native: [] };
  // First round: every token is new to Synapse; second round: the same tokens again.
  for (const into of [cold, hot]) {
    for (let i = 0; i < N; i++) {
      into.compat.push(await whoami(app.url('/_matrix/client/v3/account/whoami'), compat[i].token));
      into.native.push(await whoami(alone.url('/_matrix/client/v3/account/whoami'), native[i].token));
    }
  }

  console.log('\nGET /_matrix/client/v3/account/whoami, each token used for the first time (cache cold):');
  console.log(line('compat token through the router (MAS)', cold.compat));
  console.log(line('Synapse alone, native auth', cold.native));
  console.log(`  difference p50 ${(pct(cold.compat, 50) - pct(cold.native, 50)).toFixed(3)} ms (budget 2 ms)`);
  console.log('\nthe same tokens a second time (cache warm):');
  console.log(line('compat token through the router (MAS)', hot.compat));
  console.log(line('Synapse alone, native auth', hot.native));
  console.log('\nm.login.password (new device each time):');
  console.log(line('appliance: MAS compat login + Synapse device', compat.map((c) => c.ms)));
  console.log(line('Synapse alone, native login', native.map((c) => c.ms)));
}

try {
  await main();
} finally {
  for (const c of cleanups.reverse()) await c().catch((e) => console.error(`cleanup: ${e.message}`));
  agent.destroy();
}
