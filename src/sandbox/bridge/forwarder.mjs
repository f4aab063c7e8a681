// Runs inside the sandbox (node, no dependencies). Each argument is one bridge:
//   PORT=SOCKET      outbound: listens on 127.0.0.1:PORT and pipes every connection to the Unix socket
//                    SOCKET (a harness socket bound in: the sandbox's only ways out);
//   in:SOCKET=PORT   inbound: listens on the Unix socket SOCKET (in a directory the harness also sees)
//                    and pipes every connection to 127.0.0.1:PORT inside (a server the harness calls).
// Writes "ready" to fd 3 and closes it once every bridge listens, so the command can start after it.
// Ignores SIGTERM so that a timeout's grace period (or a stray `pkill node`) keeps the network up;
// it ends with the sandbox's pid namespace.
import { chmodSync, closeSync, rmSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const bridges = process.argv.slice(2).map((arg) => {
  if (arg.startsWith('in:')) {
    const at = arg.lastIndexOf('=');
    return {
      listen: { path: arg.slice(3, at) },
      target: { host: '127.0.0.1', port: Number(arg.slice(at + 1)) },
    };
  }
  const at = arg.indexOf('=');
  return {
    listen: { host: '127.0.0.1', port: Number(arg.slice(0, at)) },
    target: { path: arg.slice(at + 1) },
  };
});

function pipeTo(client, target) {
  const upstream = connect({ ...target, allowHalfOpen: true });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
}

function listen(bridge) {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true }, (client) => pipeTo(client, bridge.target));
    server.once('error', reject);
    if (bridge.listen.path) rmSync(bridge.listen.path, { force: true });
    server.listen(bridge.listen, () => {
      // Only this sandbox's user (and the harness, which may be root) may connect to an inbound socket.
      if (bridge.listen.path) chmodSync(bridge.listen.path, 0o600);
      resolve(server);
    });
  });
}

process.on('SIGTERM', () => {});
try {
  await Promise.all(bridges.map(listen));
  writeSync(3, 'ready\n');
  closeSync(3);
} catch (err) {
  process.stderr.write(`ptb network bridge: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
