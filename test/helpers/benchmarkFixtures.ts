/**
 * Fixtures the benchmark tests share: synthetic asset files in a fresh temp folder, a LoadContext
 * that serves them as local imports, replies shaped like an engine's, and a sleep that only records.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sleep } from '../../src/benchmarks/shared/openaiGrader.ts';
import type { LoadContext } from '../../src/benchmarks/types.ts';
import type { ModelReply, ToolCall } from '../../src/core/schemas.ts';

/** A fresh temp folder `ptb-<label>-XXXXXX` for one suite's synthetic files. */
export function fixtureDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `ptb-${label}-`));
}

/** Writes `text` to `dir/name` and returns the file's path. */
export function writeFixture(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * Writes each asset part's file (`part: [fileName, text]`) into a fresh temp folder and returns
 * part -> path, the map `localAssets` serves.
 */
export function writeAssetFiles(
  label: string,
  files: Record<string, readonly [fileName: string, text: string]>,
): Record<string, string> {
  const dir = fixtureDir(label);
  return Object.fromEntries(
    Object.entries(files).map(([part, [fileName, text]]) => [part, writeFixture(dir, fileName, text)]),
  );
}

/** JSON Lines text: one row a line, newline-terminated. */
export function jsonLines(rows: readonly unknown[]): string {
  return rows.map((row) => `${JSON.stringify(row)}\n`).join('');
}

/** A LoadContext serving each part from a local file, as an unverified local import; unknown parts throw. */
export function localAssets(files: Readonly<Record<string, string>>): LoadContext {
  return {
    async asset(part) {
      const path = files[part];
      if (!path) throw new Error(`no asset ${part}`);
      return {
        path,
        provenance: { part, source: 'local', path, sha256: 'x', origin: path, verified: false },
      };
    },
  };
}

/** A plain text reply that finished normally, without token counts. */
export function textReply(text: string): ModelReply {
  return {
    text,
    toolCalls: [],
    finishReason: 'stop',
    promptTokens: null,
    completionTokens: null,
    latencyMs: 1,
  };
}

/** A reply that only calls tools, as a tool-calling model's turn ends. */
export function toolCallReply(toolCalls: ToolCall[]): ModelReply {
  return {
    text: '',
    toolCalls,
    finishReason: 'tool_calls',
    promptTokens: null,
    completionTokens: null,
    latencyMs: 1,
  };
}

/** A sleep that returns at once and records each pause asked for (grader retry tests). */
export function recordingSleep(): { sleep: Sleep; pauses: number[] } {
  const pauses: number[] = [];
  return { pauses, sleep: async (ms) => void pauses.push(ms) };
}
