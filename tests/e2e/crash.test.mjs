// A Synapse child killed with SIGKILL is noticed (/healthz 503 naming it), restarted, and the
// appliance is healthy again; the dead process is reaped (no zombie).
import assert from 'node:assert/strict';
import { backends, skipReason } from '../lib/config.mjs';
import { e2eTest } from '../lib/harness.mjs';
import { request, waitFor } from '../lib/http.mjs';
import { processState, processesMentioning } from '../lib/procs.mjs';

/** The live (non-zombie) Synapse processes of `app`, found by their command line. */
function synapsePids(app) {
  return processesMentioning(app.runDir)
    .filter((p) => p.cmdline.includes('synapse.app.homeserver') && p.state !== 'Z')
    .map((p) => p.pid);
}

for (const backend of backends) {
  e2eTest(`${backend}: kill -9 of Synapse → /healthz 503, then restarted and 200 again`, {
    skip: skipReason(backend),
  }, async (h) => {
    const app = await h.appliance(backend);
    app.start();
    await app.waitHealthy();

    const pids = synapsePids(app);
    assert.equal(pids.length, 1, `expected one Synapse process, found ${JSON.stringify(pids)}`);
    const [old] = pids;
    process.kill(old, 'SIGKILL');

    const down = await waitFor('/healthz 503', async () => {
      const res = await app.request('/healthz', { timeoutMs: 5000 }).catch(() => null);
      return res?.status === 503 ? res : null;
    }, { timeoutMs: 20000, intervalMs: 50 });
    // The 503 names the failing part: Synapse, not MAS.
    const health = down.json();
    assert.notEqual(health.status, 'ok', down.body);
    assert.match(down.body, /synapse/i, `the 503 must name the failing part: ${down.body}`);
    if ('synapse' in health) assert.notEqual(health.synapse, 'ok', down.body);
    if ('mas' in health) assert.equal(health.mas, 'ok', down.body);

    await waitFor('/healthz 200 again', async () => {
      const res = await app.request('/healthz', { timeoutMs: 5000 }).catch(() => null);
      return res?.status === 200;
    }, { timeoutMs: 90000, intervalMs: 200 });

    const now = synapsePids(app);
    assert.equal(now.length, 1, `expected one Synapse process after the restart, found ${JSON.stringify(now)}`);
    assert.notEqual(now[0], old);
    assert.notEqual(processState(old), 'Z', `the killed Synapse (pid ${old}) was left a zombie`);
    assert.ok(app.running, 'the supervisor itself must keep running');
    const versions = await request(app.url('/_matrix/client/versions'));
    assert.equal(versions.status, 200, versions.body);
  });
}
