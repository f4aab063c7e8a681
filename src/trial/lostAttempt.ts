import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PHASES, type Phase } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import type { TrialRepo } from '../store/trialRepo.ts';

/**
 * Why a trial stopped before its phases were done: the scheduler preempted it (USR1), someone
 * cancelled it (TERM), or the user interrupted it (Ctrl-C). The abort signal's reason carries it.
 */
export class TrialStop extends Error {
  constructor(
    readonly kind: 'preempted' | 'cancelled' | 'interrupted',
    message: string,
  ) {
    super(message);
    this.name = 'TrialStop';
  }
}

export function stopOf(signal: AbortSignal | undefined): TrialStop | null {
  return signal?.aborted && signal.reason instanceof TrialStop ? signal.reason : null;
}

/** Phases whose lost attempt is redone from a fresh workspace (the agent's work cannot be trusted half-done). */
const FROM_PREPARE: ReadonlySet<Phase> = new Set(['prepare', 'agent']);

/** What the agent's attempt produced, kept for the record when the attempt is thrown away. */
function attemptFiles(layout: TrialLayout): string[] {
  return [
    layout.solveOut,
    layout.solveParsed,
    layout.trajectory,
    layout.timeTaken,
    layout.systemMonitorLog,
    layout.ledgers.dir,
  ];
}

/** The newest write the attempt left behind (its end, when the harness died without saying). */
export function lastActivityMs(layout: TrialLayout, startedAtMs: number): number {
  let last = startedAtMs;
  for (const path of [layout.solveOut, layout.ledgers.monitor, layout.evalDir, layout.systemMonitorLog]) {
    try {
      last = Math.max(last, statSync(path).mtimeMs);
    } catch {
      // not written by this attempt
    }
  }
  return last;
}

/**
 * Throw away a phase attempt that was cut short: its files move to attempts/<n>/, the live workspace
 * goes (the next attempt starts fresh, with its full budget), and the journal records the attempt, its
 * reason and the time it had used. Phases from prepare (for the agent) or from the phase itself run again.
 */
export function discardAttempt(
  repo: TrialRepo,
  trialId: string,
  layout: TrialLayout,
  o: { phase: Phase; startedAt: string; endedAtMs: number; reason: string; restartCount: number | null },
): void {
  const resetFrom: Phase = FROM_PREPARE.has(o.phase) ? 'prepare' : o.phase;
  const n = repo.lostAttempts(trialId).length + 1;
  let keptIn: string | null = null;
  if (resetFrom === 'prepare') {
    const dir = join(layout.root, 'attempts', String(n));
    mkdirSync(dir, { recursive: true });
    for (const path of attemptFiles(layout)) {
      if (existsSync(path)) renameSync(path, join(dir, relative(layout.root, path)));
    }
    keptIn = relative(layout.root, dir);
    rmSync(layout.work.dir, { recursive: true, force: true });
  }
  repo.recordLostAttempt(trialId, {
    phase: o.phase,
    resetFrom,
    reason: o.reason,
    seconds: Math.max(0, (o.endedAtMs - Date.parse(o.startedAt)) / 1000),
    startedAt: o.startedAt,
    keptIn,
    restartCount: o.restartCount,
  });
}

/**
 * A harness that died mid-phase (node lost, SIGKILL) left that phase `started`: under a batch
 * scheduler the attempt is thrown away and redone, with the time it had used recorded.
 */
export function discardUnfinishedPhases(
  repo: TrialRepo,
  trialId: string,
  layout: TrialLayout,
  restartCount: number | null,
): Phase[] {
  const unfinished = repo
    .phases(trialId)
    .filter((p) => p.status === 'started')
    .sort((a, b) => PHASES.indexOf(a.phase as Phase) - PHASES.indexOf(b.phase as Phase));
  const first = unfinished[0];
  if (!first) return [];
  discardAttempt(repo, trialId, layout, {
    phase: first.phase as Phase,
    startedAt: first.started_at,
    endedAtMs: lastActivityMs(layout, Date.parse(first.started_at)),
    reason: 'the harness stopped without a word (node lost or process killed)',
    restartCount,
  });
  return [first.phase as Phase];
}
