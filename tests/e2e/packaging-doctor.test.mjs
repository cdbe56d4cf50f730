// `appliance doctor` against a healthy appliance, a misconfigured one and a stopped one; and
// `--send-test-email` with mail off (issue 6).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { e2eTest } from '../lib/harness.mjs';

const marks = (lines) => lines.filter(Boolean).map((l) => [...l][0]);

e2eTest('sqlite: appliance doctor passes on a healthy appliance, names each misconfiguration, and says when it is not running', {
  timeout: 180000,
}, async (h) => {
  const app = await h.appliance('sqlite');
  app.start();
  await app.waitHealthy();

  // No mail variables: the start says mail is off.
  assert.match(app.logText(), /mail is off \(no CLOUDRON_MAIL_\* variables\)/);
  // The image's HEALTHCHECK.
  let r = await app.command(['health']);
  assert.equal(r.code, 0, r.stderr.join('\n'));

  // Healthy: every line is ✅, exit 0, and the lines say what was checked.
  r = await app.command(['doctor']);
  let out = r.stdout.join('\n');
  assert.equal(r.code, 0, `${out}\n${r.stderr.join('\n')}`);
  assert.ok(marks(r.stdout).every((m) => m === '✅'), out);
  assert.match(out, /^✅ the appliance is running and healthy/m);
  assert.match(out, new RegExp(`^✅ federation delegation: http://localhost:${app.ports.http}/\\.well-known/matrix/server names "localhost:${app.ports.http}"$`, 'm'));
  assert.match(out, /^✅ client discovery: /m);
  assert.match(out, /^✅ login through the origin: .*\/_matrix\/client\/v3\/login offers m\.login\.password/m);
  assert.match(out, /^✅ MAS through the origin: /m);
  assert.match(out, /^✅ Synapse \d+\.\d+\.\d+ is up \(the pinned version\)$/m);
  assert.match(out, /^✅ MAS \d+\.\d+\.\d+ is up/m);
  assert.match(out, /^✅ database: embedded SQLite/m);
  assert.match(out, /^✅ disk: \d+ MiB free on /m);
  assert.match(out, /^✅ secrets: all 8 present, files 0600/m);
  // The default registration mode, and recovery unavailable without mail.
  assert.match(out, /^✅ accounts: registration off \(APPLIANCE_REGISTRATION=off.*; password recovery: unavailable \(mail is off/m);

  // Mail off: the test email fails and says which variables turn mail on.
  r = await app.command(['doctor', '--send-test-email', 'admin@example.org']);
  out = r.stdout.join('\n');
  assert.equal(r.code, 1, out);
  assert.match(out, /^❌ mail is off \(email\.transport: blackhole\).*CLOUDRON_MAIL_SMTP_SERVER/m);
  assert.match(out, /^❌ test email to admin@example\.org not sent: mail is not configured$/m);

  // Misconfigured: a secret readable by others, an open secrets dir, and a server name whose
  // domain serves no delegation.
  const secrets = path.join(app.dataDir, 'secrets');
  fs.chmodSync(path.join(secrets, 'mas_rsa.pem'), 0o644);
  fs.chmodSync(secrets, 0o755);
  r = await app.command(['doctor'], { APPLIANCE_SERVER_NAME: 'delegation.invalid' });
  out = r.stdout.join('\n');
  assert.equal(r.code, 1, out);
  assert.match(out, /^❌ server name: /m);
  assert.match(out, /^❌ federation delegation: https:\/\/delegation\.invalid\/\.well-known\/matrix\/server: .*serve exactly \{"m\.server":"localhost:\d+"\} at https:\/\/delegation\.invalid\/\.well-known\/matrix\/server/m);
  assert.match(out, /^❌ client discovery: https:\/\/delegation\.invalid\/\.well-known\/matrix\/client: .*"org\.matrix\.msc2965\.authentication":\{"account":"http:\/\/localhost:\d+\/auth\/account\/","issuer":"http:\/\/localhost:\d+\/auth\/"\}/m);
  assert.match(out, /^❌ secrets: chmod 700 .*secrets \(it is 755\); chmod 600 .*mas_rsa\.pem \(it is 644\)$/m);
  assert.match(out, /^✅ the appliance is running and healthy/m, 'the rest still passes');
  fs.chmodSync(path.join(secrets, 'mas_rsa.pem'), 0o600);
  fs.chmodSync(secrets, 0o700);

  // Stopped: the first line says so, and nothing hangs; the health check fails.
  await app.stop();
  r = await app.command(['health']);
  assert.equal(r.code, 1);
  assert.match(r.stderr.join('\n'), /unhealthy/);
  const started = Date.now();
  r = await app.command(['doctor']);
  out = r.stdout.join('\n');
  assert.equal(r.code, 1, out);
  assert.match(r.stdout[0], /^❌ the appliance is not running: nothing healthy answers on http:\/\/127\.0\.0\.1:\d+\/healthz/);
  assert.match(out, /^❌ Synapse version: unknown, the appliance is not running$/m);
  assert.match(out, /^✅ secrets: /m, 'file checks still run');
  assert.ok(Date.now() - started < 20000, `took ${Date.now() - started} ms`);
});
