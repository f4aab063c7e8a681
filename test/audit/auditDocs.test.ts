import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UPSTREAM_DETECTOR_FACTORIES } from '../../src/audit/detectorRegistry.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { JUDGES } from '../../src/detectors/judges/definitions.ts';

describe('docs/audit.md', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'audit.md'), 'utf8');
  const headings = [...doc.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim());

  it('has a section for every registered detector and for the judges', () => {
    for (const [id] of UPSTREAM_DETECTOR_FACTORIES) expect(headings, id).toContain(id);
    expect(headings.some((h) => h.startsWith('Judges'))).toBe(true);
    for (const id of Object.keys(JUDGES)) expect(doc, id).toContain(id);
  });
});
