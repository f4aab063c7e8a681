/**
 * Plain output (`text` format): agents without a structured trace, and Codex runs without
 * `--json`. Each non-empty line becomes a `raw` event with its timestamp.
 */
import type { Trajectory } from '../../core/trial.ts';
import { collectTrajectory, emptyUsage, type TraceDecoder, type TraceReadOptions } from './traceReader.ts';

export function createPlainTextDecoder(): TraceDecoder {
  return {
    plainText: true,
    json() {},
    end() {},
    usage: emptyUsage,
  };
}

export function parsePlainText(lines: Iterable<string>, options?: TraceReadOptions): Trajectory {
  return collectTrajectory('text', createPlainTextDecoder(), lines, options);
}
