import { type Stats, statSync } from 'node:fs';
import { UserError } from '../core/errors.ts';

/** One harness Unix socket exposed on the sandbox's loopback (shape of SandboxBridge in bwrap.ts). */
interface Bridge {
  listenPort: number;
  socketPath: string;
}

/**
 * What every sandbox checks before it bridges sockets in: ports are TCP ports and distinct, and each
 * socket exists and is a Unix socket. Returns each socket's stat for the caller's ownership rules.
 */
export function validateBridgeSockets(bridges: readonly Bridge[]): Stats[] {
  const ports = new Set<number>();
  return bridges.map((bridge) => {
    if (!Number.isInteger(bridge.listenPort) || bridge.listenPort < 1 || bridge.listenPort > 65535) {
      throw new UserError(`Bridge port ${bridge.listenPort} is not a TCP port.`, 'use a port in 1..65535');
    }
    if (ports.has(bridge.listenPort)) {
      throw new UserError(`Two bridges use port ${bridge.listenPort}.`, 'give each bridge its own port');
    }
    ports.add(bridge.listenPort);
    let stat: Stats;
    try {
      stat = statSync(bridge.socketPath);
    } catch {
      throw new UserError(
        `The bridge socket ${bridge.socketPath} does not exist.`,
        'start the proxy or relay before the sandbox',
      );
    }
    if (!stat.isSocket()) throw new UserError(`${bridge.socketPath} is not a Unix socket.`);
    return stat;
  });
}
