/**
 * Synthetic corpus for the contamination scanner's tests and benchmark: GSM8K-schema test items
 * (`question`, `answer` with `<<calc>>` annotations and `#### N`), clean text written from the same
 * templates and word pools (same topic words, different items), and planted copies of items —
 * verbatim, embedded in long documents, and with every number changed. Deterministic per seed.
 */

import { closeSync, openSync, writeSync } from 'node:fs';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES =
  'ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu za ze zi zo zu'.split(
    ' ',
  );

function pool(rand: () => number, size: number, syllables: number, suffix = ''): string[] {
  const seen = new Set<string>();
  while (seen.size < size) {
    let w = '';
    for (let k = 0; k < syllables; k++) w += SYLLABLES[Math.floor(rand() * SYLLABLES.length)];
    seen.add(w + suffix);
  }
  return [...seen];
}

export interface Gsm8kRow {
  question: string;
  answer: string;
}

export class CorpusWriter {
  private readonly rand: () => number;
  private readonly names: string[];
  private readonly nouns: string[];
  private readonly places: string[];
  private readonly verbs: string[];
  private readonly adjectives: string[];

  constructor(seed: number) {
    this.rand = rng(seed);
    const words = rng(12345); // same pools for every seed: clean text shares the items' topic words
    this.names = pool(words, 300, 3).map((w) => w[0]!.toUpperCase() + w.slice(1));
    this.nouns = pool(words, 400, 2, 's');
    this.places = pool(words, 150, 3);
    this.verbs = pool(words, 150, 2, 'ed');
    this.adjectives = pool(words, 200, 2, 'ish');
  }

  private pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.rand() * list.length)]!;
  }
  num(max = 90): number {
    return 2 + Math.floor(this.rand() * max);
  }

  /** (name, noun) pairs used so far: two items never share their answer's wording. */
  private readonly usedPairs = new Set<string>();

  /** One GSM8K-style item: 3–5 question sentences, a worked answer ending `#### N`. */
  item(): Gsm8kRow {
    let a = this.pick(this.names);
    let n1 = this.pick(this.nouns);
    while (this.usedPairs.has(`${a} ${n1}`)) {
      a = this.pick(this.names);
      n1 = this.pick(this.nouns);
    }
    this.usedPairs.add(`${a} ${n1}`);
    const b = this.pick(this.names);
    const n2 = this.pick(this.nouns);
    const x = this.num();
    const y = this.num(40);
    const z = this.num(9);
    const sentences = [
      `${a} ${this.pick(this.verbs)} ${x} ${this.pick(this.adjectives)} ${n1} at the ${this.pick(this.places)} market on Monday.`,
      `Then ${a} gave ${y} of them to ${b}, who ${this.pick(this.verbs)} the ${this.pick(this.adjectives)} ${n2} near the ${this.pick(this.places)}.`,
    ];
    if (this.rand() < 0.7)
      sentences.push(`Each of the ${n1} costs $${z} and every ${n2} weighs ${this.num(20)}.5 pounds.`);
    if (this.rand() < 0.5)
      sentences.push(
        `${b} also ${this.pick(this.verbs)} ${this.num()} ${this.pick(this.adjectives)} ${this.pick(this.nouns)} in the ${this.pick(this.places)}.`,
      );
    sentences.push(`How many dollars are the ${n1} that ${a} still has worth?`);
    const left = x - y;
    const answer = [
      `${a} has ${x} - ${y} = <<${x}-${y}=${left}>>${left} ${n1} left.`,
      `They are worth ${left} * ${z} = <<${left}*${z}=${left * z}>>${left * z} dollars.`,
      `#### ${left * z}`,
    ].join('\n');
    return { question: sentences.join(' '), answer };
  }

  /** Clean prose from the same templates and pools (and numbers), never a whole item. */
  paragraph(sentences = 6): string {
    const out: string[] = [];
    for (let k = 0; k < sentences; k++) {
      const r = this.rand();
      const a = this.pick(this.names);
      if (r < 0.25)
        out.push(
          `${a} ${this.pick(this.verbs)} ${this.num()} ${this.pick(this.adjectives)} ${this.pick(this.nouns)} at the ${this.pick(this.places)} market on Monday.`,
        );
      else if (r < 0.5)
        out.push(
          `Then ${a} gave ${this.num()} of them to ${this.pick(this.names)}, who ${this.pick(this.verbs)} the ${this.pick(this.adjectives)} ${this.pick(this.nouns)} near the ${this.pick(this.places)}.`,
        );
      else if (r < 0.7)
        out.push(`How many dollars are the ${this.pick(this.nouns)} that ${a} still has worth?`);
      else if (r < 0.85)
        out.push(
          `Each of the ${this.pick(this.nouns)} costs $${this.num(9)} and every ${this.pick(this.nouns)} weighs ${this.num(20)}.5 pounds.`,
        );
      else
        out.push(`${a} has ${this.num()} - ${this.num()} = <<${this.num()}>> ${this.pick(this.nouns)} left.`);
    }
    return out.join(' ');
  }

  /**
   * Ordinary prose on the same topics: the items' word pools and numbers in other sentences.
   * Shares vocabulary with the items but not their phrasing.
   */
  prose(sentences = 6): string {
    const out: string[] = [];
    for (let k = 0; k < sentences; k++) {
      const a = this.pick(this.names);
      const b = this.pick(this.names);
      const n = this.pick(this.nouns);
      const adj = this.pick(this.adjectives);
      const place = this.pick(this.places);
      const x = this.num(200);
      switch (Math.floor(this.rand() * 8)) {
        case 0:
          out.push(`${a} walked to the ${place} with a ${adj} bag of ${n} and ${x} friends.`);
          break;
        case 1:
          out.push(`In the ${place}, the ${n} were ${adj} and ${a} counted ${x} of them twice.`);
          break;
        case 2:
          out.push(`Nobody knew why ${a} kept ${x} ${n} under the ${adj} bridge near ${place}.`);
          break;
        case 3:
          out.push(`The ${adj} ${n} from ${place} cost ${x} dollars last spring, said ${b}.`);
          break;
        case 4:
          out.push(`${a} and ${b} argued about the ${n} for ${x} minutes before dinner.`);
          break;
        case 5:
          out.push(`After lunch, ${a} ${this.pick(this.verbs)} the ${n} and wrote a long note to ${b}.`);
          break;
        case 6:
          out.push(`Each week the ${place} club sells about ${x} ${adj} ${n} to visitors.`);
          break;
        default:
          out.push(`There are ${x} ways to sort ${n}, ${a} told ${b} with a ${adj} smile.`);
      }
    }
    return out.join(' ');
  }

  /** The item text with every number replaced by a different one (same skeleton). */
  changeNumbers(text: string): string {
    return text.replace(/\d+/g, (d) => {
      let v = d;
      while (v === d) v = String(this.num(d.length > 2 ? 900 : 90));
      return v;
    });
  }

  /** A long document (about `bytes` long) with `inner` somewhere in the middle. */
  embed(inner: string, bytes = 3000): string {
    let before = '';
    while (before.length < bytes / 2) before += `${this.paragraph(4)} `;
    let after = '';
    while (after.length < bytes / 2) after += ` ${this.paragraph(4)}`;
    return `${before}${inner}${after}`;
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }
}

export const PLANT_KINDS = ['verbatim', 'embedded', 'numbers-changed'] as const;
export type PlantKind = (typeof PLANT_KINDS)[number];

/** A plant: item `item` (its index) written as `kind`. */
export interface Plant {
  item: number;
  kind: PlantKind;
}

/** The planted text of an item as one document (question and answer). */
export function plantText(w: CorpusWriter, row: Gsm8kRow, kind: PlantKind): string {
  const text = `Question: ${row.question}\nAnswer: ${row.answer}`;
  if (kind === 'verbatim') return text;
  if (kind === 'embedded') return w.embed(text);
  return w.changeNumbers(text);
}

/**
 * A JSON Lines corpus of about `bytes` bytes, `{"text": …}` per line: clean rows from `clean(line)`,
 * with the plants of `order` spread evenly through it (`plant(p)` gives each one's text). Returns the
 * 1-based line of each plant and the bytes written.
 */
export function writePlantedJsonl<P>(
  path: string,
  bytes: number,
  order: readonly P[],
  plant: (p: P) => string,
  clean: (line: number) => string,
): { plants: Map<number, P>; bytes: number } {
  const plants = new Map<number, P>();
  const fd = openSync(path, 'w');
  const every = bytes / (order.length + 1);
  let written = 0;
  let line = 0;
  let next = 0;
  let pending = '';
  while (written < bytes || next < order.length) {
    let text: string;
    if (next < order.length && written >= (next + 1) * every) {
      const p = order[next++]!;
      text = plant(p);
      plants.set(line + 1, p);
    } else text = clean(line);
    const row = `${JSON.stringify({ text })}\n`;
    pending += row;
    written += Buffer.byteLength(row);
    line++;
    if (pending.length > 1 << 20) {
      writeSync(fd, pending);
      pending = '';
    }
  }
  writeSync(fd, pending);
  closeSync(fd);
  return { plants, bytes: written };
}
