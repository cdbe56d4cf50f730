// The test provider itself (tests/lib/idp.mjs), without an appliance: a relying party
// (openid-client, client_secret_basic, PKCE S256, nonce) signs in through its pages over plain
// HTTP and gets an ID token and userinfo with the account's claims; each tamper mode spoils
// exactly the one thing it names (checked by the library, or against the provider's JWKS for the
// signature); a stopped provider refuses connections and comes back on the same port. If these
// fail, the platform-SSO suites (upstream.suite.mjs) cannot mean anything.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from '../lib/http.mjs';
import { TAMPER_MODES, TestIdp, decodeJwt } from '../lib/idp.mjs';
import { oidc } from '../lib/oidc.mjs';

/** A browser without a browser: follows the provider's redirects with its cookies. */
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async send(url, opts = {}) {
    const res = await request(url, { ...opts, headers: { ...opts.headers, cookie: this.header() } });
    for (const c of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  }
}

/** Signs `account` in at `authUrl`; returns the URL the provider finally redirects to. */
async function signIn(idp, authUrl, account, { cancel = false } = {}) {
  const jar = new CookieJar();
  let url = String(authUrl);
  for (let hops = 0; hops < 10; hops++) {
    const res = await jar.send(url);
    if (res.status === 200 && res.body.includes('Sign in to')) {
      const action = res.body.match(/action="([^"]+\/login)"/)[1];
      const target = cancel ? action.replace(/\/login$/, '/cancel') : action;
      const post = await jar.send(new URL(target, idp.issuer).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: account.username, password: account.password }).toString(),
      });
      assert.equal(post.status, 303, post.body);
      url = new URL(post.headers.location, idp.issuer).href;
      continue;
    }
    assert.ok([302, 303].includes(res.status), `${url}: ${res.status} ${res.body.slice(0, 300)}`);
    const next = new URL(res.headers.location, url);
    if (next.href.startsWith(idp.redirectUri)) return next;
    url = next.href;
  }
  throw new Error('too many redirects');
}

describe('the test OIDC provider (tests/lib/idp.mjs)', () => {
  let idp;
  let config;
  let alice;

  before(async () => {
    idp = await TestIdp.start('http://localhost:1', { name: 'Self Test' });
    alice = idp.addAccount({ username: 'alice', name: 'Alice Liddell', email: 'alice@example.org' });
    config = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.ClientSecretBasic(idp.clientSecret), {
      execute: [oidc.allowInsecureRequests],
    });
  });

  after(() => idp?.stop());

  async function flow(account = alice) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: idp.redirectUri,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const callback = await signIn(idp, url, account);
    return { callback, verifier, state, nonce };
  }

  function exchange({ callback, verifier, state, nonce }) {
    return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  }

  test('discovery names its endpoints; the client is confidential with PKCE S256', async () => {
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, idp.issuer);
    assert.equal(meta.token_endpoint, `${idp.issuer}/token`);
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    const env = await idp.env();
    assert.equal(env.CLOUDRON_OIDC_ISSUER, idp.issuer);
    assert.equal(env.CLOUDRON_OIDC_TOKEN_ENDPOINT, meta.token_endpoint);
    assert.equal(env.CLOUDRON_OIDC_KEYS_ENDPOINT, meta.jwks_uri);
    assert.equal(env.CLOUDRON_OIDC_PROFILE_ENDPOINT, meta.userinfo_endpoint);
    assert.equal(env.CLOUDRON_OIDC_AUTH_ENDPOINT, meta.authorization_endpoint);
  });

  test('sign-in through its page gives an ID token and userinfo with the account claims', async () => {
    const tokens = await exchange(await flow());
    const claims = tokens.claims();
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.iss, idp.issuer);
    assert.equal(claims.aud, idp.clientId);
    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, 'alice');
    assert.equal(info.name, 'Alice Liddell');
    assert.equal(info.email, 'alice@example.org');
    assert.equal(info.email_verified, true);
    const last = idp.tokenRequests.at(-1);
    assert.deepEqual([last.basic, last.codeVerifier, last.tampered], [true, true, null]);
    assert.equal(idp.authorizations.at(-1).code_challenge_method, 'S256');
  });

  test('an authorization request without PKCE is refused', async () => {
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: idp.redirectUri, scope: 'openid', state: 's', nonce: 'n' });
    const res = await request(url.href);
    assert.equal(res.status, 303);
    assert.match(res.headers.location, /error=invalid_request/);
  });

  test('cancel on its page sends access_denied to the redirect URI', async () => {
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: idp.redirectUri,
      scope: 'openid',
      state: 's',
      nonce: 'n',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const callback = await signIn(idp, url, alice, { cancel: true });
    assert.equal(callback.searchParams.get('error'), 'access_denied');
  });

  for (const mode of TAMPER_MODES) {
    test(`tamper ${mode}: only what it names is wrong`, async () => {
      const f = await flow();
      idp.tamper(mode);
      let tokens;
      let error;
      try {
        tokens = await exchange(f);
      } catch (err) {
        error = err;
      } finally {
        idp.tamper(null);
      }
      assert.equal(idp.tokenRequests.at(-1).tampered, mode);
      const expected = {
        'wrong-nonce': /nonce/,
        'wrong-iss': /"iss"|issuer/,
        'wrong-aud': /"aud"|audience/,
        expired: /"exp"|expired|timestamp/,
      }[mode];
      if (expected) {
        assert.ok(error, `${mode}: the library accepted the token`);
        assert.match(`${error.message} ${error.cause?.message ?? ''} ${error.code ?? ''}`, expected);
        return;
      }
      // The library does not check ID token signatures of the token endpoint; check them here.
      assert.ifError(error);
      const idToken = tokens.id_token;
      const { header } = decodeJwt(idToken);
      const jwks = (await request(`${idp.issuer}/jwks`)).json();
      const jwk = jwks.keys.find((k) => k.kid === header.kid);
      if (mode === 'unknown-kid') {
        assert.equal(jwk, undefined, 'the kid is not in the JWKS');
        return;
      }
      assert.ok(jwk, 'same kid as the provider key');
      const [h, p, s] = idToken.split('.');
      const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
      assert.equal(crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), false, 'the signature does not verify');
    });
  }

  test('untampered tokens verify against its JWKS; stop refuses connections, restart comes back', async () => {
    const tokens = await exchange(await flow());
    const [h, p, s] = tokens.id_token.split('.');
    const jwks = (await request(`${idp.issuer}/jwks`)).json();
    const key = crypto.createPublicKey({ key: jwks.keys.find((k) => k.kid === decodeJwt(tokens.id_token).header.kid), format: 'jwk' });
    assert.equal(crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), true);

    await idp.stop();
    await assert.rejects(request(`${idp.issuer}/jwks`), /ECONNREFUSED/);
    await idp.restart();
    assert.equal((await request(`${idp.issuer}/jwks`)).status, 200);
    const unreachable = await idp.env({ unreachable: true });
    assert.notEqual(unreachable.CLOUDRON_OIDC_ISSUER, idp.issuer);
    await assert.rejects(request(`${unreachable.CLOUDRON_OIDC_ISSUER}/.well-known/openid-configuration`), /ECONNREFUSED/);
  });
});
