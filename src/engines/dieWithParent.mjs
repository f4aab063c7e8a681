// Leads an engine server's process group and ends the group when the ptb process that started it
// is gone, however it went (SIGKILL and OOM included): ptb holds the write end of this process's
// stdin, and the kernel closes it when ptb dies, so end-of-file here means the harness is gone.
// Plain JavaScript without imports from ptb: it runs from the sources and next to the bundle.
//
//   node dieWithParent.mjs <grace ms> <command> [args...]
//
// The exit status is the engine's (a signal that killed the engine kills this process too), so
// whoever watches the group leader sees the engine's end.
import { spawn } from 'node:child_process';

const [graceArg, command, ...args] = process.argv.slice(2);
const graceMs = Number(graceArg) || 10_000;
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'];
let orphaned = false;

// ptb stops an engine by signalling the whole group: the engine gets the signal too, and this
// process waits for it to end instead of leaving it behind.
for (const signal of STOP_SIGNALS) process.on(signal, () => {});

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.on('error', (err) => {
  process.stderr.write(`[ptb] could not start ${command}: ${err.code ?? err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  if (orphaned) killGroup('SIGKILL'); // no harness to stop the rest: take the whole group down
  for (const s of STOP_SIGNALS) process.removeAllListeners(s);
  if (signal) process.kill(process.pid, signal);
  process.exit(code ?? 1);
});

function killGroup(signal) {
  try {
    process.kill(-process.pid, signal);
  } catch {
    // nobody left
  }
}

function harnessGone() {
  if (orphaned) return;
  orphaned = true;
  process.stderr.write('[ptb] the ptb process that started this engine is gone: stopping the engine\n');
  killGroup('SIGTERM');
  setTimeout(() => killGroup('SIGKILL'), graceMs);
}

process.stdin.on('end', harnessGone);
process.stdin.on('close', harnessGone);
process.stdin.on('error', harnessGone);
process.stdin.resume();
