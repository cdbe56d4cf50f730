// A real Matrix client against the appliance's public port: matrix-js-sdk (pinned in
// tests/package.json; 37.5.0 is the last release whose engines allow Node 20) for the legacy
// login API that MAS's compat layer serves (/login, /logout, /refresh) and for what a client then
// does with the token at Synapse (rooms, messages, /sync). Every HTTP exchange the library makes
// goes through the test's Recorder (oidc.mjs), so a failure shows the requests that led to it.
import * as sdk from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';

export { sdk };

// The library logs every sync and retry at info level; a failing test has the Recorder instead.
logger.setLevel('error');

// matrix-js-sdk 37 arms an abort timer for every request that has a local timeout (the sync
// long-poll's is 30 s + 80 s) and never clears it, which kept a test process alive for almost two
// minutes after its last test. Its timers are unref'd: they still fire while the test runs, they
// just do not hold the process open. Only timers armed from inside the library are touched.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = function setTimeout(fn, ms, ...args) {
  const timer = realSetTimeout(fn, ms, ...args);
  if (ms >= 10000 && /[\\/]matrix-js-sdk[\\/]/.test(new Error().stack ?? '')) timer.unref?.();
  return timer;
};

/** The base URL a client is configured with: the router on the public port. */
export function baseUrlOf(app) {
  return `http://127.0.0.1:${app.ports.http}`;
}

/**
 * A client of the appliance; with `credentials` ({ access_token, user_id, device_id }, as /login
 * answers) a signed-in one. Nothing is stored between runs. The refresh token is not given to the
 * library (it would refresh on its own); tests call `refreshToken` themselves.
 */
export function matrixClient(app, recorder, credentials = {}) {
  return sdk.createClient({
    baseUrl: baseUrlOf(app),
    accessToken: credentials.access_token,
    userId: credentials.user_id,
    deviceId: credentials.device_id,
    fetchFn: recorder.fetch,
  });
}

/**
 * POST /login with `m.login.password` and the `m.id.user` identifier through matrix-js-sdk;
 * `extra` adds fields (device_id, initial_device_display_name, refresh_token, or a legacy `user`).
 * Returns the library's LoginResponse.
 */
export function passwordLogin(app, recorder, { username, password }, extra = {}) {
  return matrixClient(app, recorder).loginRequest({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: username },
    password,
    ...extra,
  });
}

/** POST /login with `m.login.token` (the legacy SSO login token). */
export function tokenLogin(app, recorder, token, extra = {}) {
  return matrixClient(app, recorder).loginRequest({ type: 'm.login.token', token, ...extra });
}

/**
 * Runs `fn` and returns the MatrixError it rejects with (fails when it resolves, or when it
 * throws something that is not a Matrix error answer).
 */
export async function expectMatrixError(what, fn) {
  let result;
  try {
    result = await fn();
  } catch (err) {
    if (!(err instanceof sdk.MatrixError) && !err?.errcode) throw err;
    return err;
  }
  throw new Error(`${what}: expected a Matrix error, got ${JSON.stringify(result)}`);
}

/**
 * Starts the client's sync loop and resolves once the first sync is through (state PREPARED or
 * SYNCING); rejects when the loop reports ERROR or nothing happens within `timeoutMs`.
 */
export function startSyncing(client, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener(sdk.ClientEvent.Sync, onSync);
      reject(new Error(`${client.getUserId()}: no first sync within ${timeoutMs} ms`));
    }, timeoutMs);
    const onSync = (state, _prev, data) => {
      if (state === sdk.SyncState.Prepared || state === sdk.SyncState.Syncing) {
        clearTimeout(timer);
        client.removeListener(sdk.ClientEvent.Sync, onSync);
        resolve();
      } else if (state === sdk.SyncState.Error) {
        clearTimeout(timer);
        client.removeListener(sdk.ClientEvent.Sync, onSync);
        reject(new Error(`${client.getUserId()}: sync failed: ${data?.error?.message ?? data?.error ?? state}`));
      }
    };
    client.on(sdk.ClientEvent.Sync, onSync);
    client.startClient({ initialSyncLimit: 20, lazyLoadMembers: false });
  });
}

/**
 * Resolves once `predicate(client)` is true, re-checked after every sync of the (syncing)
 * client; rejects after `timeoutMs` with `what`.
 */
export function waitForSync(client, what, predicate, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      let v;
      try {
        v = predicate(client);
      } catch (err) {
        done();
        reject(err);
        return;
      }
      if (v) {
        done();
        resolve(v);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${client.getUserId()}: ${what}: not seen via sync within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      client.removeListener(sdk.ClientEvent.Sync, check);
      client.removeListener(sdk.RoomEvent.Timeline, check);
      client.removeListener(sdk.RoomEvent.MyMembership, check);
    };
    client.on(sdk.ClientEvent.Sync, check);
    client.on(sdk.RoomEvent.Timeline, check);
    client.on(sdk.RoomEvent.MyMembership, check);
    check();
  });
}

/** The bodies of the `m.room.message` events of `roomId` in `client`'s synced timeline. */
export function messageBodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === 'm.room.message')
    .map((e) => ({ sender: e.getSender(), body: e.getContent().body }));
}

/**
 * What two people do in a new room, each with a signed-in client: `a` creates a private room and
 * invites `b`; `b` sees the invite via sync and joins; `a` sees the join; each sends a message,
 * and each sees both messages via sync. Stops both clients' sync loops. Returns the room ID.
 */
export async function roomConversation(a, b, { timeoutMs = 30000 } = {}) {
  const aId = a.getUserId();
  const bId = b.getUserId();
  try {
    await startSyncing(a, timeoutMs);
    await startSyncing(b, timeoutMs);
    const { room_id: roomId } = await a.createRoom({ preset: sdk.Preset.PrivateChat, name: 'e2e conversation', invite: [bId] });
    await waitForSync(b, `the invite to ${roomId}`, (c) => c.getRoom(roomId)?.getMyMembership() === sdk.KnownMembership.Invite, timeoutMs);
    await b.joinRoom(roomId);
    await waitForSync(a, `${bId} joining ${roomId}`, (c) => c.getRoom(roomId)?.getMember(bId)?.membership === sdk.KnownMembership.Join, timeoutMs);
    const suffix = Math.random().toString(36).slice(2, 8);
    const expected = [
      { sender: aId, body: `hello from ${aId} ${suffix}` },
      { sender: bId, body: `hello from ${bId} ${suffix}` },
    ];
    await a.sendMessage(roomId, { msgtype: 'm.text', body: expected[0].body });
    await b.sendMessage(roomId, { msgtype: 'm.text', body: expected[1].body });
    for (const c of [a, b]) {
      await waitForSync(
        c,
        `both messages in ${roomId}`,
        (cl) => {
          const got = messageBodies(cl, roomId);
          return expected.every((m) => got.some((g) => g.sender === m.sender && g.body === m.body));
        },
        timeoutMs,
      );
    }
    return roomId;
  } finally {
    a.stopClient();
    b.stopClient();
  }
}
