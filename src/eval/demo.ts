import type { PythonRandom } from '../benchmarks/shared/pythonRandom.ts';

/**
 * Data of `ptb demo` (src/trial/demoTrial.ts): a small benchmark in GSM8K's exact schema made of
 * synthetic one-step word problems (no real benchmark data) and its prompt source.
 */

const NAMES = ['Ada', 'Bo', 'Cy', 'Dee', 'Eve', 'Finn', 'Gia', 'Hal', 'Ivy', 'Jo', 'Kim', 'Lou'];
const THINGS = ['apples', 'pens', 'coins', 'cards', 'books', 'shells', 'stamps', 'beads'];

/**
 * One word problem in GSM8K's schema (reasoning, then `#### n`). Two counts are given and the
 * second is asked for: a model must find and copy the right number, which a tiny model learns on a
 * CPU in a couple of minutes and an untrained one cannot do. Short, so the 10-shot prompt stays small.
 */
export function demoProblem(
  rng: PythonRandom,
  split: 'test' | 'train' = 'test',
): { question: string; answer: string; value: number } {
  const name = NAMES[rng.randbelow(NAMES.length)]!;
  const first = THINGS[rng.randbelow(THINGS.length)]!;
  let second = THINGS[rng.randbelow(THINGS.length)]!;
  while (second === first) second = THINGS[rng.randbelow(THINGS.length)]!;
  const a = 2 + rng.randbelow(60);
  const b = 2 + rng.randbelow(60);
  // The training split is worded differently: training on it is allowed (like GSM8K's train split)
  // and shares no phrasing with the test items, so the contamination audit rightly finds nothing.
  const question =
    split === 'test'
      ? `${name} has ${a} ${first} and ${b} ${second}. How many ${second}?`
      : `In a box there are ${b} ${second} next to ${a} ${first}, says ${name}. Count the ${second}.`;
  return { question, answer: `${b} ${second}.\n#### ${b}`, value: b };
}

/** Our own prompt source in the shape of inspect_evals' gsm8k.py (the real one is fetched, never shipped). */
export const DEMO_PROMPT_SOURCE = `# ptb demo prompt (not the reference text)
MATH_PROMPT_TEMPLATE = """
Solve this problem. End with a line "ANSWER: n".

{prompt}

Reasoning:
""".strip()
`;
