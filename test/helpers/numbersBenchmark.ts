import type { Benchmark } from '../../src/benchmarks/types.ts';
import type { Sample } from '../../src/core/schemas.ts';

/** A benchmark in GSM8K's shape: the stand-in answers with the question's last number. */
export function numbersBenchmark(n: number): { benchmark: Benchmark; samples: Sample[] } {
  const samples: Sample[] = Array.from({ length: n }, (_, i) => ({
    id: String(i),
    record: {
      question: `What is ${i} plus zero? The value is ${i}`,
      answer: `#### ${i % 3 === 0 ? i : i + 1}`,
    },
    target: String(i % 3 === 0 ? i : i + 1),
  }));
  const benchmark: Benchmark = {
    id: 'gsm8k',
    displayName: 'numbers',
    sampleId: 'the number asked about, as a string',
    weight: 1,
    defaults: {
      maxTokensLadder: [400, 300, 200],
      agentLimit: null,
      referenceConcurrency: 2,
      concurrency: 8,
      maxTokensFlag: '--max-tokens',
    },
    assets: [],
    needsGrader: false,
    usesTools: false,
    async prepare() {
      return {
        samples,
        request: (s) => ({ messages: [{ role: 'user', content: String(s.record.question) }] }),
        score: async (s, reply) => {
          const answer = reply.text.match(/ANSWER: (\S+)/)?.[1] ?? null;
          return { value: answer === s.target ? 1 : 0, answer };
        },
      };
    },
    select: (all, { limit }) => (limit === null ? all : all.slice(0, limit)),
    aggregate: (scored) => ({ accuracy: scored.reduce((a, x) => a + x.score.value, 0) / scored.length }),
  };
  return { benchmark, samples };
}
