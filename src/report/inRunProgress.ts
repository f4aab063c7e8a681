import { existsSync, readFileSync } from 'node:fs';
import { InRunEvalEventSchema } from '../core/trial.ts';
import { trialLayout } from '../core/trialLayout.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import type { Leaderboard } from './aggregate.ts';

/** One trial's in-run evaluations: accuracy against hours since its agent phase started. */
export interface ProgressSeries {
  row: string;
  run: string;
  trialId: string;
  model: string;
  benchmark: string;
  points: { hours: number; accuracy: number }[];
}

function readInRunEvals(path: string): { ts: string; accuracy: number }[] {
  if (!existsSync(path)) return [];
  const points: { ts: string; accuracy: number }[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue; // a line cut short by a crash
    }
    const event = InRunEvalEventSchema.safeParse(parsed);
    if (event.success && event.data.accuracy !== null) {
      points.push({ ts: event.data.ts, accuracy: event.data.accuracy });
    }
  }
  return points;
}

/** Series for every trial the leaderboard's cells use that recorded in-run evaluations. */
export function progressSeries(leaderboard: Leaderboard, repo: TrialRepo): ProgressSeries[] {
  const series: ProgressSeries[] = [];
  for (const row of leaderboard.rows) {
    for (const run of row.runs) {
      for (const cell of run.cells) {
        if (!cell.trialId) continue;
        const trial: Trial | undefined = repo.get(cell.trialId);
        if (!trial) continue;
        const events = readInRunEvals(trialLayout(trial.dir).ledgers.inRunEvals);
        if (events.length === 0) continue;
        const started = repo.phase(trial.id, 'agent')?.started_at ?? events[0]!.ts;
        const t0 = Date.parse(started);
        const points = events
          .map((e) => ({ hours: (Date.parse(e.ts) - t0) / 3_600_000, accuracy: e.accuracy }))
          .filter((p) => Number.isFinite(p.hours))
          .sort((a, b) => a.hours - b.hours);
        series.push({
          row: row.name,
          run: run.name,
          trialId: trial.id,
          model: cell.model,
          benchmark: cell.benchmark,
          points,
        });
      }
    }
  }
  return series;
}
