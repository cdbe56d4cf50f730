#!/usr/bin/env node
// Start-up and footprint figures for the budgets (printed, never asserted):
//   - launch → /healthz 200 of the appliance vs launch → /health 200 of Synapse alone, started
//     with the config the supervisor renders (`appliance render`), on a new and on an existing
//     data dir, over a few runs;
//   - the supervisor's RSS (VmRSS in /proc/<pid>/status) while serving requests;
//   - the router's added latency on a small GET (/_matrix/client/versions) over calling
//     Synapse directly.
//
// Usage: node bench/startup.mjs [--runs N] [--backend sqlite|postgres] [--requests N]
// Needs the Synapse venv (.venv) and built binaries: target/release/ when both appliance and
// mas-cli are there (`cargo build --release --bins`), else target/debug/ (APPLIANCE_BIN
// overrides). Debug builds overstate the router's latency and the supervisor's memory. PostgreSQL needs DATABASE_URL (run
// `source start/lib/postgres.sh && pg_ensure_running .` first).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'sqlite' },
    requests: { type: 'string', default: '2000' },
  },
});
const RUNS = Number(opts.runs);
const REQUESTS = Number(opts.requests);
const backend = opts.backend;
if (!['sqlite', 'postgres'].includes(backend)) throw new Error('--backend is sqlite or postgres');

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
if (!process.env.APPLIANCE_BIN) {
  // The release build when it is complete (the supervisor runs mas-cli from its own directory).
  const release = path.join(repoRoot, 'target', 'release');
  const complete = ['appliance', 'mas-cli'].every((b) => fs.existsSync(path.join(release, b)));
  process.env.APPLIANCE_BIN = path.join(complete ? release : path.join(repoRoot, 'target', 'debug'), 'appliance');
}
const bin = process.env.APPLIANCE_BIN;
// Imported only now: the harness reads APPLIANCE_BIN when it is first loaded (static imports
// would be evaluated before the lines above).
const { Appliance } = await import('../tests/lib/appliance.mjs');
const { synapsePython } = await import('../tests/lib/config.mjs');
const { sleep } = await import('../tests/lib/http.mjs');
const { createDatabase, dropDatabase } = await import('../tests/lib/pg.mjs');
const { appliancePorts } = await import('../tests/lib/ports.mjs');
const { rssKb } = await import('../tests/lib/procs.mjs');

const cleanups = [];
process.on('exit', () => {
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});
const tmpDirs = [];

/** GET `url` on a fresh connection: the status, or null when the connection fails. */
function quickStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Polls `url` every 10 ms until 200; returns ms since `t0`. */
async function until200(url, t0, isDead, timeoutMs = 120000) {
  while (performance.now() - t0 < timeoutMs) {
    if (isDead()) throw new Error(`process exited before ${url} was 200`);
    if ((await quickStatus(url)) === 200) return performance.now() - t0;
    await sleep(10);
  }
  throw new Error(`${url} not 200 within ${timeoutMs} ms`);
}

/** A fresh appliance (data dir, ports and, for PostgreSQL, a database). */
async function freshAppliance(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-bench-'));
  tmpDirs.push(dir);
  const dbName = backend === 'postgres' ? await createDatabase() : undefined;
  if (dbName) cleanups.push(() => dropDatabase(dbName));
  return new Appliance({ name: label, backend, dataDir: path.join(dir, 'data'), ports: await appliancePorts(), dbName });
}

/** Launch → /healthz 200 of `appliance run`; leaves it running. */
async function timeAppliance(app) {
  const t0 = performance.now();
  app.start();
  const ms = await until200(app.url('/healthz'), t0, () => !app.running);
  return ms;
}

/** Launch → /health 200 of Synapse alone with the rendered config; stops it again. */
async function timeSynapseAlone(app) {
  const env = app.env();
  const t0 = performance.now();
  const child = spawn(synapsePython, ['-m', 'synapse.app.homeserver', '-c', path.join(app.runDir, 'homeserver.yaml')], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4000)));
  let dead = false;
  const exited = new Promise((r) => child.once('close', () => r((dead = true))));
  try {
    return await until200(`http://127.0.0.1:${app.ports.synapse}/health`, t0, () => dead);
  } catch (err) {
    throw new Error(`${err.message}\n${stderr}`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** Sequential keep-alive GETs of `url`: per-request latencies in ms, sorted. */
async function latencies(url, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise((resolve, reject) => {
      http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    out.push(performance.now() - t0);
  }
  agent.destroy();
  return out.sort((a, b) => a - b);
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (kb) => (kb == null ? 'n/a' : `${(kb / 1024).toFixed(1)} MB`);

async function main() {
  console.log(`bench/startup: ${path.relative(repoRoot, bin)}, backend ${backend}, ${RUNS} runs, ${os.cpus().length} cores`);
  const times = { appFresh: [], appExisting: [], synFresh: [], synExisting: [] };
  let serving = null;

  for (let i = 0; i < RUNS; i++) {
    // Synapse alone: render into a new data dir, time a first and a second launch.
    const ref = await freshAppliance(`synapse-alone-${i}`);
    const render = await ref.command(['render']);
    if (render.code !== 0) throw new Error(`appliance render failed: ${render.stderr.join('\n')}`);
    times.synFresh.push(await timeSynapseAlone(ref));
    times.synExisting.push(await timeSynapseAlone(ref));

    // The appliance: new data dir, then a restart on the same one.
    const app = await freshAppliance(`appliance-${i}`);
    times.appFresh.push(await timeAppliance(app));
    await app.stop();
    times.appExisting.push(await timeAppliance(app));

    if (i === RUNS - 1) serving = await measureServing(app);
    const stop = await app.stop();
    if (stop?.code !== 0) console.log(`  (run ${i + 1}: exit ${JSON.stringify(stop)})`);
    console.log(
      `  run ${i + 1}: appliance ${sec(times.appFresh[i])} new / ${sec(times.appExisting[i])} existing;` +
        ` synapse alone ${sec(times.synFresh[i])} new / ${sec(times.synExisting[i])} existing`,
    );
  }

  console.log('\nlaunch → healthy (median of runs, [min–max]):');
  for (const [label, a, s] of [
    ['new data dir', times.appFresh, times.synFresh],
    ['existing data dir', times.appExisting, times.synExisting],
  ]) {
    const A = stats(a);
    const S = stats(s);
    console.log(
      `  ${label.padEnd(18)} appliance ${sec(A.median)} [${sec(A.min)}–${sec(A.max)}]` +
        `   synapse alone ${sec(S.median)} [${sec(S.min)}–${sec(S.max)}]` +
        `   difference ${((A.median - S.median) / 1000).toFixed(2)} s`,
    );
  }
  const { router, direct, rss } = serving;
  console.log(`\nrouter overhead, GET /_matrix/client/versions, ${REQUESTS} sequential keep-alive requests:`);
  console.log(`  direct to Synapse  p50 ${pct(direct, 50).toFixed(3)} ms  p99 ${pct(direct, 99).toFixed(3)} ms`);
  console.log(`  through the router p50 ${pct(router, 50).toFixed(3)} ms  p99 ${pct(router, 99).toFixed(3)} ms`);
  console.log(
    `  overhead           p50 ${(pct(router, 50) - pct(direct, 50)).toFixed(3)} ms  p99 ${(pct(router, 99) - pct(direct, 99)).toFixed(3)} ms`,
  );
  console.log('\nRSS while serving (VmRSS):');
  console.log(`  supervisor: idle ${mb(rss.idle)}, max during the requests ${mb(rss.max)}, after ${mb(rss.after)}`);
}

/** Router vs direct latencies and the supervisor's RSS while they run. */
async function measureServing(app) {
  const rss = { idle: rssKb(app.pid), max: 0, after: null };
  const sampler = setInterval(() => (rss.max = Math.max(rss.max, rssKb(app.pid) ?? 0)), 20);
  // Warm both paths first.
  await latencies(app.url('/_matrix/client/versions'), 50);
  await latencies(app.synapseUrl('/_matrix/client/versions'), 50);
  const direct = await latencies(app.synapseUrl('/_matrix/client/versions'), REQUESTS);
  const router = await latencies(app.url('/_matrix/client/versions'), REQUESTS);
  clearInterval(sampler);
  rss.after = rssKb(app.pid);
  return { router, direct, rss };
}

try {
  await main();
} finally {
  for (const fn of cleanups) await fn().catch(() => {});
}
