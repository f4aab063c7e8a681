import { pythonStrip } from './pythonText.ts';

/**
 * The reference's degenerate-output limiter for Arena-Hard and HealthBench (spec §3.7): small
 * models often loop, and the judge should see at most `maxReps` copies of any repeated line,
 * block of lines or substring. Three passes, run in rounds (at most 10) until nothing changes:
 *   1. runs of identical consecutive lines are cut to `maxReps`;
 *   2. the first run of more than `maxReps` identical blocks of 2..29 lines (smallest block size
 *      first) is cut to `maxReps` blocks, and a trailing partial copy of the block is dropped;
 *   3. substrings of 3..500 characters repeated back to back more than `maxReps` times are cut
 *      to `maxReps` copies (lazy regex, lengths tried in bands of increasing size).
 * String lengths and regex units are code points, as in Python.
 */
export const MAX_REPETITIONS = 5;

const MAX_ROUNDS = 10;
const MAX_BLOCK_LINES = 30;
const REGEX_LENGTH_BANDS: ReadonlyArray<readonly [number, number]> = [
  [3, 30],
  [30, 60],
  [60, 120],
  [120, 250],
  [250, 500],
];

export function limitRepetitions(text: string, maxReps: number = MAX_REPETITIONS): string {
  let current = text;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const lines = limitConsecutiveLines(current, maxReps);
    const blocks = limitRepeatedBlock(lines.text, maxReps);
    const substrings = limitRepeatedSubstrings(blocks.text, maxReps);
    current = substrings.text;
    if (!lines.changed && !blocks.changed && !substrings.changed) break;
  }
  return current;
}

interface PassResult {
  text: string;
  changed: boolean;
}

function limitConsecutiveLines(text: string, maxReps: number): PassResult {
  const lines = text.split('\n');
  const out: string[] = [];
  let changed = false;
  let i = 0;
  while (i < lines.length) {
    let j = i + 1;
    while (j < lines.length && lines[j] === lines[i]) j++;
    const run = j - i;
    if (run > maxReps) changed = true;
    for (let k = 0; k < Math.min(run, maxReps); k++) out.push(lines[i]!);
    i = j;
  }
  return { text: out.join('\n'), changed };
}

function sameLines(lines: readonly string[], a: number, b: number, size: number): boolean {
  for (let k = 0; k < size; k++) if (lines[a + k] !== lines[b + k]) return false;
  return true;
}

/** Handles only the first over-long run it finds; later rounds take the rest. */
function limitRepeatedBlock(text: string, maxReps: number): PassResult {
  const lines = text.split('\n');
  const largestBlock = Math.min(MAX_BLOCK_LINES, Math.floor(lines.length / 5) + 1);
  for (let size = 2; size < largestBlock; size++) {
    for (let i = 0; i <= lines.length - size; i++) {
      let copies = 1;
      let j = i + size;
      while (j + size <= lines.length && sameLines(lines, i, j, size)) {
        copies++;
        j += size;
      }
      if (copies <= maxReps) continue;
      const block = lines.slice(i, i + size);
      const out = lines.slice(0, i);
      for (let k = 0; k < maxReps; k++) out.push(...block);
      const rest = lines.slice(j);
      // A final, cut-off copy of the block (the generation hit its token limit) goes too.
      const keepFrom = rest.length > 0 && isPartialCopy(rest, block) ? lines.length : j;
      out.push(...lines.slice(keepFrom));
      return { text: out.join('\n'), changed: true };
    }
  }
  return { text, changed: false };
}

/** Every remaining line matches the block line at its position, allowing either to be a prefix. */
function isPartialCopy(rest: readonly string[], block: readonly string[]): boolean {
  if (rest.length > block.length) return false;
  return rest.every((line, k) => {
    const blockLine = block[k]!;
    if (line === blockLine) return true;
    const lineCore = pythonStrip(line);
    if (lineCore && blockLine.startsWith(lineCore)) return true;
    const blockCore = pythonStrip(blockLine);
    return blockCore.length > 0 && line.startsWith(blockCore);
  });
}

const substringPatterns = new Map<number, RegExp[]>();

function patternsFor(maxReps: number): RegExp[] {
  let patterns = substringPatterns.get(maxReps);
  if (!patterns) {
    // `u`: one unit is a code point, as `.` is in Python; [\s\S] is Python's DOTALL `.`.
    patterns = REGEX_LENGTH_BANDS.map(
      ([min, max]) => new RegExp(`([\\s\\S]{${min},${max}}?)\\1{${maxReps},}`, 'gu'),
    );
    substringPatterns.set(maxReps, patterns);
  }
  return patterns;
}

function limitRepeatedSubstrings(text: string, maxReps: number): PassResult {
  let current = text;
  let changed = false;
  for (;;) {
    let changedThisRound = false;
    for (const pattern of patternsFor(maxReps)) {
      current = current.replace(pattern, (match: string, unit: string) => {
        // A match is the unit plus at least maxReps more copies, so it always exceeds maxReps.
        if (Math.floor(match.length / unit.length) <= maxReps) return match;
        changedThisRound = true;
        return unit.repeat(maxReps);
      });
    }
    if (!changedThisRound) break;
    changed = true;
  }
  return { text: current, changed };
}
