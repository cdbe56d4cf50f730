// How the appliance behaves the way a container starts it:
// - as PID 1 of its own PID namespace (the pid1 shim): signals reach the supervisor, orphans
//   re-parented to it are reaped, and SIGTERM still ends everything with exit 0;
// - as root with a target user: the data and run dirs end up owned by that user, and what the
//   supervisor writes after dropping privileges is written as that user.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { e2eTest } from '../lib/harness.mjs';
import { sleep } from '../lib/http.mjs';
import { listProcesses, processState, processesMentioning } from '../lib/procs.mjs';

const isRoot = process.getuid?.() === 0;

/** The NSpid line of /proc/<pid>/status: the pid in each namespace, outermost first. */
function nsPids(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('NSpid:'));
  return line.split(/\s+/).slice(1).map(Number);
}

function uidOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.split('\n').find((l) => l.startsWith('Uid:')).split(/\s+/)[2]);
}

function childrenOf(pid) {
  return listProcesses().filter((p) => p.ppid === pid);
}

async function until(what, fn, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

e2eTest('sqlite: as PID 1 of a PID namespace, orphans are reaped and SIGTERM exits 0', {
  skip: isRoot ? false : 'needs root for unshare --pid',
}, async (h) => {
  const app = await h.appliance('sqlite', {
    wrap: ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'],
  });
  app.start();
  await app.waitHealthy();

  // unshare → shim (PID 1 inside) → supervisor → Synapse, MAS.
  const shim = await until('the PID 1 shim', () => childrenOf(app.pid)[0]);
  assert.deepEqual(nsPids(shim.pid).slice(-1), [1], 'the appliance is PID 1 in its namespace');
  const supervisor = await until('the supervisor', () => childrenOf(shim.pid).find((p) => / run$/.test(p.cmdline)));
  const supervised = childrenOf(supervisor.pid).map((p) => p.cmdline);
  assert.ok(supervised.some((c) => c.includes('synapse.app.homeserver')), JSON.stringify(supervised));
  assert.ok(supervised.some((c) => c.includes('mas-cli')), JSON.stringify(supervised));

  // An orphan inside the namespace is re-parented to PID 1, which must reap it when it dies.
  const out = execFileSync('nsenter', ['--target', String(shim.pid), '--pid', '--mount', '--',
    'sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
  const orphanNsPid = Number(out.trim());
  const orphan = await until('the orphan re-parented to the shim', () =>
    childrenOf(shim.pid).find((p) => p.cmdline === 'sleep 300' && nsPids(p.pid).at(-1) === orphanNsPid));
  process.kill(orphan.pid, 'SIGKILL');
  await until('the orphan to be reaped (no zombie left)', () => processState(orphan.pid) === null);

  // `unshare` forwards no signals: signal PID 1 itself, as the container runtime does.
  const sentAt = Date.now();
  process.kill(shim.pid, 'SIGTERM');
  const r = await Promise.race([app.proc.exited, sleep(30000).then(() => null)]);
  assert.ok(r, 'no exit within 30 s of SIGTERM to PID 1');
  assert.deepEqual([r.code, r.signal], [0, null], `exit: ${JSON.stringify(r)}`);
  const elapsed = Date.now() - sentAt;
  assert.ok(elapsed <= 10000, `took ${elapsed} ms`);
  await sleep(200);
  assert.deepEqual(processesMentioning(app.dataDir), [], 'processes left behind');
});

e2eTest('sqlite: started as root with APPLIANCE_USER, files are owned by that user', {
  skip: isRoot ? false : 'needs root to change owners',
}, async (h) => {
  const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };
  const base = h.tempDir('owner');
  // mkdtemp makes a 0700 directory: the target user must be able to reach the data dir in it.
  fs.chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  fs.mkdirSync(path.join(dataDir, 'config'), { recursive: true });
  // Something the platform restored as root, which must be handed over too.
  fs.writeFileSync(path.join(dataDir, 'config', 'homeserver.yaml'), 'max_upload_size: 10M\n');
  const app = await h.appliance('sqlite', { dataDir, env: { APPLIANCE_USER: 'nobody' } });

  const r = await app.command(['render']);
  assert.equal(r.code, 0, r.stderr.join('\n'));
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
  const files = [dataDir, ...walk(dataDir)];
  assert.ok(files.some((f) => f.endsWith(path.join('secrets', 'mas_rsa.pem'))), 'secrets were generated');
  assert.ok(files.some((f) => f.endsWith(path.join('run', 'homeserver.yaml'))), 'configs were rendered');
  for (const f of files) {
    const st = fs.lstatSync(f);
    assert.deepEqual([st.uid, st.gid], [nobody.uid, nobody.gid], `owner of ${f}`);
  }
  // Rendered by the dropped process: the operator override still applies.
  assert.match(fs.readFileSync(path.join(dataDir, 'run', 'homeserver.yaml'), 'utf8'), /max_upload_size: 10M/);
  assert.equal(uidOf(process.pid), 0, 'the test itself is still root');
});

e2eTest('sqlite: SIGHUP re-renders the configs from the overrides and keeps both children running', {}, async (h) => {
  const app = await h.appliance('sqlite');
  app.start();
  await app.waitHealthy();
  const children = () => childrenOf(app.pid).map((p) => p.pid).sort();
  const before = children();
  assert.equal(before.length, 2, 'Synapse and MAS run under the supervisor');
  const rendered = path.join(app.runDir, 'homeserver.yaml');
  assert.doesNotMatch(fs.readFileSync(rendered, 'utf8'), /max_upload_size: 7M/);

  fs.writeFileSync(path.join(app.dataDir, 'config', 'homeserver.yaml'), 'max_upload_size: 7M\n');
  process.kill(app.pid, 'SIGHUP');
  await until('the re-rendered homeserver.yaml', () => /max_upload_size: 7M/.test(fs.readFileSync(rendered, 'utf8')));
  await sleep(1000);
  assert.deepEqual(children(), before, 'SIGHUP restarted nobody: the same Synapse and MAS processes');
  assert.equal(await app.waitHealthy(5000) >= 0, true);
  const logged = app.logText();
  assert.match(logged, /SIGHUP: re-rendering configs/);
  assert.doesNotMatch(logged, /exited unexpectedly/);
});
