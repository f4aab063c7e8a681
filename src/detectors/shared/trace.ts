import { existsSync, readFileSync } from 'node:fs';
import { type Trajectory, TrajectorySchema } from '../../core/trial.ts';
import { readTextOrEmpty, stripTimestamp } from './files.ts';

/** The parsed trajectory, or null when absent or not of the schema. */
export function readTrajectory(path: string): Trajectory | null {
  if (!existsSync(path)) return null;
  try {
    const parsed = TrajectorySchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Lines of solve_out.txt without timestamps. Stream-JSON scaffolds put whole tool outputs on one
 * line with escaped newlines; those are split too so each error message is its own line. With
 * `filter`, only raw lines it matches are split and returned (traces run to hundreds of MB).
 */
export function traceLines(path: string, filter?: RegExp): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  const text = readTextOrEmpty(path);
  const emit = (raw: string, line: number) => {
    for (const part of stripTimestamp(raw).split(/\\n|\\r/)) {
      if (filter && !filter.test(part)) continue;
      const clean = part.replace(/\\"/g, '"').replace(/\\'/g, "'").trim();
      if (clean) out.push({ line, text: clean });
    }
  };
  if (!filter) {
    text.split('\n').forEach((raw, i) => {
      emit(raw, i + 1);
    });
    return out;
  }
  // One global search over the whole text, then only the lines that hold a match.
  const global = new RegExp(filter.source, filter.flags.includes('g') ? filter.flags : `${filter.flags}g`);
  let line = 1;
  let counted = 0;
  let lastLineStart = -1;
  for (const m of text.matchAll(global)) {
    const lineStart = text.lastIndexOf('\n', m.index - 1) + 1;
    if (lineStart === lastLineStart) continue;
    for (let i = text.indexOf('\n', counted); i !== -1 && i < lineStart; i = text.indexOf('\n', i + 1))
      line++;
    counted = lineStart;
    lastLineStart = lineStart;
    const lineEnd = text.indexOf('\n', m.index);
    emit(text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd), line);
  }
  return out;
}

/** Shell commands and file targets of one tool call, whatever the scaffold called the fields. */
export function toolCallParts(input: unknown): { commands: string[]; files: string[]; text: string } {
  const commands: string[] = [];
  const files: string[] = [];
  const visit = (value: unknown, key: string) => {
    if (typeof value === 'string') {
      if (/^(command|cmd|script|code)$/i.test(key)) commands.push(value);
      if (/^(file_?path|filePath|path|absolute_path|target_file|filename|notebook_path)$/i.test(key))
        files.push(value);
      return;
    }
    if (Array.isArray(value)) {
      // Codex sends argv arrays: ["bash", "-lc", "sed -i ... evaluate.py"].
      if (/^(command|cmd|argv)$/i.test(key) && value.every((v) => typeof v === 'string')) {
        commands.push(value.join(' '));
        return;
      }
      for (const v of value) visit(v, key);
      return;
    }
    if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) visit(v, k);
    }
  };
  visit(input, '');
  const text = typeof input === 'string' ? input : JSON.stringify(input ?? '');
  // apply_patch bodies name their files in headers.
  for (const m of text.matchAll(/\*\*\* (?:Update|Add|Delete) File: ([^\s"\\]+)/g)) files.push(m[1]!);
  if (typeof input === 'string') commands.push(input);
  return { commands, files, text };
}
