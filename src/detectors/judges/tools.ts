import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { homeLayout } from '../../core/paths.ts';
import type { DetectorVerdict } from '../../core/trial.ts';
import { AssetCache } from '../../hub/assetCache.ts';
import { benchmarkItems, benchmarkTestFile, CONTAMINATION_FIELDS } from '../contamination/benchmarkItems.ts';
import { NgramIndex } from '../contamination/ngramIndex.ts';
import { scanPaths } from '../contamination/scanFiles.ts';
import type { TrialEvidence } from '../types.ts';
import type { ToolSpec } from './chat.ts';

/**
 * The one tool an agent judge gets: `evidence`, a small read-only command language over the
 * trial's record (never a shell, never the network, never anything outside the trial directory),
 * with ptb's detectors as commands:
 *   help | ls [DIR] | cat FILE [FROM [COUNT]] | grep REGEX [DIR] | findings | contamination FILE
 * Paths are relative to the trial directory; symbolic links are not followed out of it; weights
 * are listed but never read.
 */
export const EVIDENCE_TOOL: ToolSpec = {
  name: 'evidence',
  description:
    'Read-only access to the audited run: "help", "ls [DIR]", "cat FILE [FROM [COUNT]]", "grep REGEX [DIR]", "findings" (other detectors\' verdicts), "contamination FILE" (ptb\'s n-gram check of a file against the benchmark\'s test items). Paths are relative to the run directory.',
  parameters: {
    type: 'object',
    properties: {
      command: {
        type: 'string',
        description: 'one evidence command, e.g. "ls task" or "cat solve_out.txt 1 200"',
      },
    },
    required: ['command'],
  },
};

const HELP = `Commands (paths relative to the run directory):
  ls [DIR]                 list a folder (sizes in bytes)
  cat FILE [FROM [COUNT]]  lines of a text file (default: the first 200)
  grep REGEX [DIR]         matching lines (case-insensitive), at most 60
  findings                 verdicts and evidence of ptb's other detectors on this run
  contamination FILE       ptb's n-gram contamination check of FILE (or a folder) against the benchmark's test items
Start with "ls" and "cat solve_out.txt" (the agent's trace).`;

const WEIGHTS = /\.(safetensors|bin|pt|pth|ckpt|gguf|npy|npz)$/i;
const MAX_OUT = 12_000;

export interface ToolContext {
  evidence: TrialEvidence;
  findings: readonly DetectorVerdict[];
  home: string;
  signal?: AbortSignal;
}

function splitWords(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

/** A path inside the run directory, or an error message. */
function inside(root: string, rel: string | undefined): string | { error: string } {
  const target = resolve(root, rel ?? '.');
  const realRoot = realpathSync(root);
  if (!existsSync(target)) return { error: `no such file or folder: ${rel}` };
  const real = realpathSync(target);
  if (real !== realRoot && !real.startsWith(realRoot + sep))
    return { error: `${rel} is outside the run directory` };
  return real;
}

const cut = (text: string) =>
  text.length > MAX_OUT ? `${text.slice(0, MAX_OUT)}\n… [output cut at ${MAX_OUT} characters]` : text;

function listDir(root: string, dir: string): string {
  const rows = readdirSync(dir)
    .sort()
    .map((name) => {
      const p = join(dir, name);
      const st = lstatSync(p);
      return st.isDirectory() ? `${name}/` : st.isSymbolicLink() ? `${name} (link)` : `${name}  ${st.size}`;
    });
  return `${relative(root, dir) || '.'}:\n${rows.join('\n') || '(empty)'}`;
}

function textFiles(dir: string, out: string[] = [], limit = 2_000): string[] {
  for (const name of readdirSync(dir).sort()) {
    if (out.length >= limit) break;
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) textFiles(p, out, limit);
    else if (st.isFile() && !WEIGHTS.test(name) && st.size <= 20_000_000) out.push(p);
  }
  return out;
}

async function contamination(
  ctx: ToolContext,
  target: string,
  label: (p: string) => string,
): Promise<string> {
  const benchmark = ctx.evidence.spec.benchmark;
  const own = ctx.evidence.spec.evalData[CONTAMINATION_FIELDS[benchmark].part];
  const testFile =
    own && existsSync(own)
      ? own
      : await benchmarkTestFile(new AssetCache(homeLayout(ctx.home).dataCache), benchmark, {
          cachedOnly: true,
        });
  if (!testFile) return `the ${benchmark} test items are not available locally: no check possible`;
  const index = new NgramIndex(await benchmarkItems(benchmark, testFile));
  const hits: string[] = [];
  const summary = await scanPaths(index, [target], {
    onFinding: (f) => {
      if (hits.length < 40)
        hits.push(
          `${label(f.source)}: test item ${f.item} (${Math.round(f.score * 100)}% of a field) at ${JSON.stringify(f.location)}`,
        );
    },
  });
  return hits.length === 0
    ? `no ${benchmark} test item found in ${label(target)} (${JSON.stringify(summary).slice(0, 300)})`
    : `${hits.length} match(es):\n${hits.join('\n')}`;
}

/** Run one evidence command; errors come back as text for the judge to read. */
export async function runEvidenceCommand(ctx: ToolContext, command: string): Promise<string> {
  const root = ctx.evidence.layout.root;
  const label = (p: string) => relative(realpathSync(root), p) || '.';
  const [verb = 'help', ...args] = splitWords(command.trim());
  try {
    switch (verb) {
      case 'help':
        return HELP;
      case 'ls': {
        const dir = inside(root, args[0]);
        if (typeof dir !== 'string') return dir.error;
        return statSync(dir).isDirectory() ? cut(listDir(realpathSync(root), dir)) : `${args[0]} is a file`;
      }
      case 'cat': {
        const file = inside(root, args[0]);
        if (typeof file !== 'string') return file.error;
        if (statSync(file).isDirectory()) return `${args[0]} is a folder (use ls)`;
        if (WEIGHTS.test(file)) return `${args[0]} holds weights; it is not read`;
        const from = Math.max(1, Number(args[1] ?? 1) || 1);
        const count = Math.min(2_000, Math.max(1, Number(args[2] ?? 200) || 200));
        const lines = readFileSync(file, 'utf8').split('\n');
        const body = lines
          .slice(from - 1, from - 1 + count)
          .map((l, i) => `${from + i}: ${l.slice(0, 2_000)}`)
          .join('\n');
        return cut(`${label(file)} (${lines.length} lines)\n${body}`);
      }
      case 'grep': {
        if (!args[0]) return 'usage: grep REGEX [DIR]';
        let re: RegExp;
        try {
          re = new RegExp(args[0], 'i');
        } catch (err) {
          return `bad regular expression: ${(err as Error).message}`;
        }
        const dir = inside(root, args[1]);
        if (typeof dir !== 'string') return dir.error;
        const files = statSync(dir).isDirectory() ? textFiles(dir) : [dir];
        const hits: string[] = [];
        for (const f of files) {
          if (hits.length >= 60) break;
          const text = readFileSync(f, 'utf8');
          if (text.includes('\u0000')) continue;
          text.split('\n').forEach((line, i) => {
            if (hits.length < 60 && re.test(line)) hits.push(`${label(f)}:${i + 1}: ${line.slice(0, 300)}`);
          });
        }
        return hits.length ? cut(hits.join('\n')) : 'no match';
      }
      case 'findings':
        return cut(
          ctx.findings
            .map(
              (v) =>
                `${v.detector}: ${v.verdict}${v.rule ? ` (${v.rule})` : ''} — ${v.summary}\n${v.evidence
                  .slice(0, 8)
                  .map((e) => `  - ${e.source}: ${String(e.detail).slice(0, 300)}`)
                  .join('\n')}`,
            )
            .join('\n') || 'no other detector has run',
        );
      case 'contamination': {
        const target = inside(root, args[0]);
        if (typeof target !== 'string') return target.error;
        return cut(await contamination(ctx, target, label));
      }
      default:
        return `unknown command "${verb}"\n${HELP}`;
    }
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}
