import { createHash } from 'node:crypto';

/**
 * The generation seed of one request under protocol v1.1 (upstream `src/eval/per_sample_seed.py`
 * @ 1b6c1a9 `sample_seed`): sha256 of `"{runSeed}:{sampleId}:{epoch}:{call}"`, the first four
 * bytes read little-endian, masked to a non-negative 31-bit int. One seed shared by every request
 * made vLLM draw the same sampling noise for all samples and collapsed them into one mode; a seed
 * per request stays reproducible for a fixed run seed and independent across samples.
 */
export function requestSeed(runSeed: number, sampleId: string | number, epoch = 1, call = 0): number {
  const digest = createHash('sha256').update(`${runSeed}:${sampleId}:${epoch}:${call}`).digest();
  return digest.readUInt32LE(0) & 0x7fffffff;
}
