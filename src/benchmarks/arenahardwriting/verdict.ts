/**
 * Arena-Hard verdicts (spec §3.7): the judge ends with a label such as `[[A>>B]]`; the label is
 * read from the upper-cased judgment with the double-bracket pattern first and the
 * single-bracket one as fallback, taking the last match.
 */

/** arena-hard-v2.0.yaml `regex_patterns`, in order. */
export const VERDICT_PATTERNS: readonly RegExp[] = [/\[\[([AB<>=]+)\]\]/g, /\[([AB<>=]+)\]/g];

/** The verdict label of a judgment, or null when no pattern matches. */
export function extractVerdict(judgment: string): string | null {
  const upper = judgment.toUpperCase();
  for (const pattern of VERDICT_PATTERNS) {
    const labels = [...upper.matchAll(pattern)].map((m) => m[1]!).filter((label) => label.length > 0);
    if (labels.length > 0) return labels[labels.length - 1]!;
  }
  return null;
}

/** How often a strong preference (`>>`) is counted. */
export const STRONG_VERDICT_WEIGHT = 3;

/** Score of assistant A for each known label; strong labels repeat the value. */
const A_SCORES: Readonly<Record<string, readonly number[]>> = {
  'A>B': [1],
  'A>>B': Array(STRONG_VERDICT_WEIGHT).fill(1),
  'A=B': [0.5],
  'A<<B': Array(STRONG_VERDICT_WEIGHT).fill(0),
  'A<B': [0],
  'B>A': [0],
  'B>>A': Array(STRONG_VERDICT_WEIGHT).fill(0),
  'B=A': [0.5],
  'B<<A': Array(STRONG_VERDICT_WEIGHT).fill(1),
  'B<A': [1],
};

/** Assistant A's values for a label, or null for a label outside the judge's vocabulary. */
export function verdictScoresForA(verdict: string): number[] | null {
  const scores = A_SCORES[verdict.toUpperCase()];
  return scores ? [...scores] : null;
}

export type GameOutcome =
  | { kind: 'scored'; verdict: string; values: number[] }
  | { kind: 'no-judgment' }
  | { kind: 'no-verdict' }
  | { kind: 'unknown-verdict'; verdict: string };

/**
 * The candidate's values from one game. In game 1 the baseline is A, so A's values are flipped;
 * in game 2 the candidate is A and its values are taken as they are.
 */
export function candidateValues(judgment: string | null, candidateIsA: boolean): GameOutcome {
  if (judgment === null) return { kind: 'no-judgment' };
  const verdict = extractVerdict(judgment);
  if (verdict === null) return { kind: 'no-verdict' };
  const scores = verdictScoresForA(verdict);
  if (scores === null) return { kind: 'unknown-verdict', verdict };
  return { kind: 'scored', verdict, values: candidateIsA ? scores : scores.map((s) => 1 - s) };
}
