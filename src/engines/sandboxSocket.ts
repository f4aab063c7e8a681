import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import http from 'node:http';
import { connect, Socket } from 'node:net';

/**
 * Connections to a Unix socket that a sandbox controls (an engine serving inside the sandbox, see
 * src/sandbox/modelSandbox.ts). The socket lives in a directory the sandbox may write, so untrusted
 * code could swap it for a symlink to some host socket and have the harness send requests there. Each
 * connection therefore opens the final path component with O_PATH|O_NOFOLLOW, checks that what it got
 * is a socket (not a link), and connects through /proc/self/fd/N: the kernel then reaches exactly the
 * inode that was checked, with no window between check and use. It also lifts the 108-byte limit on
 * socket paths, so the socket may sit deep inside a trial directory.
 */

/** Linux's O_PATH (not in fs.constants): a handle on the path itself, for fstat and /proc/self/fd. */
const O_PATH = 0o10000000;

export class UnsafeSocketError extends Error {
  readonly code = 'EPTBUNSAFESOCKET';
}

/** A connected socket to `path`, refused unless the path itself (not a link) is a Unix socket. */
export function connectPinnedSocket(path: string): Socket {
  let fd: number;
  try {
    fd = openSync(path, O_PATH | constants.O_NOFOLLOW);
  } catch (err) {
    return failedSocket(err as Error);
  }
  const stat = fstatSync(fd);
  if (!stat.isSocket()) {
    closeSync(fd);
    return failedSocket(
      new UnsafeSocketError(`${path} is not a Unix socket (a link or file put there by the sandbox?)`),
    );
  }
  const socket = connect({ path: `/proc/self/fd/${fd}` });
  let open = true;
  const release = () => {
    if (open) closeSync(fd);
    open = false;
  };
  socket.once('connect', release);
  socket.once('error', release);
  socket.once('close', release);
  return socket;
}

/** A socket that fails with `err` on the next tick (what http.Agent expects of a failed connect). */
function failedSocket(err: Error): Socket {
  const socket = new Socket();
  process.nextTick(() => socket.destroy(err));
  return socket;
}

/** A keep-alive http.Agent whose every connection goes to `path` through connectPinnedSocket. */
export function pinnedSocketAgent(path: string): http.Agent {
  const agent = new http.Agent({ keepAlive: true });
  (agent as unknown as { createConnection: () => Socket }).createConnection = () => connectPinnedSocket(path);
  return agent;
}
