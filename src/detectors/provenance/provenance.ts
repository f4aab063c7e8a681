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
}

/**
 * Where `model`'s weights come from: the base unchanged, a fine-tune of the base, a copy or a
 * fine-tune of a reference, or none of these. Streams every checkpoint once.
 */
export async function compareCheckpoints(input: ProvenanceInput): Promise<ProvenanceReport> {
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
  const scan = await scanCheckpoints(model, base, references, input);
  return buildReport(scan, model, base, references, { signatures, labels: input.labels });
}
