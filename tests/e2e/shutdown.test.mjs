// SIGTERM and SIGINT stop everything: exit 0 within APPLIANCE_STOP_TIMEOUT, no process of ours
// left (nothing whose command line mentions the data or run dir), the public port released.
import assert from 'node:assert/strict';
import { backends, skipReason } from '../lib/config.mjs';
import { e2eTest } from '../lib/harness.mjs';
import { sleep } from '../lib/http.mjs';
import { canBind } from '../lib/ports.mjs';
import { processesMentioning } from '../lib/procs.mjs';

const STOP_TIMEOUT_S = 10;

async function stopsCleanly(h, backend, signal) {
  const app = await h.appliance(backend, { env: { APPLIANCE_STOP_TIMEOUT: String(STOP_TIMEOUT_S) } });
  app.start();
  await app.waitHealthy();
  const children = processesMentioning(app.runDir);
  assert.ok(
    children.some((p) => p.cmdline.includes('synapse.app.homeserver')),
    `Synapse not found among ${JSON.stringify(children)}`,
  );
  assert.ok(children.some((p) => /mas-cli/.test(p.cmdline)), `MAS not found among ${JSON.stringify(children)}`);

  const r = await app.stop(signal, STOP_TIMEOUT_S * 1000 + 20000);
  assert.deepEqual([r.code, r.signal], [0, null], `exit after ${signal}: ${JSON.stringify(r)}`);
  assert.ok(r.elapsedMs <= STOP_TIMEOUT_S * 1000, `took ${r.elapsedMs} ms, over APPLIANCE_STOP_TIMEOUT`);

  // Give the kernel a moment to tear down reparented processes before looking.
  await sleep(200);
  const left = [...processesMentioning(app.dataDir), ...processesMentioning(app.runDir)];
  assert.deepEqual(left, [], 'processes left behind');
  assert.ok(await canBind(app.ports.http), 'the public port is still bound');
  assert.ok(await canBind(app.ports.synapse, '127.0.0.1'), 'the Synapse port is still bound');
  assert.ok(await canBind(app.ports.mas, '127.0.0.1'), 'the MAS port is still bound');
}

for (const backend of backends) {
  e2eTest(`${backend}: SIGTERM → exit 0 within the stop timeout, nothing left running`, {
    skip: skipReason(backend),
  }, (h) => stopsCleanly(h, backend, 'SIGTERM'));
}

e2eTest('sqlite: SIGINT (Ctrl-C) → exit 0 within the stop timeout, nothing left running', {}, (h) =>
  stopsCleanly(h, 'sqlite', 'SIGINT'));
