import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { AlignedReport } from '../detectors/provenance/provenance.ts';
import type { CliContext } from './context.ts';
import { formatBytes, ProgressLine } from './progress.ts';

interface ProvenanceFlags {
  base: string;
  model: string;
  reference?: string[];
  signature?: string[];
  writeSignature?: string;
  json?: boolean;
  threads?: string;
  chunkMb?: string;
  tensors?: boolean;
}

function positiveInt(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UserError(`${flag} must be an integer ≥ ${min} (got ${value})`);
  return n;
}

const num = (x: number | null, digits = 3): string =>
  x === null || !Number.isFinite(x)
    ? String(x)
    : Math.abs(x) >= 0.001 || x === 0
      ? x.toFixed(digits)
      : x.toExponential(2);

function printText(ctx: CliContext, r: AlignedReport, allTensors: boolean): void {
  const out = (line: string) => ctx.stdout.write(`${line}\n`);
  out(`verdict: ${r.verdict}${r.reference ? `  (reference: ${r.reference})` : ''}`);
  out(`  ${r.reason}`);
  const b = r.summary.base;
  if (b) {
    out(
      `base       ${r.base!.path}: ${b.tensorsEqual}/${r.tensors.length} tensors equal, relative delta ${num(b.relativeDelta)}, coverage ${(100 * b.coverage).toFixed(1)}%`,
    );
  }
  out(
    `lineage    ${r.lineage.tensors.length} matrices, median ρ ${num(r.lineage.medianRho)}, lowest z ${num(r.lineage.minZ, 1)} (critical ${num(r.lineage.zCritical, 1)})` +
      (r.lineage.foreignBlocks.length ? `; not derived: ${r.lineage.foreignBlocks.join(', ')}` : ''),
  );
  for (const t of r.tests) {
    const g = t.global;
    const b = t.blocks[0];
    out(
      `two-ref    ${t.label} (${t.from}): ${t.decision}; α ${num(g?.alpha ?? null)} cos ${num(g?.cosine ?? null)} z ${num(g?.z ?? null, 1)}` +
        (b ? `; strongest block ${b.block} α ${num(b.alpha)} z ${num(b.z, 1)}` : '') +
        ` (critical z ${num(t.zCritical, 1)})`,
    );
  }
  for (const ref of r.summary.references) {
    out(
      `reference  ${ref.path}: ${ref.tensorsEqual}/${r.tensors.length} tensors equal, relative distance ${num(ref.relativeDistance)}, ` +
        `cosine ${num(ref.cosine)}, projection ${num(ref.projection)}, reference delta ${num(ref.referenceDelta)}`,
    );
  }
  if (r.lora) {
    out(
      `lora       delta from ${r.lora.parent}: ${r.lora.lowRankMatrices}/${r.lora.matricesEstimated} matrices low-rank, median rank estimate ${r.lora.medianRank}`,
    );
  }
  for (const note of r.notes) out(`note: ${note}`);
  if (allTensors) {
    for (const t of r.tensors) {
      const refs = t.references
        .map((x) =>
          x ? ` ref:${x.equal ? 'equal' : num(x.relativeDistance)} cos=${num(x.cosine, 2)}` : ' ref:-',
        )
        .join('');
      const base = t.base ? `base:${t.base.equal ? 'equal' : num(t.base.relativeDelta)}` : 'base:-';
      const rank = t.base?.loraRankEstimate != null ? ` rank=${t.base.loraRankEstimate}` : '';
      out(`  ${t.name} ${t.dtype}[${t.shape.join(',')}] ${base}${rank}${refs}`);
    }
  }
  out(
    `read ${formatBytes(r.scan.bytesRead)} in ${r.scan.seconds.toFixed(1)} s (${r.scan.mbPerSecond} MB/s, ${r.scan.threads} threads)`,
  );
}

export function registerProvenance(program: Command, ctx: CliContext): void {
  program
    .command('provenance')
    .description(
      "tell where a checkpoint's weights come from: the base unchanged, a fine-tune of it, or a disallowed reference",
    )
    .requiredOption('--base <path>', 'base model weights (directory, .safetensors file or index.json)')
    .requiredOption('--model <path>', "checkpoint to examine (a trial's final_model)")
    .option(
      '--reference <path...>',
      'disallowed reference checkpoint (repeatable): the instruct twin, downloaded models',
    )
    .option(
      '--signature <file...>',
      'a disallowed reference known only by its stored signature (repeatable; made with --write-signature or by an audit)',
    )
    .option(
      '--write-signature <file>',
      'also store the signature of the one --reference against --base in <file> (≈16 KiB per tensor)',
    )
    .option('--json', 'print one JSON object (verdict, reference, per-tensor statistics)')
    .option('--tensors', 'list every tensor in the text output')
    .option('--threads <n>', 'worker threads for the arithmetic (default: cores, at most 8; 0 = none)')
    .option('--chunk-mb <n>', 'MiB read from each checkpoint per chunk (default 8)')
    .addHelpText(
      'after',
      '\nVerdicts: unchanged, finetuned-from-base, matches-reference, finetuned-from-reference, unrelated.\n' +
        'Memory stays bounded (≈ threads × checkpoints × chunk, plus ~40 MB per thread) whatever the model size.',
    )
    .action(async (flags: ProvenanceFlags) => {
      const { compareCheckpoints } = await import('../detectors/provenance/provenance.ts');
      const { signReference, writeSignature } = await import('../detectors/provenance/signature.ts');
      const threads = positiveInt(flags.threads, '--threads', 0);
      const chunkMb = positiveInt(flags.chunkMb, '--chunk-mb', 1);
      if (flags.writeSignature) {
        if ((flags.reference ?? []).length !== 1)
          throw new UserError(
            '--write-signature needs exactly one --reference',
            'sign one reference at a time',
          );
        const sig = await signReference({ reference: flags.reference![0]!, base: flags.base });
        writeSignature(flags.writeSignature, sig);
        ctx.stderr.write(
          `signature of ${flags.reference![0]} written to ${flags.writeSignature} (${sig.bytes} bytes)\n`,
        );
      }
      const progress = new ProgressLine(ctx.stderr, 'provenance', { json: flags.json });
      const report = await compareCheckpoints({
        base: flags.base,
        model: flags.model,
        references: flags.reference ?? [],
        signatures: (flags.signature ?? []).map((file) => ({ label: file, signature: file })),
        ...(threads !== undefined ? { threads } : {}),
        ...(chunkMb !== undefined ? { chunkBytes: chunkMb * 1024 * 1024 } : {}),
        onProgress: (done, total) => progress.updateBytes(done, total),
      });
      progress.end();
      if (flags.json) ctx.stdout.write(`${JSON.stringify(report)}\n`);
      else printText(ctx, report, Boolean(flags.tensors));
    });
}
