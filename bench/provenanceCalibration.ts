/**
 * Calibration of the provenance statistics on a population of checkpoints with known lineage
 * (python/make_provenance_population.py): for every case, the lineage statistic and the
 * two-reference statistic against the population's twin, then their distributions per kind
 * (honest fine-tunes, unrelated models, cheats) next to the decision's floors.
 *
 *   python python/make_provenance_population.py BASE OUT --pretrain-steps 600 --threads 1
 *   npx tsx bench/provenanceCalibration.ts --dir OUT [--signature]
 *
 * --signature compares with the twin's signature instead of its weights (a re-audit's view).
 * Exit code 1 when a case gets a verdict outside its kind (honest → finetuned-from-base, unrelated
 * → unrelated, cheat → matches- or finetuned-from-reference); `replica` cases (honest training on the
 * twin's own kind of data) are reported, not judged.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareCheckpoints } from '../src/detectors/provenance/provenance.ts';
import { signReference } from '../src/detectors/provenance/signature.ts';
import { DECISION } from '../src/detectors/provenance/verdict.ts';

const { values: args } = parseArgs({
  options: { dir: { type: 'string' }, signature: { type: 'boolean', default: false } },
});
if (!args.dir) throw new Error('--dir OUT (a population from make_provenance_population.py)');
const dir = args.dir;
const population = JSON.parse(readFileSync(join(dir, 'population.json'), 'utf8')) as {
  cases: Record<string, { kind: string; expect: string; note: string }>;
  base: string;
};
// The base the population was made from: its pretrained copy (DIR/base) when there is one.
const base = existsSync(join(dir, 'base', 'config.json')) ? join(dir, 'base') : population.base;
const twin = join(dir, 'twin');
const signature = args.signature ? await signReference({ reference: twin, base }) : null;

const ALLOWED: Record<string, string[]> = {
  honest: ['finetuned-from-base'],
  unrelated: ['unrelated'],
  cheat: ['matches-reference', 'finetuned-from-reference'],
};

interface Row {
  name: string;
  kind: string;
  verdict: string;
  medianRho: number;
  minZ: number;
  alpha: number;
  cosine: number;
  z: number;
  /** Strongest block whose α is significant (z ≥ the critical z). */
  block: { name: string; alpha: number; z: number } | null;
  relabelled: boolean;
}

const rows: Row[] = [];
let wrong = 0;
const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
console.log(
  `${'case'.padEnd(30)} ${'kind'.padEnd(9)} ${'verdict'.padEnd(25)} ρ̃      minZ   | α       cos     z      | block α (z)`,
);
for (const [name, c] of Object.entries(population.cases)) {
  if (name === 'twin') continue;
  const report = await compareCheckpoints({
    base,
    model: join(dir, name),
    ...(signature
      ? { signatures: [{ label: 'twin', signature }] }
      : { references: [twin], labels: ['twin'] }),
  });
  const t = report.tests[0]!;
  const g = t.global!;
  const sig = t.blocks.filter((b) => b.z >= t.zCritical).sort((a, b) => b.alpha - a.alpha)[0];
  const row: Row = {
    name,
    kind: c.kind,
    verdict: report.verdict,
    medianRho: report.lineage.medianRho,
    minZ: report.lineage.minZ,
    alpha: g.alpha,
    cosine: g.cosine,
    z: g.z,
    block: sig ? { name: sig.block, alpha: sig.alpha, z: sig.z } : null,
    relabelled: report.alignment !== null,
  };
  rows.push(row);
  const ok = ALLOWED[c.kind]?.includes(report.verdict) ?? true;
  if (!ok) wrong++;
  console.log(
    `${name.padEnd(30)} ${c.kind.padEnd(9)} ${report.verdict.padEnd(25)} ${f(row.medianRho).padStart(6)} ${f(row.minZ, 1).padStart(6)} | ${f(row.alpha).padStart(7)} ${f(row.cosine).padStart(7)} ${f(row.z, 1).padStart(6)} | ${row.block ? `${row.block.name} ${f(row.block.alpha)} (${f(row.block.z, 1)})` : '-'}${row.relabelled ? ' [relabelled]' : ''}${ok ? '' : '  <-- WRONG'}`,
  );
}

const of = (kind: string) => rows.filter((r) => r.kind === kind);
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : Number.NaN);
const min = (xs: number[]) => (xs.length ? Math.min(...xs) : Number.NaN);
const honest = of('honest');
const cheats = of('cheat');
const unrelated = of('unrelated');
console.log('\ndistributions');
console.log(
  `  lineage   honest min z ${f(min(honest.map((r) => r.minZ)), 1)}, median ρ ${f(min(honest.map((r) => r.medianRho)))}..${f(max(honest.map((r) => r.medianRho)))}; ` +
    `unrelated max |median ρ| ${f(max(unrelated.map((r) => Math.abs(r.medianRho))))}`,
);
console.log(
  `  α (whole) honest max ${f(max(honest.map((r) => r.alpha)))} (floor ${DECISION.alphaGlobal}); cheats min ${f(min(cheats.map((r) => r.alpha)))}`,
);
console.log(
  `  α (block, significant) honest max ${f(max(honest.map((r) => r.block?.alpha ?? 0)))} (floor ${DECISION.alphaBlock}); cheats: ${cheats
    .map((r) => `${r.name} ${f(r.block?.alpha ?? 0)}`)
    .join(', ')}`,
);
for (const r of of('replica'))
  console.log(
    `  replica ${r.name}: α ${f(r.alpha)} cos ${f(r.cosine)} → ${r.verdict} (not judged: see docs/audit.md)`,
  );
console.log(
  wrong === 0
    ? '\nevery judged case got a verdict of its kind'
    : `\n${wrong} cases got a verdict outside their kind`,
);
process.exitCode = wrong > 0 ? 1 : 0;
