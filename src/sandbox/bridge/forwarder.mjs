// Runs inside the sandbox (node, no dependencies): for each `PORT=SOCKET` argument, listens on
// 127.0.0.1:PORT and pipes every connection to the Unix socket SOCKET, the sandbox's only way out.
// Writes "ready" to fd 3 and closes it once every port listens, so the command can start after it.
// Ignores SIGTERM so that a timeout's grace period (or a stray `pkill node`) keeps the network up;
// it ends with the sandbox's pid namespace.
import { closeSync, writeSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const bridges = process.argv.slice(2).map((arg) => {
  const at = arg.indexOf('=');
  return { port: Number(arg.slice(0, at)), socketPath: arg.slice(at + 1) };
});

function pipeTo(client, socketPath) {
  const upstream = connect({ path: socketPath, allowHalfOpen: true });
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
    const server = createServer({ allowHalfOpen: true }, (client) => pipeTo(client, bridge.socketPath));
    server.once('error', reject);
    server.listen(bridge.port, '127.0.0.1', () => resolve(server));
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
