#!/usr/bin/env node
// The memory figure behind CloudronManifest.json's memoryLimit (issue 6): runs the appliance on
// PostgreSQL (as on Cloudron), makes a user, does a few password logins through the compat API,
// each followed by syncs, rooms and messages, then prints the resident memory (VmRSS) and
// its high-water mark (VmHWM) of the supervisor, MAS and Synapse, and their sums.
//
// Usage: node bench/memory.mjs [--logins N] [--backend postgres|sqlite]
// Uses target/release/ when both binaries are there, else target/debug/ (APPLIANCE_BIN
// overrides); PostgreSQL needs DATABASE_URL (start/lib/postgres.sh).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    // MAS allows 3 quick logins per address, then one every 20 s.
    logins: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'postgres' },
  },
});
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
if (!process.env.APPLIANCE_BIN) {
  const release = path.join(repoRoot, 'target', 'release');
  const complete = ['appliance', 'mas-cli'].every((b) => fs.existsSync(path.join(release, b)));
  process.env.APPLIANCE_BIN = path.join(complete ? release : path.join(repoRoot, 'target', 'debug'), 'appliance');
}
// Imported only now: the harness reads APPLIANCE_BIN when it is first loaded.
const { Appliance } = await import('../tests/lib/appliance.mjs');
const { createDatabase, dropDatabase } = await import('../tests/lib/pg.mjs');
const { appliancePorts } = await import('../tests/lib/ports.mjs');
const { listProcesses } = await import('../tests/lib/procs.mjs');

function status(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function api(app, method, p, body, token) {
  const res = await fetch(app.url(p), {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-memory-'));
const dbName = opts.backend === 'postgres' ? await createDatabase() : undefined;
const app = new Appliance({
  name: 'memory',
  backend: opts.backend,
  dataDir: path.join(dir, 'data'),
  ports: await appliancePorts(),
  dbName,
});
// Synapse's message rate limit would stop the loop; the measurement is about memory.
fs.mkdirSync(path.join(app.dataDir, 'config'), { recursive: true });
fs.writeFileSync(
  path.join(app.dataDir, 'config', 'homeserver.yaml'),
  'rc_message: {per_second: 1000, burst_count: 1000}\nrc_joins: {local: {per_second: 1000, burst_count: 1000}}\n',
);
try {
  app.start();
  await app.waitHealthy();
  const password = 'correct horse battery staple 42';
  const r = await app.command(['mas', '--', 'manage', 'register-user', 'alice', '--password', password, '--yes']);
  if (r.code !== 0) throw new Error(`register-user: ${r.stderr.join('\n')}`);
  for (let i = 0; i < Number(opts.logins); i++) {
    const login = await api(app, 'POST', '/_matrix/client/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'alice' },
      password,
    });
    const token = login.access_token;
    await api(app, 'GET', '/_matrix/client/v3/sync?timeout=0', undefined, token);
    for (let k = 0; k < 3; k++) {
      const room = await api(app, 'POST', '/_matrix/client/v3/createRoom', { name: `room ${i}.${k}` }, token);
      for (let j = 0; j < 10; j++) {
        await api(app, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room.room_id)}/send/m.room.message/t${i}-${k}-${j}`,
          { msgtype: 'm.text', body: `message ${j}` }, token);
      }
      await api(app, 'GET', '/_matrix/client/v3/sync?timeout=0', undefined, token);
    }
  }
  const procs = [
    { name: 'supervisor', pid: app.pid },
    ...listProcesses()
      .filter((p) => p.ppid === app.pid)
      .map((p) => ({ name: p.cmdline.includes('synapse') ? 'synapse' : 'mas', pid: p.pid })),
  ];
  let rss = 0;
  let hwm = 0;
  console.log(`binary: ${process.env.APPLIANCE_BIN}; backend ${opts.backend}; ${opts.logins} logins`);
  for (const p of procs) {
    const [r1, h1] = [status(p.pid, 'VmRSS'), status(p.pid, 'VmHWM')];
    rss += r1;
    hwm += h1;
    console.log(`${p.name.padEnd(10)} VmRSS ${(r1 / 1024).toFixed(1)} MiB, VmHWM ${(h1 / 1024).toFixed(1)} MiB`);
  }
  console.log(`${'total'.padEnd(10)} VmRSS ${(rss / 1024).toFixed(1)} MiB, VmHWM ${(hwm / 1024).toFixed(1)} MiB`);
} finally {
  await app.stop().catch(() => {});
  if (dbName) await dropDatabase(dbName).catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
}
