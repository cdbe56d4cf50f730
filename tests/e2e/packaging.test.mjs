// The package files we cannot run here, checked statically (issue 6):
// - CloudronManifest.json: keys and types against Cloudron's manifest reference, and the values
//   that must match the code (public port, health path, OIDC callback path, versions);
// - Dockerfile: every COPY source exists and is in the build context, every script it runs
//   exists (and is executable when executed), pinned versions match rust-toolchain.toml and
//   start/lib/versions.sh, and the shape docs/architecture.md#packaging and the issue ask for.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/config.mjs';

const read = (rel) => fs.readFileSync(path.join(repoRoot, rel), 'utf8');
const exists = (rel) => fs.existsSync(path.join(repoRoot, rel));
const isExecutable = (rel) => (fs.statSync(path.join(repoRoot, rel)).mode & 0o111) !== 0;

const manifest = JSON.parse(read('CloudronManifest.json'));
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** `file://x` → the repository path it names (relative to the manifest). */
function fileRef(value) {
  assert.match(value, /^file:\/\/./, `${value} is a file:// reference`);
  return value.slice('file://'.length);
}

/** A value from the Rust sources, by regex (first capture group). */
function fromCode(rel, re) {
  const m = read(rel).match(re);
  assert.ok(m, `${re} in ${rel}`);
  return m[1];
}

function synapseVersion() {
  return fromCode('start/lib/versions.sh', /^SYNAPSE_VERSION=(\S+)$/m);
}

test('manifest: required keys and types (Cloudron manifest reference)', () => {
  assert.equal(manifest.manifestVersion, 2);
  assert.match(manifest.version, SEMVER, 'version is semver');
  assert.equal(typeof manifest.healthCheckPath, 'string');
  assert.match(manifest.healthCheckPath, /^\//);
  assert.ok(Number.isInteger(manifest.httpPort) && manifest.httpPort > 0, 'httpPort');
  assert.match(manifest.id, /^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'id is reverse-DNS');
  for (const key of ['title', 'author', 'tagline', 'website', 'documentationUrl']) {
    assert.equal(typeof manifest[key], 'string', key);
  }
  assert.ok(Array.isArray(manifest.tags) && manifest.tags.every((t) => typeof t === 'string'));
  assert.ok(Number.isInteger(manifest.memoryLimit), 'memoryLimit is bytes');
  assert.ok(manifest.memoryLimit >= 256 * 1024 * 1024, 'memoryLimit is at least the default');
  assert.equal(manifest.optionalSso, true, 'must work without CLOUDRON_OIDC_*');
  assert.match(manifest.configurePath, /^\/auth\/account\/$/);
  const known = new Set([
    'id', 'title', 'author', 'tagline', 'description', 'website', 'contactEmail', 'icon', 'tags',
    'mediaLinks', 'changelog', 'documentationUrl', 'forumUrl', 'upstreamVersion', 'version',
    'manifestVersion', 'healthCheckPath', 'httpPort', 'httpPorts', 'tcpPorts', 'udpPorts',
    'addons', 'memoryLimit', 'minBoxVersion', 'maxBoxVersion', 'targetBoxVersion',
    'postInstallMessage', 'optionalSso', 'multiDomain', 'capabilities', 'logPaths',
    'runtimeDirs', 'checklist', 'configurePath',
  ]);
  for (const key of Object.keys(manifest)) assert.ok(known.has(key), `unknown manifest key ${key}`);
});

test('manifest: addons and their option shapes', () => {
  const { addons } = manifest;
  assert.deepEqual(Object.keys(addons).sort(), ['localstorage', 'oidc', 'postgresql', 'sendmail', 'turn']);
  assert.deepEqual(addons.localstorage, {});
  assert.deepEqual(addons.postgresql, { locale: 'C' }, 'Synapse needs collation C');
  assert.deepEqual(addons.sendmail, { supportsDisplayName: true });
  assert.deepEqual(addons.turn, {});
  assert.deepEqual(Object.keys(addons.oidc).sort(), ['loginRedirectUri', 'logoutRedirectUri', 'tokenSignatureAlgorithm']);
  for (const uri of addons.oidc.loginRedirectUri.split(',')) assert.match(uri, /^\//, 'paths only');
  assert.match(addons.oidc.logoutRedirectUri, /^\//);
  assert.ok(['RS256', 'EdDSA'].includes(addons.oidc.tokenSignatureAlgorithm));
});

test('manifest: port, health path and OIDC callback match the code', () => {
  const port = Number(fromCode('supervisor/src/env.rs', /port\("APPLIANCE_HTTP_PORT", (\d+)\)/));
  assert.equal(manifest.httpPort, port, 'httpPort is APPLIANCE_HTTP_PORT\'s default');
  assert.match(read('supervisor/src/router/route.rs'), new RegExp(`"${manifest.healthCheckPath}" => Route::Healthz`));
  const providerId = fromCode('supervisor/src/render/providers.rs', /pub const CLOUDRON_PROVIDER_ID: &str = "([^"]+)"/);
  const callback = fromCode('mas/src/routes.rs', /pub const UPSTREAM_CALLBACK: &str = "([^"]+)"/);
  const prefix = fromCode('supervisor/src/router/route.rs', /pub\(crate\) const MAS_PREFIX: &str = "([^"]+)"/);
  assert.equal(
    manifest.addons.oidc.loginRedirectUri,
    `${prefix}${callback.replace('{provider_id}', providerId)}`,
  );
  assert.equal(manifest.version, fromCode('Cargo.toml', /^version = "([^"]+)"/m), 'the workspace version');
  assert.equal(manifest.upstreamVersion, synapseVersion(), 'the pinned Synapse');
});

test('manifest: referenced files exist; the icon is a 256x256 PNG', () => {
  for (const key of ['description', 'changelog', 'icon', 'postInstallMessage']) {
    assert.ok(exists(fileRef(manifest[key])), `${key}: ${manifest[key]}`);
  }
  const png = fs.readFileSync(path.join(repoRoot, fileRef(manifest.icon)));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  assert.equal(png.readUInt32BE(16), 256);
  assert.equal(png.readUInt32BE(20), 256);
  assert.ok(exists('manifest/make-icon.py'), 'the script that draws it');
  assert.match(read(fileRef(manifest.changelog)), new RegExp(`\\[${manifest.version.replace(/\./g, '\\.')}\\]`));
});

test('manifest: checklist items and the post-install message', () => {
  const items = Object.entries(manifest.checklist);
  assert.ok(items.length >= 1);
  for (const [key, item] of items) {
    assert.equal(typeof item.message, 'string', key);
    if ('sso' in item) assert.equal(typeof item.sso, 'boolean', key);
  }
  assert.ok(items.some(([k]) => /delegation/.test(k)), 'a checklist item for federation delegation');
  const post = read(fileRef(manifest.postInstallMessage));
  assert.match(post, /\{"m\.server":"\$CLOUDRON-APP-DOMAIN:443"\}/);
  assert.match(post, /"org\.matrix\.msc2965\.authentication":\{"issuer":"\$CLOUDRON-APP-ORIGIN\/auth\/"/);
  assert.match(post, /register-user .*--admin/);
  assert.match(post, /<sso>[\s\S]*<\/sso>/);
  assert.match(post, /<nosso>[\s\S]*<\/nosso>/);
});

/** The Dockerfile as instructions: continuation lines joined, comments dropped. */
function dockerfile() {
  const joined = read('Dockerfile').replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

/** Top-level names .dockerignore excludes (the simple patterns we use). */
function dockerignored() {
  return read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

test('Dockerfile: every COPY source exists and is in the build context', () => {
  const ignored = dockerignored();
  const copies = dockerfile().filter((i) => i.op === 'COPY' && !/--from=/.test(i.args));
  assert.ok(copies.length >= 5);
  for (const { args } of copies) {
    const words = args.split(/\s+/).filter((w) => !w.startsWith('--'));
    const sources = words.slice(0, -1);
    for (const src of sources) {
      assert.ok(exists(src), `COPY source ${src} exists`);
      const top = src.split('/')[0];
      assert.ok(!ignored.includes(top) && !ignored.includes(src), `${src} is not in .dockerignore`);
    }
  }
});

test('Dockerfile: the scripts it runs exist; the entry point only execs appliance run', () => {
  const ins = dockerfile();
  const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  const sourced = [...runs.matchAll(/\/src\/(start\/lib\/)\$f\.sh/g)];
  const loop = runs.match(/for f in ([\w ]+); do source/);
  assert.ok(sourced.length && loop, 'the venv is built by sourcing start/lib scripts');
  for (const name of loop[1].trim().split(/\s+/)) {
    assert.ok(exists(`start/lib/${name}.sh`), `start/lib/${name}.sh`);
    execFileSync('bash', ['-n', path.join(repoRoot, `start/lib/${name}.sh`)]);
  }
  assert.match(read('start/lib/venv.sh'), /^venv_ensure_at\(\) \{/m);
  assert.match(runs, /venv_ensure_at \/app\/code\/venv/);

  const cmd = ins.find((i) => i.op === 'CMD' || i.op === 'ENTRYPOINT');
  const entry = JSON.parse(cmd.args)[0];
  const copied = ins.find((i) => i.op === 'COPY' && i.args.endsWith(entry));
  assert.ok(copied, `${entry} is copied into the image`);
  const script = copied.args.split(/\s+/)[0];
  assert.equal(script, 'start/start.sh');
  assert.ok(isExecutable(script), `${script} is executable`);
  execFileSync('sh', ['-n', path.join(repoRoot, script)]);
  const code = read(script).split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  assert.equal(code.length, 1, 'start.sh is one command');
  assert.match(code[0], /^exec .*appliance}?"? run "\$@"$/);
  const out = execFileSync(path.join(repoRoot, script), ['extra'], {
    env: { ...process.env, APPLIANCE_BIN: '/bin/echo' },
  }).toString();
  assert.equal(out, 'run extra\n', 'start.sh execs `$APPLIANCE_BIN run ARGS`');
});

test('Dockerfile: pinned versions match rust-toolchain.toml and start/lib/versions.sh', () => {
  const ins = dockerfile();
  const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]);
  const channel = fromCode('rust-toolchain.toml', /^channel = "([^"]+)"$/m);
  const rust = froms.find((f) => /\/rust:/.test(f) || f.startsWith('rust:'));
  assert.ok(rust, 'a Rust builder stage');
  assert.equal(rust.split(':')[1].split('-')[0], channel, 'builder = rust-toolchain.toml');
  // The venv is made by the script that reads versions.sh; no second pin in the Dockerfile.
  const text = read('Dockerfile');
  assert.doesNotMatch(text, /matrix-synapse[^\s]*==/);
  assert.match(text, /COPY [^\n]*start\/lib\/versions\.sh[^\n]*\/src\/start\/lib\//);
  assert.match(read('start/lib/venv.sh'), /SYNAPSE_PIP_SPEC/);
  assert.ok(synapseVersion());
  // The venv is built on the final image's Python: same base, same path.
  const synapseStage = ins.find((i) => i.op === 'FROM' && / AS synapse$/i.test(i.args));
  const final = ins.filter((i) => i.op === 'FROM').at(-1);
  assert.equal(synapseStage.args.split(/\s+/)[0], final.args.split(/\s+/)[0]);
  assert.match(final.args, /bookworm-slim/);
  assert.doesNotMatch(text, /\bcurl\b|\bwget\b/, 'no curl in the image');
});

test('Dockerfile: image shape (code, data volume, port, health check, environment)', () => {
  const ins = dockerfile();
  const one = (op) => ins.filter((i) => i.op === op).map((i) => i.args);
  assert.deepEqual(one('VOLUME'), ['/app/data']);
  assert.deepEqual(one('EXPOSE'), [String(manifest.httpPort)]);
  assert.match(one('HEALTHCHECK')[0], /CMD \["\/app\/code\/appliance", "health"\]$/);
  const env = one('ENV').join(' ');
  assert.match(env, /APPLIANCE_SYNAPSE_PYTHON=\/app\/code\/venv\/bin\/python/);
  assert.match(env, /APPLIANCE_DATA_DIR=\/app\/data/);
  assert.match(env, /APPLIANCE_RUN_DIR=\/run\/appliance/);
  assert.match(env, /APPLIANCE_USER=cloudron/, 'root in plain Docker drops to cloudron too');
  const copies = one('COPY').join('\n');
  assert.match(copies, /appliance \/out\/mas-cli \/app\/code\//);
  assert.match(copies, /templates\/mas \/app\/code\/templates\/mas/);
  assert.match(copies, /assets \/app\/code\/assets/);
  const stages = ins.filter((i) => i.op === 'FROM').length;
  assert.ok(stages >= 3, 'multi-stage');
  assert.match(one('RUN').join('\n'), /cargo build --release --locked --bins/);
  assert.match(one('RUN').join('\n'), /useradd [^\n]*cloudron/, 'the user the supervisor drops to');
});
