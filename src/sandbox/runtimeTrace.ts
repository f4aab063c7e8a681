/**
 * The file-open ledger for a podman container, recorded from the host with strace's seccomp filter,
 * as under bwrap. ptb does not start a container's processes (podman's OCI runtime does), so podman
 * is given a wrapper as its runtime: a `create` whose bundle carries the annotation
 * `ptb.file-opens=<pipe>` runs the real runtime under `strace -D --seccomp-bpf -f` writing to that
 * pipe. The container's first process is created by that `create` and waits for `start`, so
 * everything the container runs is traced from its first instruction; strace (detached, `-D`) ends
 * with the last of them. Every other call (`start`, `state`, `kill`, `delete`, …) goes straight to the
 * real runtime.
 *
 * The wrapper marks a traced create by creating `<pipe>.traced`, so the harness knows whether the
 * ledger was recorded (`traceMarker`).
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { straceOptions } from '../ledgers/straceParser.ts';

/** The annotation that asks the wrapper to trace a container (its value: the pipe strace writes to). */
export const FILE_OPENS_ANNOTATION = 'ptb.file-opens';

/** The file the wrapper creates when it started strace for the pipe. */
export function traceMarker(pipe: string): string {
  return `${pipe}.traced`;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The wrapper's text for a real runtime and a strace. */
export function runtimeWrapperScript(realRuntime: string, strace: string): string {
  const options = straceOptions('PIPE')
    .slice(0, -2) // `-o PIPE` comes from the annotation
    .map(quote)
    .join(' ');
  return `#!/bin/sh
# ptb: podman's OCI runtime, with the file-open ledger (src/sandbox/runtimeTrace.ts).
real=${quote(realRuntime)}
bundle=
create=
prev=
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=\${arg#--bundle=} ;; create) create=1 ;; esac
  prev=$arg
done
if [ -n "$create" ] && [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  pipe=$(grep -o '"${FILE_OPENS_ANNOTATION}": *"[^"]*"' "$bundle/config.json" | head -n 1 | sed 's/.*: *"\\(.*\\)"$/\\1/')
  # strace must be able to trace here (a rootless runtime's namespace may forbid it): else untraced.
  if [ -n "$pipe" ] && [ -p "$pipe" ] \
    && ${quote(strace)} -f -qq --seccomp-bpf -e trace=openat -o /dev/null /bin/true 2>/dev/null \
    && : > "$pipe.traced"; then
    exec ${quote(strace)} -D ${options} -o "$pipe" -- "$real" "$@"
  fi
fi
exec "$real" "$@"
`;
}

/**
 * The wrapper for this runtime and strace, written once where podman can keep calling it for the
 * containers made with it (content-addressed, never removed: a stale container is removed through
 * it). podman runs it as this user (root, rootful), so a file found there is used only when this
 * user owns it and its folder, nobody else may write either, and it holds exactly the script;
 * otherwise a fresh private folder is made.
 */
export function runtimeWrapper(realRuntime: string, strace: string): string {
  const script = runtimeWrapperScript(realRuntime, strace);
  const digest = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `ptb-oci-runtime-${digest}`);
  const path = join(dir, 'runtime');
  if (trustworthy(dir, path, script)) return path;
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { mode: 0o755 });
      return writeScript(dir, script);
    } catch {
      // made meanwhile by another run, or not ours: a private folder below
    }
  }
  return trustworthy(dir, path, script)
    ? path
    : writeScript(mkdtempSync(join(tmpdir(), 'ptb-oci-runtime-')), script);
}

function writeScript(dir: string, script: string): string {
  chmodSync(dir, 0o755);
  const path = join(dir, 'runtime');
  const partial = join(dir, `runtime.${process.pid}.tmp`);
  writeFileSync(partial, script, { mode: 0o755 });
  renameSync(partial, path);
  return path;
}

function trustworthy(dir: string, path: string, script: string): boolean {
  const uid = process.getuid?.() ?? 0;
  try {
    const folder = lstatSync(dir);
    const file = lstatSync(path);
    return (
      folder.isDirectory() &&
      file.isFile() &&
      folder.uid === uid &&
      file.uid === uid &&
      (folder.mode & 0o022) === 0 &&
      (file.mode & 0o022) === 0 &&
      readFileSync(path, 'utf8') === script
    );
  } catch {
    return false;
  }
}

/**
 * Give a pipe's reader its end of input when no tracer ever wrote to it (the ledger's watcher waits
 * for a writer): open it for writing and close it. Gives up quietly when nobody reads.
 */
export async function releasePipeReader(pipe: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      closeSync(openSync(pipe, constants.O_WRONLY | constants.O_NONBLOCK));
      return;
    } catch {
      await sleep(20);
    }
  }
}
