// One appliance under test: its environment, its `appliance run` process and its output.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { applianceBin, synapsePython } from './config.mjs';
import { request, sleep, statusOf } from './http.mjs';
import { databaseUrlFor } from './pg.mjs';

/** Every supervisor this process started and has not seen exit; signalled if we exit early. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGTERM');
});

/** Runs the supervisor binary with `args` and `env`; collects its output into `log`. */
function spawnSupervisor(args, env, log, wrap = []) {
  // `wrap` runs the supervisor under another command (e.g. `unshare` to make it PID 1).
  const [cmd, ...argv] = [...wrap, applianceBin, ...args];
  const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const startedAt = Date.now();
  // 'exit', not 'close': a leftover process that inherited the pipes must not delay (or hide)
  // the supervisor's own exit. `closed` follows once its output has been read to the end.
  const exited = new Promise((resolve) => {
    child.once('error', (err) => {
      log.push({ at: Date.now(), stream: 'spawn', line: String(err) });
      live.delete(child);
      resolve({ code: null, signal: null, error: err, elapsedMs: Date.now() - startedAt });
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal, elapsedMs: Date.now() - startedAt });
    });
  });
  const closed = new Promise((resolve) => {
    child.once('close', resolve);
    child.once('error', resolve);
  });
  for (const stream of ['stdout', 'stderr']) {
    let partial = '';
    child[stream].setEncoding('utf8');
    child[stream].on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) log.push({ at: Date.now(), stream, line });
    });
    child[stream].on('end', () => {
      if (partial) log.push({ at: Date.now(), stream, line: partial });
    });
  }
  return { child, exited, closed, startedAt };
}

export class Appliance {
  /**
   * @param {object} o
   * @param {string} o.name        label for logs
   * @param {'sqlite'|'postgres'} o.backend
   * @param {string} o.dataDir
   * @param {{http:number, synapse:number, mas:number}} o.ports
   * @param {string} [o.dbName]    PostgreSQL database (backend 'postgres')
   * @param {string} [o.runDir]    APPLIANCE_RUN_DIR (default: <data>/run, the supervisor's own default)
   * @param {object} [o.env]       extra variables; a value of undefined removes one
   * @param {string[]} [o.wrap]    a command to run `appliance run` under (e.g. `unshare ...`)
   */
  constructor({ name, backend, dataDir, ports, dbName, runDir, env = {}, wrap = [] }) {
    Object.assign(this, { name, backend, dataDir, ports, dbName, wrap });
    this.runDir = runDir ?? path.join(dataDir, 'run');
    this.explicitRunDir = runDir !== undefined;
    this.extraEnv = env;
    /** Every line the supervisor wrote, all runs: { at, stream, line }. */
    this.log = [];
    this.proc = null;
  }

  get origin() {
    return `http://localhost:${this.ports.http}`;
  }

  /** The full environment of `appliance run`: nothing inherited from APPLIANCE_* / CLOUDRON_*. */
  env(overrides = {}) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith('APPLIANCE_') && !k.startsWith('CLOUDRON')) env[k] = v;
    }
    Object.assign(env, {
      CLOUDRON_APP_ORIGIN: this.origin,
      APPLIANCE_DATA_DIR: this.dataDir,
      APPLIANCE_SYNAPSE_PYTHON: synapsePython,
      APPLIANCE_HTTP_PORT: String(this.ports.http),
      APPLIANCE_SYNAPSE_PORT: String(this.ports.synapse),
      APPLIANCE_MAS_PORT: String(this.ports.mas),
      APPLIANCE_STOP_TIMEOUT: '10',
      APPLIANCE_DB_WAIT: '2',
    });
    if (this.explicitRunDir) env.APPLIANCE_RUN_DIR = this.runDir;
    if (this.backend === 'postgres') env.CLOUDRON_POSTGRESQL_URL = databaseUrlFor(this.dbName);
    for (const [k, v] of Object.entries({ ...this.extraEnv, ...overrides })) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    return env;
  }

  /** Starts `appliance run` in the background. */
  start(overrides = {}) {
    if (this.proc && this.running) throw new Error(`${this.name} is already running`);
    this.log.push({ at: Date.now(), stream: 'harness', line: `--- appliance run (${this.name})` });
    const proc = spawnSupervisor(['run'], this.env(overrides), this.log, this.wrap);
    this.proc = proc;
    this.lastExit = undefined;
    proc.exited.then((r) => {
      if (this.proc === proc) this.lastExit = r;
      this.log.push({ at: Date.now(), stream: 'harness', line: `--- exited: ${JSON.stringify(r)}` });
    });
    return this;
  }

  get running() {
    return this.proc !== null && this.lastExit === undefined;
  }

  get pid() {
    return this.proc?.child.pid;
  }

  /** Waits until /healthz answers 200; fails early if the supervisor exits. */
  async waitHealthy(timeoutMs = 120000) {
    const proc = this.proc;
    let exited = null;
    proc.exited.then((r) => (exited = r));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`${this.name}: supervisor exited before /healthz was 200: ${JSON.stringify(exited)}`);
      if ((await statusOf(this.url('/healthz'), 2000)) === 200) return Date.now() - proc.startedAt;
      await sleep(100);
    }
    throw new Error(`${this.name}: /healthz not 200 within ${timeoutMs} ms`);
  }

  /** Sends `signal` and waits for the exit: { code, signal, elapsedMs (from the signal) }. */
  async stop(signal = 'SIGTERM', timeoutMs = 30000) {
    const proc = this.proc;
    if (!proc || this.lastExit !== undefined) return this.lastExit;
    const sentAt = Date.now();
    proc.child.kill(signal);
    let timer;
    const result = await Promise.race([
      proc.exited,
      new Promise((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (result === null) {
      proc.child.kill('SIGKILL');
      await proc.exited;
      throw new Error(`${this.name}: no exit within ${timeoutMs} ms of ${signal} (killed)`);
    }
    return { ...result, elapsedMs: Date.now() - sentAt };
  }

  /**
   * Runs `appliance ARGS` to completion with this appliance's environment (plus `overrides`):
   * { code, signal, stdout, stderr, elapsedMs }. Killed after `timeoutMs` (then `timedOut`).
   */
  async command(args, overrides = {}, timeoutMs = 60000) {
    const log = [];
    const proc = spawnSupervisor(args, this.env(overrides), log);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.child.kill('SIGTERM');
      setTimeout(() => proc.child.kill('SIGKILL'), 15000).unref();
    }, timeoutMs);
    const r = await proc.exited;
    clearTimeout(timer);
    // Let the last lines arrive (bounded: a leftover process may hold the pipes open).
    let grace;
    await Promise.race([proc.closed, new Promise((res) => (grace = setTimeout(res, 2000)))]);
    clearTimeout(grace);
    const text = (s) => log.filter((l) => l.stream === s).map((l) => l.line);
    this.log.push({ at: Date.now(), stream: 'harness', line: `--- appliance ${args.join(' ')} (${this.name})` });
    this.log.push(...log);
    this.log.push({ at: Date.now(), stream: 'harness', line: `--- exited: ${JSON.stringify(r)}` });
    return { ...r, timedOut, stdout: text('stdout'), stderr: text('stderr') };
  }

  /** URL on the public port (the router). */
  url(p) {
    return `http://127.0.0.1:${this.ports.http}${p}`;
  }

  /** URL on Synapse's internal port. */
  synapseUrl(p) {
    return `http://127.0.0.1:${this.ports.synapse}${p}`;
  }

  /** GET/POST... through the router. */
  request(p, opts) {
    return request(this.url(p), opts);
  }

  /** The MAS↔Synapse shared secret from the data dir. */
  sharedSecret() {
    return fs.readFileSync(path.join(this.dataDir, 'secrets', 'mas_synapse_shared_secret'), 'utf8').trim();
  }

  /** Calls Synapse's internal /_synapse/mas API directly, as MAS does. */
  masApi(method, p, body) {
    return request(this.synapseUrl(`/_synapse/mas/${p}`), {
      method,
      headers: { authorization: `Bearer ${this.sharedSecret()}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** The supervisor's output as text (all runs), each line tagged with its stream. */
  logText(lastLines = Infinity) {
    const lines = this.log.map((l) => `[${new Date(l.at).toISOString().slice(11, 23)} ${l.stream}] ${l.line}`);
    return lines.slice(Math.max(0, lines.length - lastLines)).join('\n');
  }
}
