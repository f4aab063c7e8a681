/** Mean of the values; null when there are none. */
export function meanOrNull(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}

/** Sample standard deviation (n − 1, as pandas' `.std()`); null below two values, as pandas gives NaN. */
export function sampleStdOrNull(values: readonly number[]): number | null {
  if (values.length < 2) return null;
  const m = meanOrNull(values)!;
  let squares = 0;
  for (const v of values) squares += (v - m) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

export interface MeanStd {
  mean: number | null;
  std: number | null;
  n: number;
}

export function meanStd(values: readonly number[]): MeanStd {
  return { mean: meanOrNull(values), std: sampleStdOrNull(values), n: values.length };
}
