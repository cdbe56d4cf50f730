// A small HTTP client that does not follow redirects and does not pool connections.
import http from 'node:http';

/**
 * Sends one request and reads the whole answer: { status, headers, body (string), json() }.
 * `body` may be a string or Buffer; `timeoutMs` bounds the whole exchange.
 */
export function request(url, { method = 'GET', headers = {}, body, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(response(res, Buffer.concat(chunks))));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Wraps an answer: `json()` parses the body and says what it was when that fails. */
export function response(res, buf) {
  const body = buf.toString('utf8');
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    json() {
      try {
        return JSON.parse(body);
      } catch {
        throw new Error(`not JSON (HTTP ${res.statusCode}): ${body.slice(0, 500)}`);
      }
    },
  };
}

/** The status of GET `url`, or null when the connection fails. */
export async function statusOf(url, timeoutMs = 5000) {
  try {
    return (await request(url, { timeoutMs })).status;
  } catch {
    return null;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `intervalMs` until it returns a truthy value; throws `what` on timeout. */
export async function waitFor(what, fn, { timeoutMs = 30000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * A gate for password attempts from one address: the first `burst` run at once, each later one
 * waits `waitMs` first (the login limit's refill: MAS allows 3 at once, then one per 20 s).
 * `gate(fn)` runs `fn` once it may.
 */
export function attemptGate({ burst = 3, waitMs = 20500 } = {}) {
  let attempts = 0;
  return async (fn) => {
    attempts += 1;
    if (attempts > burst) await sleep(waitMs);
    return fn();
  };
}
