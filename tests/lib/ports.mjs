// Free loopback ports for the appliances under test.
import net from 'node:net';

// Below Linux's ephemeral range (32768-60999), so an outgoing connection (Synapse to
// PostgreSQL, say) cannot take a port between our check and the appliance binding it.
const LOW = 20000;
const HIGH = 32000;
const handedOut = new Set();

/** True when `port` can be bound on `host` right now. */
export function canBind(port, host = '0.0.0.0') {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** One port, free on all interfaces, not handed out before by this process. */
export async function freePort() {
  for (let i = 0; i < 1000; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

/** The three ports an appliance needs. */
export async function appliancePorts() {
  return { http: await freePort(), synapse: await freePort(), mas: await freePort() };
}

/** Holds `port` on 0.0.0.0 (as the router would bind it) until `close()` is called. */
export function occupyPort(port) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => sock.destroy());
    srv.once('error', reject);
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () =>
      resolve({ close: () => new Promise((r) => srv.close(() => r())) }),
    );
  });
}
