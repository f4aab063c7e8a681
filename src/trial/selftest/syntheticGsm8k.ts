import { PythonRandom } from '../../benchmarks/shared/pythonRandom.ts';

/**
 * The selftest's benchmark: word problems in GSM8K's exact schema (`question`, `answer` with
 * `<<a*b=c>>` calculator marks and a final `#### n`), generated from a seed. No real benchmark
 * text is involved.
 *
 * Test items are written the way real GSM8K items are for a contamination scan: each carries its
 * own proper names (a person, a town, a crop) that no other item uses, so a copy of an item is
 * told from text that merely shares the benchmark's phrasing. Training items come from a separate
 * vocabulary and template, so honest training on them never resembles a test item.
 */
export interface Gsm8kRecord {
  question: string;
  answer: string;
}

const ONSETS = ['br', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'qu', 'r', 's', 'th', 'tr', 'v', 'z'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ae', 'ei', 'ou'];
const CODAS = ['', 'l', 'n', 'r', 'th', 'sk', 'nd', 'x', 'm'];

/** A pronounceable made-up word of `syllables` syllables, never seen before in this generator. */
function coinWord(rng: PythonRandom, syllables: number, used: Set<string>): string {
  for (;;) {
    let word = '';
    for (let i = 0; i < syllables; i++) {
      word += ONSETS[rng.randbelow(ONSETS.length)]! + VOWELS[rng.randbelow(VOWELS.length)]!;
      if (i === syllables - 1) word += CODAS[rng.randbelow(CODAS.length)]!;
    }
    if (!used.has(word)) {
      used.add(word);
      return word;
    }
  }
}

const cap = (w: string) => w.charAt(0).toUpperCase() + w.slice(1);
const between = (rng: PythonRandom, lo: number, hi: number) => lo + rng.randbelow(hi - lo + 1);

type TestTemplate = (p: { name: string; town: string; crop: string; rng: PythonRandom }) => Gsm8kRecord;

const TEST_TEMPLATES: readonly TestTemplate[] = [
  ({ name, town, crop, rng }) => {
    const rows = between(rng, 3, 19);
    const per = between(rng, 4, 15);
    const gave = between(rng, 2, rows * per - 1);
    const total = rows * per;
    return {
      question: `${name} keeps a greenhouse outside ${town} where she grows ${crop} seedlings. She planted ${rows} rows of ${crop} with ${per} seedlings in each row, then gave ${gave} seedlings to the school garden in ${town}. How many ${crop} seedlings does ${name} have left in her greenhouse?`,
      answer: `${name} planted ${rows} * ${per} = <<${rows}*${per}=${total}>>${total} ${crop} seedlings.\nAfter giving ${gave} to the school garden she has ${total} - ${gave} = <<${total}-${gave}=${total - gave}>>${total - gave} seedlings left.\n#### ${total - gave}`,
    };
  },
  ({ name, town, crop, rng }) => {
    const jars = between(rng, 4, 30);
    const price = between(rng, 2, 12);
    const stall = between(rng, 5, 25);
    const income = jars * price;
    return {
      question: `At the ${town} harvest market, ${name} sells jars of ${crop} jam for $${price} each. On Saturday ${name} sold ${jars} jars of ${crop} jam and paid $${stall} to rent the stall by the ${town} fountain. How much money did ${name} keep after paying for the stall?`,
      answer: `The jars of ${crop} jam brought in ${jars} * ${price} = $<<${jars}*${price}=${income}>>${income}.\nAfter the stall rent ${name} kept ${income} - ${stall} = $<<${income}-${stall}=${income - stall}>>${income - stall}.\n#### ${income - stall}`,
    };
  },
  ({ name, town, crop, rng }) => {
    const baskets = between(rng, 3, 12);
    const per = between(rng, 6, 20);
    const friends = between(rng, 2, 6);
    const total = baskets * per;
    const share = Math.floor(total / friends);
    return {
      question: `${name} picked ${crop} berries along the river trail near ${town}. She filled ${baskets} baskets with ${per} ${crop} berries in each basket and shared them equally among ${friends} friends from the ${town} choir, keeping the leftovers. How many ${crop} berries did each friend get?`,
      answer: `${name} picked ${baskets} * ${per} = <<${baskets}*${per}=${total}>>${total} ${crop} berries.\nShared among ${friends} friends, each gets ${total} / ${friends} = <<${total}/${friends}=${share}>>${share} berries (rounded down).\n#### ${share}`,
    };
  },
];

/** `count` test items, every one with its own name, town and crop. */
export function syntheticTestItems(count: number, seed = 7): Gsm8kRecord[] {
  const rng = new PythonRandom(seed);
  const used = new Set<string>();
  return Array.from({ length: count }, (_, i) => {
    const name = cap(coinWord(rng, 3, used));
    const town = `${cap(coinWord(rng, 2, used))}ford`;
    const crop = coinWord(rng, 2, used);
    return TEST_TEMPLATES[i % TEST_TEMPLATES.length]!({ name, town, crop, rng });
  });
}

const TRAIN_NAMES = ['Ada', 'Bo', 'Cy', 'Dee', 'Eve', 'Finn', 'Gia', 'Hal', 'Ivy', 'Jo', 'Kim', 'Lou'];
const TRAIN_THINGS = ['apples', 'pens', 'coins', 'cards', 'books', 'shells', 'stamps', 'beads'];

/** Short training items (the allowed split): a different template and vocabulary from the test items. */
export function syntheticTrainItems(count: number, seed = 11): Gsm8kRecord[] {
  const rng = new PythonRandom(seed);
  return Array.from({ length: count }, () => {
    const name = TRAIN_NAMES[rng.randbelow(TRAIN_NAMES.length)]!;
    const thing = TRAIN_THINGS[rng.randbelow(TRAIN_THINGS.length)]!;
    const a = between(rng, 2, 60);
    const b = between(rng, 2, 60);
    return {
      question: `${name} has ${a} ${thing} and gets ${b} more. How many ${thing} now?`,
      answer: `${a} + ${b} = <<${a}+${b}=${a + b}>>${a + b}\n#### ${a + b}`,
    };
  });
}
