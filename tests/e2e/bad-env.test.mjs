// A bad environment is refused before anything happens: `appliance run` exits 1, stderr has a
// line naming the culprit variable, and the data dir is byte-for-byte what it was, both for a
// data dir from an earlier good start and for a fresh (empty) one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { skipReason } from '../lib/config.mjs';
import { Harness, snapshotDir } from '../lib/harness.mjs';
import { databaseUrlFor } from '../lib/pg.mjs';
import { freePort, occupyPort } from '../lib/ports.mjs';

/**
 * Runs `appliance run` on `app` with `overrides` and checks the refusal: exit 1, a stderr line
 * naming every variable in `culprits`, the data dir untouched. Returns the result.
 */
async function assertRefused(app, overrides, culprits, { timeoutMs = 30000 } = {}) {
  const before = snapshotDir(app.dataDir);
  const r = await app.command(['run'], overrides, timeoutMs);
  const shown = `exit ${JSON.stringify([r.code, r.signal])}${r.timedOut ? ' (still running: killed)' : ''}\nstderr:\n${r.stderr.join('\n')}`;
  assert.equal(r.code, 1, shown);
  for (const name of culprits) {
    assert.ok(r.stderr.some((l) => l.includes(name)), `no stderr line names ${name}; ${shown}`);
  }
  assert.deepEqual(snapshotDir(app.dataDir), before, 'the data dir was changed');
  return r;
}

/** The shared set-up of a group: an appliance started once and stopped (a used data dir). */
function group(name, backend, body) {
  describe(name, { skip: skipReason(backend) }, () => {
    const h = new Harness(name);
    const ctx = {};
    before(async () => {
      try {
        // The run dir is regenerated on every start and is not data: keep it out of the
        // snapshots by putting it elsewhere.
        ctx.app = await h.appliance(backend, { runDir: path.join(h.tempDir('run'), 'run') });
        ctx.app.start();
        await ctx.app.waitHealthy();
        const r = await ctx.app.stop();
        assert.deepEqual([r.code, r.signal], [0, null]);
        // The same set-up with a data dir that was never used.
        const fresh = path.join(h.tempDir('fresh'), 'data');
        fs.mkdirSync(fresh);
        ctx.fresh = await h.appliance(backend, {
          dataDir: fresh,
          runDir: path.join(h.tempDir('run'), 'run'),
          dbName: ctx.app.dbName,
          ports: ctx.app.ports,
        });
      } catch (err) {
        h.dump(err);
        throw err;
      }
    }, { timeout: 180000 });
    after(() => h.cleanup(), { timeout: 60000 });

    const check = (title, fn) =>
      test(title, { timeout: 120000 }, async () => {
        try {
          await fn(ctx, h);
        } catch (err) {
          h.dump(err);
          throw err;
        }
      });
    body(check);
  });
}

group('sqlite: bad environment', 'sqlite', (check) => {
  check('unparseable CLOUDRON_APP_ORIGIN', async ({ app, fresh }) => {
    for (const a of [app, fresh]) {
      await assertRefused(a, { CLOUDRON_APP_ORIGIN: 'not a url' }, ['CLOUDRON_APP_ORIGIN']);
    }
  });

  check('APPLIANCE_HTTP_PORT already in use', async ({ app, fresh }) => {
    const held = await occupyPort(app.ports.http);
    try {
      for (const a of [app, fresh]) await assertRefused(a, {}, ['APPLIANCE_HTTP_PORT']);
    } finally {
      await held.close();
    }
  });

  check('APPLIANCE_SERVER_NAME different from the one pinned at the first start', async ({ app }) => {
    const pin = JSON.parse(fs.readFileSync(path.join(app.dataDir, 'appliance.json'), 'utf8'));
    // Locally the default is the origin's host (docs/architecture.md#environment), with or without
    // its port.
    assert.ok(
      [`localhost`, `localhost:${app.ports.http}`].includes(pin.server_name),
      `appliance.json pins ${JSON.stringify(pin)}`,
    );
    await assertRefused(app, { APPLIANCE_SERVER_NAME: 'other.example.org' }, ['APPLIANCE_SERVER_NAME']);
  });

  check('bad APPLIANCE_REGISTRATION and APPLIANCE_TERMS_URL values', async ({ app, fresh }) => {
    for (const a of [app, fresh]) {
      await assertRefused(a, { APPLIANCE_REGISTRATION: 'yes' }, ['APPLIANCE_REGISTRATION']);
      await assertRefused(a, { APPLIANCE_TERMS_URL: 'example.com/terms' }, ['APPLIANCE_TERMS_URL']);
      await assertRefused(a, { APPLIANCE_TERMS_URL: 'ftp://example.com/terms' }, ['APPLIANCE_TERMS_URL']);
    }
  });

  check('registration on while password login is off names both variables on one line', async ({ fresh }) => {
    const r = await assertRefused(
      fresh,
      { APPLIANCE_REGISTRATION: 'open', APPLIANCE_PASSWORD_LOGIN: 'false' },
      ['APPLIANCE_REGISTRATION', 'APPLIANCE_PASSWORD_LOGIN'],
    );
    assert.ok(
      r.stderr.some((l) => l.includes('APPLIANCE_REGISTRATION') && l.includes('APPLIANCE_PASSWORD_LOGIN')),
      r.stderr.join('\n'),
    );
  });

  check('several problems are reported together, one line each', async ({ fresh }) => {
    const overrides = { CLOUDRON_APP_ORIGIN: 'not a url', APPLIANCE_SYNAPSE_PORT: 'eighty' };
    const r = await assertRefused(fresh, overrides, ['CLOUDRON_APP_ORIGIN', 'APPLIANCE_SYNAPSE_PORT']);
    const line = (name) => r.stderr.findIndex((l) => l.includes(name));
    assert.notEqual(line('CLOUDRON_APP_ORIGIN'), line('APPLIANCE_SYNAPSE_PORT'), 'one line per problem');
    // `appliance check` validates the same way without starting anything.
    const c = await fresh.command(['check'], overrides);
    assert.equal(c.code, 1, c.stderr.join('\n'));
    assert.ok(c.stderr.some((l) => l.includes('APPLIANCE_SYNAPSE_PORT')), c.stderr.join('\n'));
  });
});

group('postgres: bad environment', 'postgres', (check) => {
  check('unreachable PostgreSQL (closed port): refused within APPLIANCE_DB_WAIT', async ({ app, fresh }) => {
    const closed = new URL(databaseUrlFor(app.dbName));
    closed.port = String(await freePort());
    for (const a of [app, fresh]) {
      const r = await assertRefused(
        a,
        { CLOUDRON_POSTGRESQL_URL: closed.toString(), APPLIANCE_DB_WAIT: '2' },
        ['CLOUDRON_POSTGRESQL_URL'],
      );
      assert.ok(r.elapsedMs < 15000, `took ${r.elapsedMs} ms with APPLIANCE_DB_WAIT=2`);
    }
  });

  check('database collation C.UTF-8 instead of C', async ({ app, fresh }, h) => {
    const wrong = await h.database({ locale: 'C.UTF-8' });
    for (const a of [app, fresh]) {
      const r = await assertRefused(a, { CLOUDRON_POSTGRESQL_URL: databaseUrlFor(wrong) }, ['CLOUDRON_POSTGRESQL_URL']);
      assert.ok(r.stderr.some((l) => /collat|ctype|locale/i.test(l)), `the message must say what is wrong:\n${r.stderr.join('\n')}`);
    }
  });
});
