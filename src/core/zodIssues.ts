import type { z } from 'zod';

/**
 * zod's issues as sentences a user can act on: where (the key path), what was given there, and
 * what is allowed. A union's "Invalid input" is replaced by the issue of the branch that got
 * furthest (for `benchmarks: [gsm8k, mmlu]` that is the list's second item, not "expected all").
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  return issues.flatMap((issue) => leafIssues(issue, [])).map((issue) => sentence(issue, input));
}

type Leaf = z.core.$ZodIssue & { fullPath: PropertyKey[] };

function leafIssues(issue: z.core.$ZodIssue, prefix: PropertyKey[]): Leaf[] {
  const fullPath = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const branches = issue.errors.map((branch) => branch.flatMap((i) => leafIssues(i, fullPath)));
    const depth = (leaves: Leaf[]) => Math.max(...leaves.map((l) => l.fullPath.length));
    const best = branches.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    if (best.length > 0 && depth(best) > fullPath.length) return best;
  }
  return [{ ...issue, fullPath }];
}

function at(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function pathText(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i > 0 ? '.' : ''}${String(k)}`)).join('');
}

function shown(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? 'nothing' : text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function sentence(issue: Leaf, input: unknown): string {
  const where = pathText(issue.fullPath);
  const value = at(input, issue.fullPath);
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}${where ? ` in ${where}` : ''}`;
  }
  if (issue.code === 'invalid_value') {
    const allowed = issue.values.map((v) => String(v)).join(', ');
    return `${where || 'value'}: ${shown(value)} is not one of ${allowed}`;
  }
  if (value === undefined && issue.code === 'invalid_type') return `${where}: missing (${issue.message})`;
  return `${where || 'file'}: ${issue.message} (got ${shown(value)})`;
}
