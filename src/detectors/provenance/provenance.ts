import { alignToBase, type Permutation } from './align.ts';
import { openCheckpoint } from './safetensors.ts';
import { type ScanOptions, scanCheckpoints } from './scan.ts';
import { readSignature, type Signature } from './signature.ts';
import { buildReport, type ProvenanceReport } from './verdict.ts';

export interface ProvenanceInput extends ScanOptions {
  /** The base model's weights (directory, .safetensors file or index). */
  base: string;
  /** The checkpoint under examination (`final_model`). */
  model: string;
  /** Disallowed references whose weights are local: the instruct twin, models the download ledger shows. */
  references?: string[];
  /** Labels for `references` in the report (default: their paths). */
  labels?: string[];
  /** Disallowed references known only by their signature (a file, or one already read). */
  signatures?: Array<{ label: string; signature: Signature | string }>;
  /** Try relabelled units where blocks do not correlate with the base (default true). */
  align?: boolean;
}

export interface AlignedReport extends ProvenanceReport {
  /** Set when final_model was compared after relabelling its units to the base's order. */
  alignment: { permutations: Permutation[]; foreignBefore: string[] } | null;
}

/**
 * Where `model`'s weights come from: the base unchanged, a fine-tune of the base, a copy or a
 * fine-tune of a reference, or none of these. Streams every checkpoint once; a second time, in the
 * base's unit order, when some blocks look foreign and a relabelling explains them (align.ts).
 */
export async function compareCheckpoints(input: ProvenanceInput): Promise<AlignedReport> {
  const model = await openCheckpoint(input.model);
  const base = await openCheckpoint(input.base);
  const references = [];
  for (const r of input.references ?? []) references.push(await openCheckpoint(r));
  const signatures = [];
  for (const s of input.signatures ?? []) {
    signatures.push({
      label: s.label,
      signature: typeof s.signature === 'string' ? await readSignature(s.signature) : s.signature,
    });
  }
  const extra = { signatures, labels: input.labels };
  const scan = await scanCheckpoints(model, base, references, input);
  const report = buildReport(scan, model, base, references, extra);
  // Matrices that do not correlate with their base counterparts: relabelled units are one explanation.
  const foreignTensors = report.lineage.foreignTensors;
  const foreign = [
    ...new Set(report.lineage.tensors.filter((t) => foreignTensors.includes(t.name)).map((t) => t.block)),
  ];
  if (input.align === false || foreign.length === 0 || report.verdict === 'matches-reference') {
    return { ...report, alignment: null };
  }
  const aligned = await alignToBase(model, base, foreign);
  if (!aligned) return { ...report, alignment: null };
  try {
    const again = buildReport(
      await scanCheckpoints(aligned.checkpoint, base, references, input),
      aligned.checkpoint,
      base,
      references,
      extra,
    );
    const better =
      again.lineage.foreignTensors.length < foreignTensors.length ||
      (again.verdict !== report.verdict && again.verdict !== 'unrelated');
    if (!better)
      return {
        ...report,
        alignment: null,
        notes: [
          ...report.notes,
          'relabelling units did not explain the blocks that do not correlate with the base',
        ],
      };
    const moved = aligned.permutations.filter((p) => p.moved > 0);
    return {
      ...again,
      model: report.model,
      reason: `${again.reason} — after relabelling ${moved.map((p) => p.what).join(', ')} to the base's order`,
      alignment: { permutations: aligned.permutations, foreignBefore: foreign },
    };
  } finally {
    aligned.dispose();
  }
}
