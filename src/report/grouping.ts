import { UserError } from '../core/errors.ts';

/**
 * Seeds of one agent configuration. Upstream keeps each seed in its own method folder, named
 * `<agent>_<config>_<hours>h[_<n>gpu]<experiment suffix>` with suffixes like `_run2`, `_seed1`,
 * `_v6_seed1`, `_run1_old_container`; the reference groups them with a hand-written map, ptb strips
 * the suffix (or takes an explicit `--group NAME=exp1,exp2`).
 */
const SEED_SUFFIX = /(?:_v\d+)?_(?:run|seed)\d+(?:_[A-Za-z][\w-]*)?$/;

export function stripSeedSuffix(method: string): string {
  const stripped = method.replace(SEED_SUFFIX, '');
  return stripped.length > 0 ? stripped : method;
}

/** The number in a `_run2` / `_seed1` suffix, if any. */
export function seedFromSuffix(method: string): number | undefined {
  const m = /_(?:run|seed)(\d+)(?:_[A-Za-z][\w-]*)?$/.exec(method);
  return m ? Number(m[1]) : undefined;
}

/** `--group NAME=exp1,exp2` (repeatable) → experiment → row name. */
export function parseGroups(flags: readonly string[]): Map<string, string> {
  const byExperiment = new Map<string, string>();
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const name = flag.slice(0, eq).trim();
    const experiments = flag
      .slice(eq + 1)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (eq <= 0 || name.length === 0 || experiments.length === 0) {
      throw new UserError(
        `--group ${flag}: expected NAME=experiment1,experiment2`,
        'Example: --group opus-4.6=claude_claude-opus-4-6_10h_run1,claude_claude-opus-4-6_10h_run2',
      );
    }
    for (const e of experiments) {
      const earlier = byExperiment.get(e);
      if (earlier !== undefined && earlier !== name) {
        throw new UserError(`experiment ${e} is in two groups (${earlier} and ${name})`);
      }
      byExperiment.set(e, name);
    }
  }
  return byExperiment;
}

/** What an upstream method folder name says about the agent; null when it has another shape. */
export interface UpstreamMethod {
  agent: string;
  agentConfig: string;
  hours: number;
  gpus: number;
  suffix: string;
}

export function parseUpstreamMethod(name: string): UpstreamMethod | null {
  const m = /^([^_]+)_(.+)_(\d+(?:\.\d+)?)h(?:_(\d+)gpu)?(.*)$/.exec(name);
  if (!m) return null;
  const hours = Number(m[3]);
  if (!(hours > 0)) return null;
  return {
    agent: m[1]!,
    agentConfig: m[2]!,
    hours,
    gpus: m[4] ? Number(m[4]) : 1,
    suffix: m[5] ?? '',
  };
}

/** Upstream's AGENT_CONFIG_SAFE: `/ : [ ]` become `_` (e.g. `claude-opus-4-6[1m]` → `claude-opus-4-6_1m_`). */
export function upstreamSafe(value: string): string {
  return value.replace(/[/:[\]]/g, '_');
}

/** Shell-style `*` patterns for `--experiments`. */
export function matchesPattern(name: string, pattern: string): boolean {
  if (!pattern.includes('*')) return name === pattern;
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return re.test(name);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
