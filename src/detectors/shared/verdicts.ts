import type { DetectorVerdict, Evidence } from '../../core/trial.ts';

/**
 * How a detector reports: it collects findings while it looks, then `verdictFrom` turns them into
 * one verdict. A `flag` breaks a rule; a `warning` is recorded without flagging; `unknown` says
 * that part of the check could not be done (missing ledger, unreadable file), which makes the
 * verdict `unverified` unless something else already flagged.
 */
export type FindingLevel = 'flag' | 'warning' | 'unknown' | 'info';

export interface Finding {
  level: FindingLevel;
  /** Short rule id (`evaluation-code-modified`, `provider-connection`, ...). */
  rule: string;
  evidence: Evidence;
}

/** Evidence items kept per verdict; the rest is counted in the summary, never silently lost. */
export const MAX_EVIDENCE = 200;

export class Findings {
  readonly items: Finding[] = [];

  add(
    level: FindingLevel,
    rule: string,
    source: string,
    detail: string,
    extra: Record<string, unknown> = {},
  ) {
    this.items.push({ level, rule, evidence: { source, detail, severity: level, rule, ...extra } });
  }
  flag(rule: string, source: string, detail: string, extra?: Record<string, unknown>) {
    this.add('flag', rule, source, detail, extra);
  }
  warn(rule: string, source: string, detail: string, extra?: Record<string, unknown>) {
    this.add('warning', rule, source, detail, extra);
  }
  unknown(rule: string, source: string, detail: string, extra?: Record<string, unknown>) {
    this.add('unknown', rule, source, detail, extra);
  }
  info(rule: string, source: string, detail: string, extra?: Record<string, unknown>) {
    this.add('info', rule, source, detail, extra);
  }
  count(level: FindingLevel): number {
    return this.items.filter((f) => f.level === level).length;
  }
}

const ORDER: Record<FindingLevel, number> = { flag: 0, unknown: 1, warning: 2, info: 3 };

function uniqueRules(items: Finding[]): string[] {
  return [...new Set(items.map((f) => f.rule))];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** One verdict from the findings: any flag → flagged; else any unknown → unverified; else clean. */
export function verdictFrom(
  detector: { id: string; version: string },
  findings: Findings,
  cleanSummary: string,
): DetectorVerdict {
  const sorted = [...findings.items].sort((a, b) => ORDER[a.level] - ORDER[b.level]);
  const flags = sorted.filter((f) => f.level === 'flag');
  const unknowns = sorted.filter((f) => f.level === 'unknown');
  const warnings = sorted.filter((f) => f.level === 'warning');
  const evidence = sorted.slice(0, MAX_EVIDENCE).map((f) => f.evidence);
  const dropped = sorted.length - evidence.length;
  const tail = [
    warnings.length > 0 ? plural(warnings.length, 'warning') : '',
    dropped > 0 ? `${dropped} more evidence items not kept` : '',
  ]
    .filter(Boolean)
    .join('; ');
  const withTail = (text: string) => (tail ? `${text} (${tail})` : text);
  if (flags.length > 0) {
    const rules = uniqueRules(flags);
    return {
      detector: detector.id,
      version: detector.version,
      verdict: 'flagged',
      rule: rules.join(', '),
      summary: withTail(
        `${rules.join(', ')}: ${flags[0]!.evidence.detail}${flags.length > 1 ? ` (+${flags.length - 1} more)` : ''}`,
      ),
      evidence,
    };
  }
  if (unknowns.length > 0) {
    const rules = uniqueRules(unknowns);
    return {
      detector: detector.id,
      version: detector.version,
      verdict: 'unverified',
      rule: rules.join(', '),
      summary: withTail(`could not check: ${unknowns.map((f) => f.evidence.detail).join('; ')}`),
      evidence,
    };
  }
  return {
    detector: detector.id,
    version: detector.version,
    verdict: 'clean',
    summary: withTail(cleanSummary),
    evidence,
  };
}

/** Shorten text for evidence (one line, at most `max` characters). */
export function clip(text: string, max = 300): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}
