/**
 * `numpy.random.default_rng(seed).permutation(n)`: SeedSequence → PCG64 → Fisher-Yates with
 * `random_interval`. Hugging Face `datasets` shuffles with exactly this (`Dataset.shuffle(seed)`),
 * and inspect's `hf_dataset(shuffle=True, seed=…)` calls it, which is how the reference picks
 * GSM8K's ten few-shot examples.
 */

const MASK32 = 0xffffffffn;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULTIPLIER = 0x2360ed051fc65da44385df649fccf645n;

// SeedSequence constants (numpy/random/bit_generator.pyx).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

/** SeedSequence(seed).generate_state(4, uint64): 4 words built from 8 uint32 (little-endian pairs). */
function seedSequenceState(seed: number | bigint): bigint[] {
  let rest = BigInt(seed);
  if (rest < 0n) throw new RangeError('numpy seeds must be non-negative');
  const entropy: number[] = [];
  do {
    entropy.push(Number(rest & MASK32));
    rest >>= 32n;
  } while (rest > 0n);

  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    let v = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    v = Math.imul(v, hashConst) >>> 0;
    return (v ^ (v >>> 16)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (r ^ (r >>> 16)) >>> 0;
  };
  const pool: number[] = [];
  for (let i = 0; i < POOL_SIZE; i++) pool.push(hashmix(i < entropy.length ? entropy[i]! : 0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(entropy[src]!));
  }

  let genConst = INIT_B;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) {
    let v = (pool[i % POOL_SIZE]! ^ genConst) >>> 0;
    genConst = Math.imul(genConst, MULT_B) >>> 0;
    v = Math.imul(v, genConst) >>> 0;
    words.push((v ^ (v >>> 16)) >>> 0);
  }
  return [0, 1, 2, 3].map((k) => (BigInt(words[2 * k + 1]!) << 32n) | BigInt(words[2 * k]!));
}

/** PCG64 (XSL-RR 128/64) as numpy seeds and steps it, with its buffered 32-bit draws. */
class Pcg64 {
  private state = 0n;
  private readonly inc: bigint;
  private spare: number | null = null;

  constructor(seed: number | bigint) {
    const [s0, s1, i0, i1] = seedSequenceState(seed) as [bigint, bigint, bigint, bigint];
    const initState = (s0 << 64n) | s1;
    const initSeq = (i0 << 64n) | i1;
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
  }

  private step(): void {
    this.state = (this.state * PCG_MULTIPLIER + this.inc) & MASK128;
  }

  next64(): bigint {
    this.step();
    const folded = ((this.state >> 64n) ^ this.state) & MASK64;
    const rot = this.state >> 122n;
    return ((folded >> rot) | (folded << ((64n - rot) & 63n))) & MASK64;
  }

  next32(): number {
    if (this.spare !== null) {
      const held = this.spare;
      this.spare = null;
      return held;
    }
    const next = this.next64();
    this.spare = Number(next >> 32n);
    return Number(next & MASK32);
  }

  /** numpy's `random_interval(max)`: uniform in [0, max] by masking and rejection. */
  interval(max: number): number {
    if (max === 0) return 0;
    if (max > 0xffffffff) throw new RangeError('interval bound above 2^32 is not needed here');
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const value = (this.next32() & mask) >>> 0;
      if (value <= max) return value;
    }
  }
}

/** `np.random.default_rng(seed).permutation(n)` as a plain array of indices. */
export function numpyPermutation(n: number, seed: number | bigint): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  const rng = new Pcg64(seed);
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const held = out[i]!;
    out[i] = out[j]!;
    out[j] = held;
  }
  return out;
}
