// The test wrapper: gives each test fresh appliances, data dirs and databases, dumps the
// supervisors' output when the test fails, and cleans everything up afterwards.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Appliance } from './appliance.mjs';
import { stateDir } from './config.mjs';
import { appliancePorts } from './ports.mjs';
import { createDatabase, dropDatabase } from './pg.mjs';
import { processesMentioning } from './procs.mjs';

export class Harness {
  constructor(label) {
    this.label = label;
    this.appliances = [];
    this.watched = [];
    this.dirs = [];
    this.databases = [];
    this.cleanups = [];
  }

  /** A fresh temporary directory, removed after a passing test. */
  tempDir(prefix = 'dir') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `appliance-e2e-${prefix}-`));
    this.dirs.push(dir);
    return dir;
  }

  /** A fresh PostgreSQL database (see pg.mjs), dropped afterwards. */
  async database(opts) {
    const name = await createDatabase(opts);
    this.databases.push(name);
    return name;
  }

  /**
   * A new (not started) appliance on `backend`, with free ports, a fresh data dir (unless
   * `dataDir` is given) and, for PostgreSQL, a fresh database (unless `dbName` is given).
   */
  async appliance(backend, { dataDir, dbName, runDir, env, ports, wrap } = {}) {
    const app = new Appliance({
      name: `${this.label} #${this.appliances.length + 1}`,
      backend,
      dataDir: dataDir ?? path.join(this.tempDir(backend), 'data'),
      ports: ports ?? (await appliancePorts()),
      dbName: backend === 'postgres' ? (dbName ?? (await this.database())) : undefined,
      runDir,
      env,
      wrap,
    });
    this.appliances.push(app);
    return app;
  }

  /** Includes another harness's appliance in this test's failure output. */
  watch(app) {
    this.watched.push(app);
  }

  /** Runs `fn` at cleanup (before the databases are dropped). */
  defer(fn) {
    this.cleanups.push(fn);
  }

  /** Prints every appliance's output (the tail) and writes it in full under tests/.state/logs. */
  dump(err) {
    const logDir = path.join(stateDir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    const slug = this.label.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80);
    const out = [`\n===== ${this.label}: FAILED: ${err?.stack ?? err}`];
    for (const app of [...this.appliances, ...this.watched]) {
      const file = path.join(logDir, `${slug}-${crypto.randomBytes(3).toString('hex')}.log`);
      fs.writeFileSync(file, app.logText());
      out.push(`----- ${app.name} (data ${app.dataDir}; full log ${file}), last 150 lines:`);
      out.push(app.logText(150));
    }
    if (this.dirs.length) out.push(`----- kept for inspection: ${this.dirs.join(' ')}`);
    process.stderr.write(`${out.join('\n')}\n`);
  }

  /** Stops what is still running, kills leftovers, drops databases, removes temp dirs. */
  async cleanup({ keepDirs = false } = {}) {
    const errors = [];
    for (const fn of this.cleanups.reverse()) {
      await Promise.resolve().then(fn).catch((e) => errors.push(e));
    }
    await Promise.all(
      this.appliances.map((app) => app.stop('SIGTERM', 20000).catch((e) => errors.push(e))),
    );
    // Whatever a broken supervisor left behind must not disturb the next tests.
    for (const app of this.appliances) {
      for (const p of [...processesMentioning(app.dataDir), ...processesMentioning(app.runDir)]) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    for (const name of this.databases) await dropDatabase(name).catch((e) => errors.push(e));
    if (!keepDirs) {
      for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
    }
    if (errors.length) process.stderr.write(`cleanup of ${this.label}: ${errors.join('; ')}\n`);
  }

  /** Runs `fn(this)`; dumps on failure (keeping the temp dirs); always cleans up. */
  async run(fn) {
    let failed = false;
    try {
      return await fn(this);
    } catch (err) {
      failed = true;
      this.dump(err);
      throw err;
    } finally {
      await this.cleanup({ keepDirs: failed });
    }
  }
}

/**
 * For tests that share one harness's appliance (a suite's `before`): `check(name, fn, timeout)`
 * declares a node:test test that dumps the appliance's output when `fn` throws.
 */
export function sharedCheck(h) {
  return (name, fn, timeout = 60000) =>
    test(name, { timeout }, async () => {
      try {
        await fn();
      } catch (err) {
        h.dump(err);
        throw err;
      }
    });
}

/** A node:test test with its own Harness: `e2eTest(name, {timeout, skip}, async (h, t) => ...)`. */
export function e2eTest(name, opts, fn) {
  return test(name, { timeout: 180000, ...opts }, (t) => new Harness(name).run((h) => fn(h, t)));
}

/**
 * Every file and directory under `dir` with its mode and, for files, a SHA-256 of its bytes
 * (symlinks by target); null when `dir` does not exist. Equal snapshots = untouched.
 */
export function snapshotDir(dir) {
  if (!fs.existsSync(dir)) return null;
  const out = {};
  const walk = (rel) => {
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link -> ${fs.readlinkSync(abs)}`;
    else if (st.isDirectory()) {
      if (rel) out[`${rel}/`] = `dir ${mode}`;
      for (const e of fs.readdirSync(abs).sort()) walk(rel ? path.join(rel, e) : e);
    } else {
      const hash = crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
      out[rel] = `file ${mode} ${st.size} ${hash}`;
    }
  };
  walk('');
  return out;
}
