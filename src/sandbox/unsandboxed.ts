/**
 * The `none` sandbox: the command runs directly on the host, as ptb's own user, with the host's
 * network and every file ptb can reach. Only for `--unsafe-no-sandbox` (the registry refuses it
 * otherwise). What it still does: a clean environment, the working directory, the deadline with
 * TERM then KILL to the process group, and the harness's sockets exposed on the host's loopback by
 * the same forwarder, so that the agent's relay URLs work. Binds cannot move paths here, so a spec
 * that shows a host path somewhere else is refused.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import { networkBridges, type SandboxResult, type SandboxSpec } from './bwrap.ts';
import { groupSandboxResult, passedThrough, runProcessGroup } from './processGroup.ts';

const FORWARDER = new URL('./bridge/forwarder.mjs', import.meta.url).pathname;

/** Paths a `none` run would have to move (source ≠ target), which it cannot. */
export function unmovablePaths(spec: SandboxSpec): string[] {
  const moved: string[] = [];
  for (const entry of [...(spec.readOnlyBinds ?? []), ...(spec.writableBinds ?? [])]) {
    if (typeof entry === 'string') continue;
    if (entry.target !== undefined && entry.target !== entry.source)
      moved.push(`${entry.source} -> ${entry.target}`);
  }
  for (const file of spec.maskedFiles ?? []) moved.push(`(hidden) ${file}`);
  return moved;
}

/** Start the forwarder on the host's loopback; resolves once every port listens. */
async function startHostBridges(spec: SandboxSpec): Promise<(() => void) | null> {
  const bridges = networkBridges(spec);
  if (bridges.length === 0) return null;
  const child = spawn(
    process.execPath,
    [FORWARDER, ...bridges.map((bridge) => `${bridge.listenPort}=${bridge.socketPath}`)],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
  );
  const ready = await new Promise<string>((resolve) => {
    let text = '';
    let errors = '';
    child.stdio[3]?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    child.stdio[2]?.on('data', (chunk: Buffer) => {
      errors += chunk.toString('utf8');
    });
    child.stdio[3]?.on('close', () => resolve(text.trim() === 'ready' ? 'ready' : errors.trim()));
    child.once('error', (err) => resolve(err.message));
  });
  if (ready !== 'ready') {
    child.kill('SIGKILL');
    throw new UserError(
      `The network bridge on the host's loopback did not start: ${ready || 'no reason given'}.`,
      'another process may hold the port; the `none` sandbox shares the host network with everything else',
    );
  }
  return () => child.kill('SIGKILL');
}

export async function runUnsandboxed(spec: SandboxSpec): Promise<SandboxResult> {
  const moved = unmovablePaths(spec);
  if (moved.length > 0) {
    throw new UserError(
      `The none sandbox runs on the host and cannot show paths elsewhere: ${moved.join(', ')}.`,
      'use the bwrap sandbox, or give the none sandbox binds whose target is their source',
    );
  }
  if (spec.extraOutputFds || (spec.denySyscalls && spec.denySyscalls.length > 0)) {
    throw new UserError(
      'The none sandbox has no extra output pipes or syscall filter.',
      'use the bwrap sandbox',
    );
  }
  const cwd = spec.cwd ?? '/tmp';
  if (!existsSync(cwd)) throw new UserError(`The working directory ${cwd} does not exist on the host.`);
  const stopBridges = await startHostBridges(spec);
  const warnings = [
    'no sandbox: the command ran on the host with its network and files (--unsafe-no-sandbox)',
  ];
  const limits = spec.limits ?? {};
  if (limits.memoryBytes !== undefined || limits.pids !== undefined || limits.cpus !== undefined) {
    warnings.push('resource limits are not applied without a sandbox');
  }
  try {
    const run = await runProcessGroup({
      command: spec.argv[0]!,
      args: spec.argv.slice(1),
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: cwd, LANG: 'C.UTF-8', ...spec.env },
      cwd,
      ...passedThrough(spec),
    });
    return groupSandboxResult(run, {
      enforced: { memory: false, pids: false, cpu: false, treeKill: false },
      warnings,
      startFailed: false,
    });
  } finally {
    stopBridges?.();
  }
}
