// The image's run conditions without Docker (issue 6: "runs with a read-only root filesystem,
// /run and /tmp as tmpfs, as root (drops privileges) or as --user"): the appliance runs in a
// private mount namespace where `/` is read-only, the data dir is a writable bind mount (the
// volume), `/run` and the temp dir are tmpfs, and the run dir is /run/appliance as in the
// image. Once started as root with APPLIANCE_USER=cloudron (the image's default), once started
// directly as `cloudron` (docker run --user).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { e2eTest } from '../lib/harness.mjs';
import { request } from '../lib/http.mjs';

const isRoot = process.getuid?.() === 0;

function cloudronIds() {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'cloudron'], { encoding: 'utf8' })),
      gid: Number(execFileSync('id', ['-g', 'cloudron'], { encoding: 'utf8' })),
    };
  } catch {
    return null;
  }
}

const skip = !isRoot
  ? 'needs root (mount namespaces)'
  : !cloudronIds()
    ? 'no `cloudron` user (./start/test creates it)'
    : false;

// Runs in the new mount namespace, then execs the appliance ("$@"). `remount,bind,ro` changes
// only this namespace's view of `/`, never the file system itself.
const SETUP = `set -e
mount --bind "$RO_DATA" "$RO_DATA"
mount -t tmpfs -o mode=1777 tmpfs "$RO_TMP"
mount -o remount,bind,ro /
mount -t tmpfs -o mode=1777 tmpfs /run
export TMPDIR="$RO_TMP"
if [ -n "$RO_AS_USER" ]; then
  exec setpriv --reuid="$RO_AS_USER" --regid="$RO_AS_USER" --init-groups -- "$@"
fi
exec "$@"`;

function uidOf(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.split('\n').find((l) => l.startsWith('Uid:')).split(/\s+/)[2]);
}

async function readOnlyRun(h, { asUser }) {
  const cloudron = cloudronIds();
  const base = h.tempDir('readonly');
  fs.chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  const tmp = path.join(base, 'tmp');
  fs.mkdirSync(dataDir);
  fs.mkdirSync(tmp);
  if (asUser) fs.chownSync(dataDir, cloudron.uid, cloudron.gid);
  const app = await h.appliance('sqlite', {
    dataDir,
    runDir: '/run/appliance',
    wrap: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', SETUP, 'sh'],
    env: {
      RO_DATA: dataDir,
      RO_TMP: tmp,
      RO_AS_USER: asUser ? 'cloudron' : '',
      APPLIANCE_USER: 'cloudron',
      PYTHONDONTWRITEBYTECODE: '1',
    },
  });
  app.start();
  await app.waitHealthy();

  // The supervisor's view: `/` read-only, /run a tmpfs holding the rendered configs.
  const mounts = fs.readFileSync(`/proc/${app.pid}/mountinfo`, 'utf8').split('\n');
  const root = mounts.find((l) => l.split(' ')[4] === '/');
  assert.match(root.split(' ')[5], /(^|,)ro(,|$)/, `root is read-only: ${root}`);
  const runDir = `/proc/${app.pid}/root/run/appliance`;
  for (const f of ['homeserver.yaml', 'mas.yaml', 'synapse-log.yaml']) {
    assert.ok(fs.existsSync(path.join(runDir, f)), `${f} rendered into the tmpfs /run`);
  }
  assert.equal(uidOf(app.pid), cloudron.uid, 'the supervisor runs as cloudron');
  assert.equal(fs.statSync(path.join(dataDir, 'secrets')).uid, cloudron.uid);

  // Both services answer through the public port.
  const versions = await request(app.url('/_matrix/client/versions'));
  assert.equal(versions.status, 200);
  const discovery = await request(app.url('/auth/.well-known/openid-configuration'));
  assert.equal(discovery.status, 200);
  assert.doesNotMatch(app.logText(), /Read-only file system|EROFS/);

  const stopped = await app.stop();
  assert.deepEqual([stopped.code, stopped.signal], [0, null]);
}

e2eTest('sqlite: read-only root, tmpfs /run and /tmp, started as root (drops to cloudron)', {
  skip,
  timeout: 180000,
}, async (h) => readOnlyRun(h, { asUser: false }));

e2eTest('sqlite: read-only root, tmpfs /run and /tmp, started as cloudron (docker run --user)', {
  skip,
  timeout: 180000,
}, async (h) => readOnlyRun(h, { asUser: true }));
