import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCHMARKS } from '../../src/benchmarks/registry.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { JUDGEMENT_LINES } from '../../src/report/upstreamLayout.ts';

/** The user docs of issue 13 say what the code does. */
const doc = (name: string) => readFileSync(join(repoRoot, 'docs', name), 'utf8');

describe('docs', () => {
  it('scoring.md gives every benchmark its sample id as the registry defines it', () => {
    const text = doc('scoring.md');
    for (const b of Object.values(BENCHMARKS)) expect(text).toContain(`| \`${b.id}\` | ${b.sampleId} |`);
  });

  it('results-layout.md quotes the judgement lines the reference compares', () => {
    const text = doc('results-layout.md');
    for (const lines of Object.values(JUDGEMENT_LINES)) {
      expect(text).toContain(`\`${lines.clean}\``);
      expect(text).toContain(`\`${lines.flagged}\``);
    }
  });
});
