import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  aggregateArena,
  arenahardwritingBenchmark,
  createArenaHardWritingBenchmark,
  extractJudgeSystemPrompt,
  loadArenaBaseline,
  loadArenaQuestions,
  selectArenaSamples,
} from '../../src/benchmarks/arenahardwriting/index.ts';
import {
  callJudge,
  cleanCandidateAnswer,
  judgeQuestion,
  judgeUserPrompt,
} from '../../src/benchmarks/arenahardwriting/judge.ts';
import {
  candidateValues,
  extractVerdict,
  verdictScoresForA,
} from '../../src/benchmarks/arenahardwriting/verdict.ts';
import { createOpenAiGrader } from '../../src/benchmarks/shared/openaiGrader.ts';
import {
  PythonSourceError,
  pythonAssignedString,
  pythonNestedDictString,
} from '../../src/benchmarks/shared/pythonText.ts';
import { type LoadContext, ScorerFailure } from '../../src/benchmarks/types.ts';
import { UserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import type { Sample, Score } from '../../src/core/schemas.ts';
import {
  fixtureDir,
  jsonLines,
  localAssets,
  recordingSleep,
  textReply,
  writeFixture,
} from '../helpers/benchmarkFixtures.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';
import {
  arenaJudgeResponder,
  type StandInGrader,
  SYNTHETIC_JUDGE_PROMPT,
  SYNTHETIC_JUDGE_UTILS_PY,
  startStandInGrader,
} from '../helpers/standInGrader.ts';

const MARKER = 'lighthouse';

/** Python's shuffle of the same list, by the real CPython. */
function pythonShuffle(ids: string[]): string[] {
  return runPythonJson(
    'import json,random,sys\nx=json.load(sys.stdin)\nrandom.Random(42).shuffle(x)\nprint(json.dumps(x))',
    ids,
  ) as string[];
}

describe('verdict parsing', () => {
  it('reads the last double-bracket label of the upper-cased judgment', () => {
    expect(extractVerdict('Final: [[A>B]]')).toBe('A>B');
    expect(extractVerdict('my verdict: [[b>>a]]')).toBe('B>>A');
    expect(extractVerdict('Earlier [[A=B]], then [[A>>B]], finally [[B>A]].')).toBe('B>A');
  });

  it('falls back to single brackets only when no double-bracket label exists', () => {
    expect(extractVerdict('Verdict [B>A] here')).toBe('B>A');
    expect(extractVerdict('[[A>B]] but later a stray [B>A]')).toBe('A>B');
    expect(extractVerdict('[A] then [A=B]')).toBe('A=B');
  });

  it('finds nothing in prose or in labels with other characters', () => {
    expect(extractVerdict('Both answers are fine.')).toBeNull();
    expect(extractVerdict('[[ A>B ]]')).toBeNull();
    expect(extractVerdict('[[C>A]]')).toBeNull();
  });

  it('maps every label to values for A, strong labels three times', () => {
    const table: Record<string, number[]> = {
      'A>B': [1],
      'A>>B': [1, 1, 1],
      'A=B': [0.5],
      'B=A': [0.5],
      'B>A': [0],
      'A<B': [0],
      'B>>A': [0, 0, 0],
      'A<<B': [0, 0, 0],
      'B<A': [1],
      'B<<A': [1, 1, 1],
    };
    for (const [label, values] of Object.entries(table))
      expect(verdictScoresForA(label), label).toEqual(values);
    expect(verdictScoresForA('A')).toBeNull();
    expect(verdictScoresForA('A>>>B')).toBeNull();
  });

  it('flips game 1 (baseline as A) and keeps game 2 (candidate as A)', () => {
    expect(candidateValues('[[A>>B]]', false)).toEqual({
      kind: 'scored',
      verdict: 'A>>B',
      values: [0, 0, 0],
    });
    expect(candidateValues('[[A>B]]', true)).toEqual({ kind: 'scored', verdict: 'A>B', values: [1] });
    expect(candidateValues('[[A=B]]', false)).toEqual({ kind: 'scored', verdict: 'A=B', values: [0.5] });
    expect(candidateValues('nothing', true)).toEqual({ kind: 'no-verdict' });
    expect(candidateValues(null, true)).toEqual({ kind: 'no-judgment' });
    expect(candidateValues('[[AB]]', true)).toEqual({ kind: 'unknown-verdict', verdict: 'AB' });
  });
});

describe('answer post-processing', () => {
  it('strips a leading think block only when it is closed', () => {
    expect(cleanCandidateAnswer('  <think>plan the poem</think>\n\nRoses are red.  ')).toBe('Roses are red.');
    expect(cleanCandidateAnswer('<think>never closed, all of it stays')).toBe(
      '<think>never closed, all of it stays',
    );
    expect(cleanCandidateAnswer('Intro <think>x</think> rest')).toBe('Intro <think>x</think> rest');
    expect(cleanCandidateAnswer('<think>a</think>b</think>c')).toBe('b</think>c');
  });

  it('applies the repetition limiter after the strip', () => {
    const looping = `<think>hmm</think>${'Again and again.\n'.repeat(9)}Done.`;
    expect(cleanCandidateAnswer(looping)).toBe(`${'Again and again.\n'.repeat(5)}Done.`);
  });

  it('lays out the judge prompt as arena-hard does', () => {
    expect(judgeUserPrompt('Q?', 'first', 'second')).toBe(
      "<|User Prompt|>\nQ?\n\n<|The Start of Assistant A's Answer|>\nfirst\n<|The End of Assistant A's Answer|>\n\n" +
        "<|The Start of Assistant B's Answer|>\nsecond\n<|The End of Assistant B's Answer|>",
    );
  });
});

describe('judge prompt extraction', () => {
  it('reads JUDGE_SETTINGS["creative_writing"]["system_prompt"], skipping comments', () => {
    expect(extractJudgeSystemPrompt(SYNTHETIC_JUDGE_UTILS_PY, 'judge_utils.py')).toBe(SYNTHETIC_JUDGE_PROMPT);
  });

  it('resolves a prompt given by a module-level name', () => {
    expect(pythonNestedDictString(SYNTHETIC_JUDGE_UTILS_PY, 'hard_prompt', 'system_prompt')).toMatch(
      /^Shared synthetic judge prompt/,
    );
  });

  it('decodes Python string literals: escapes, raw, triple quotes, implicit concatenation', () => {
    const src = [
      'A = "tab\\there \\"q\\" \\x41\\u00e9\\101 \\d kept \\\nsame line"',
      "B = r'raw \\n stays'",
      'C = """\n  padded\n""".strip()',
      'D = (\n    "first, "  # comment\n    \'second\'\n)',
      'E: str = u"typed"',
    ].join('\n');
    expect(pythonAssignedString(src, 'A')).toBe('tab\there "q" Aé\u0041 \\d kept same line');
    expect(pythonAssignedString(src, 'B')).toBe('raw \\n stays');
    expect(pythonAssignedString(src, 'C')).toBe('padded');
    expect(pythonAssignedString(src, 'D')).toBe('first, second');
    expect(pythonAssignedString(src, 'E')).toBe('typed');
    expect(() => pythonAssignedString(src, 'F')).toThrow(PythonSourceError);
    expect(() => pythonAssignedString('G = f"x{y}"', 'G')).toThrow(PythonSourceError);
  });

  it('refuses a file without the entry or without verdict labels', () => {
    expect(() => extractJudgeSystemPrompt('JUDGE_SETTINGS = {}', 'x.py')).toThrow(UserError);
    expect(() =>
      extractJudgeSystemPrompt('S = {"creative_writing": {"system_prompt": "no labels"}}', 'x.py'),
    ).toThrow(/\[\[A>>B\]\]/);
  });
});

describe('judge calls against the stand-in grader', () => {
  let server: StandInGrader;
  beforeAll(async () => {
    server = await startStandInGrader({ responder: arenaJudgeResponder(MARKER) });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
    server.rejectReasoningEffort = false;
  });
  const grader = () =>
    // One request per try: the openai client's own retries are tested in openaiGrader.test.ts.
    createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'gpt-5-mini',
      maxRetries: 0,
    });
  const messages = [
    { role: 'system' as const, content: 'judge' },
    { role: 'user' as const, content: judgeUserPrompt('Q', `a ${MARKER}`, 'b') },
  ];

  it('sends reasoning_effort medium and max_completion_tokens 49152', async () => {
    const { sleep, pauses } = recordingSleep();
    const judgment = await callJudge(grader(), messages, { sleep });
    expect(extractVerdict(judgment!)).toBe('A>B');
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.body.reasoning_effort).toBe('medium');
    expect(server.requests[0]!.body.max_completion_tokens).toBe(49152);
    expect(server.requests[0]!.body.temperature).toBeUndefined();
    expect(server.requests[0]!.body.max_tokens).toBeUndefined();
    expect(pauses).toEqual([]);
  });

  it('drops reasoning_effort after a reasoning-related 400, without pausing', async () => {
    server.rejectReasoningEffort = true;
    const { sleep, pauses } = recordingSleep();
    const judgment = await callJudge(grader(), messages, { sleep });
    expect(judgment).toContain('[[A>B]]');
    expect(server.requests.map((r) => r.outcome)).toEqual(['rejected-reasoning', 'answered']);
    expect(server.requests[1]!.body.reasoning_effort).toBeUndefined();
    expect(pauses).toEqual([]);
  });

  it('pauses 5 s then 10 s between failed tries and succeeds on the third', async () => {
    server.failNext(2, 500);
    const { sleep, pauses } = recordingSleep();
    expect(await callJudge(grader(), messages, { sleep })).toContain('[[A>B]]');
    expect(pauses).toEqual([5000, 10000]);
    expect(server.requests).toHaveLength(3);
  });

  it('gives up with null after three failed tries (5/10/20 s pauses)', async () => {
    server.failNext(3, 429);
    const { sleep, pauses } = recordingSleep();
    expect(await callJudge(grader(), messages, { sleep })).toBeNull();
    expect(pauses).toEqual([5000, 10000, 20000]);
    expect(server.requests).toHaveLength(3);
  });

  it('a failed try after dropping reasoning_effort still consumes the schedule', async () => {
    server.rejectReasoningEffort = true;
    server.failNext(1, 400, JSON.stringify({ error: { message: 'reasoning tokens exhausted' } }));
    server.failNext(2, 500);
    const { sleep, pauses } = recordingSleep();
    expect(await callJudge(grader(), messages, { sleep })).toBeNull();
    // Try 1: reasoning 400 (dropped, no pause); tries 2 and 3: 500 with 10 s and 20 s pauses.
    expect(pauses).toEqual([10000, 20000]);
    expect(server.requests[0]!.body.reasoning_effort).toBe('medium');
    expect(server.requests[1]!.body.reasoning_effort).toBeUndefined();
  });

  it('does not retry a wrong key: it fails the call loudly', async () => {
    const bad = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: 'wrong', model: 'gpt-5-mini' });
    const { sleep } = recordingSleep();
    await expect(callJudge(bad, messages, { sleep })).rejects.toThrow(/HTTP 401/);
    expect(server.requests).toHaveLength(1);
  });

  it('plays both games and explodes strong verdicts', async () => {
    const { sleep } = recordingSleep();
    const judged = await judgeQuestion(
      grader(),
      {
        systemPrompt: 'judge',
        question: 'Q',
        baselineAnswer: 'plain',
        candidateAnswer: `${MARKER} ${MARKER}`,
      },
      { sleep },
    );
    // Game 1: baseline is A, the judge says B>>A -> candidate gets 1,1,1; game 2: A>>B -> 1,1,1.
    expect(judged.games.map((g) => g.outcome)).toEqual([
      { kind: 'scored', verdict: 'B>>A', values: [1, 1, 1] },
      { kind: 'scored', verdict: 'A>>B', values: [1, 1, 1] },
    ]);
    expect(judged.values).toEqual([1, 1, 1, 1, 1, 1]);
    const users = server.requests.map((r) => r.body.messages![1]!.content!);
    expect(users.some((u) => u.indexOf('plain') < u.indexOf(MARKER))).toBe(true);
    expect(users.some((u) => u.indexOf(MARKER) < u.indexOf('plain'))).toBe(true);
  });

  it('fails the attempt on a verdict outside the score map, as the reference raises KeyError', async () => {
    const { sleep } = recordingSleep();
    const saved = server.responder;
    server.responder = () => 'Both are strong. My final verdict: [[A>>>B]]';
    try {
      await expect(
        judgeQuestion(
          grader(),
          { systemPrompt: 'judge', question: 'Q', baselineAnswer: 'x', candidateAnswer: 'y' },
          { sleep },
        ),
      ).rejects.toThrow(ScorerFailure);
      // ... but a question where the other game has no label at all is skipped before the lookup.
      server.garbageNext(1);
      const judged = await judgeQuestion(
        grader(),
        { systemPrompt: 'judge', question: 'Q', baselineAnswer: 'x', candidateAnswer: 'y' },
        { sleep },
      );
      expect(judged.values).toBeNull();
    } finally {
      server.responder = saved;
    }
  });

  it('leaves values null when one game has no verdict', async () => {
    server.garbageNext(1);
    const { sleep } = recordingSleep();
    const judged = await judgeQuestion(
      grader(),
      { systemPrompt: 'judge', question: 'Q', baselineAnswer: 'x', candidateAnswer: 'y' },
      { sleep },
    );
    expect(judged.values).toBeNull();
    expect(judged.games.map((g) => g.outcome.kind).sort()).toEqual(['no-verdict', 'scored']);
  });
});

describe('aggregation', () => {
  const sample: Sample = { id: 'q', record: {} };
  it('averages every exploded value of kept questions; stderr is sample std over sqrt(n)', () => {
    const scored: Array<{ sample: Sample; score: Score }> = [
      { sample, score: { value: 1, values: [1, 1, 1, 1, 1, 1] } },
      { sample, score: { value: 0.25, values: [0.5, 0] } },
      { sample, score: { value: 0, values: [], dropped: true } },
    ];
    const values = [1, 1, 1, 1, 1, 1, 0.5, 0];
    const mean = values.reduce((a, b) => a + b) / values.length;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
    const metrics = aggregateArena(scored);
    expect(metrics.accuracy).toBeCloseTo(0.8125, 12);
    expect(metrics.stderr).toBeCloseTo(sd / Math.sqrt(8), 12);
    expect(metrics.stderr).toBeCloseTo(0.131527, 5);
  });

  it('is 0 ± 0 with nothing kept and has no stderr from one value', () => {
    expect(aggregateArena([])).toEqual({ accuracy: 0, stderr: 0 });
    expect(aggregateArena([{ sample, score: { value: 1, values: [1] } }])).toEqual({
      accuracy: 1,
      stderr: 0,
    });
  });
});

describe('selection', () => {
  const samples: Sample[] = Array.from({ length: 250 }, (_, i) => ({
    id: `uid${i.toString(16).padStart(4, '0')}`,
    record: {},
  }));
  it.skipIf(!hasPython)('is random.Random(42).shuffle then the first N, or the whole shuffled list', () => {
    const expected = pythonShuffle(samples.map((s) => s.id));
    expect(selectArenaSamples(samples, { limit: 32 }).map((s) => s.id)).toEqual(expected.slice(0, 32));
    expect(selectArenaSamples(samples, { limit: -1 }).map((s) => s.id)).toEqual(expected);
    expect(selectArenaSamples(samples, { limit: null }).map((s) => s.id)).toEqual(expected);
    expect(samples[0]!.id).toBe('uid0000');
  });
});

describe('the benchmark end to end on synthetic files', () => {
  let server: StandInGrader;
  let ctx: LoadContext;
  const dir = fixtureDir('arena');
  const questions = [
    {
      uid: 'q-one',
      category: 'creative_writing',
      subcategory: 'creative_writing',
      prompt: 'Write about a coast.',
    },
    {
      uid: 'q-two',
      category: 'creative_writing',
      subcategory: 'creative_writing',
      prompt: 'Write a limerick.',
    },
  ];
  const baseline = questions.map((q) => ({
    uid: q.uid,
    ans_id: `ans-${q.uid}`,
    model: 'Qwen3-1.7B',
    messages: [
      { role: 'user', content: q.prompt },
      { role: 'assistant', content: { answer: `baseline text for ${q.uid} with one ${MARKER}` } },
    ],
    tstamp: 0,
    metadata: {},
  }));

  beforeAll(async () => {
    server = await startStandInGrader({ responder: arenaJudgeResponder(MARKER) });
    ctx = localAssets({
      questions: writeFixture(dir, 'question.jsonl', jsonLines(questions)),
      baseline: writeFixture(dir, 'Qwen3-1.7B.jsonl', jsonLines(baseline)),
      'judge-prompt': writeFixture(dir, 'judge_utils.py', SYNTHETIC_JUDGE_UTILS_PY),
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('has the reference defaults and pins', () => {
    const b = arenahardwritingBenchmark;
    expect(b.id).toBe('arenahardwriting');
    expect(b.displayName).toBe('Arena-Hard-v2.0 (Writing)');
    expect(b.weight).toBe(0.0903518275042778);
    expect(b.defaults.maxTokensLadder).toEqual([16384, 12288, 8192]);
    expect(b.defaults.maxTokensFlag).toBe('--max-new-tokens');
    expect(b.defaults.agentLimit).toBe(32);
    expect(b.defaults.referenceConcurrency).toBe(1);
    expect(b.defaults.gpuMemoryUtilization).toBeUndefined();
    expect(b.needsGrader).toBe(true);
    expect(b.assets.map((a) => a.part)).toEqual(['questions', 'baseline', 'judge-prompt']);
    for (const a of b.assets)
      expect(a.url).toContain('/aisa-group/PostTrainBench/9082063a62e10e040f1acacdec2ccfc1467e0c00/');
    expect(b.assets.find((a) => a.part === 'judge-prompt')!.sha256).toBeNull();
  });

  it('loads, requests, judges and aggregates', async () => {
    const { sleep } = recordingSleep();
    const prepared = await createArenaHardWritingBenchmark({ sleep }).prepare(ctx);
    expect(prepared.samples.map((s) => s.id)).toEqual(['q-one', 'q-two']);
    const [one, two] = prepared.samples as [Sample, Sample];
    const request = prepared.request(one, { seed: null });
    expect(request).toEqual({ messages: [{ role: 'user', content: 'Write about a coast.' }] });

    const grader = createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'gpt-5-mini',
    });
    // Candidate 1 mentions the marker three times (after its think block): strong wins both ways.
    const win = await prepared.score(
      one,
      textReply(`<think>${MARKER}</think>${MARKER} ${MARKER} ${MARKER}`),
      {
        grader,
        request,
      },
    );
    expect(win.dropped).toBeFalsy();
    expect(win.values).toEqual([1, 1, 1, 1, 1, 1]);
    expect(win.answer).toBe('B>>A | A>>B');
    expect(win.details?.judgedAnswer).toBe(`${MARKER} ${MARKER} ${MARKER}`);

    const sent = server.requests.at(-1)!.body.messages!;
    expect(sent[0]).toEqual({ role: 'system', content: SYNTHETIC_JUDGE_PROMPT });
    expect(sent[1]!.content).toContain('<|User Prompt|>\nWrite about a coast.\n\n');

    // Candidate 2 has no marker while the baseline has one: slight losses both ways.
    const loss = await prepared.score(two, textReply('A limerick with nothing special.'), {
      grader,
      request,
    });
    expect(loss.values).toEqual([0, 0]);

    // A judge that answers garbage for one game drops the question.
    server.garbageNext(1);
    const dropped = await prepared.score(two, textReply('Another try.'), { grader, request });
    expect(dropped.dropped).toBe(true);
    expect(dropped.explanation).toMatch(/no verdict label/);

    const metrics = createArenaHardWritingBenchmark().aggregate([
      { sample: one, score: win },
      { sample: two, score: loss },
      { sample: two, score: dropped },
    ]);
    expect(metrics.accuracy).toBeCloseTo(6 / 8, 12);
  });

  it('refuses to score without a grader', async () => {
    const prepared = await arenahardwritingBenchmark.prepare(ctx);
    const sample = prepared.samples[0]!;
    await expect(
      prepared.score(sample, textReply('x'), { request: prepared.request(sample, { seed: null }) }),
    ).rejects.toThrow(UserError);
  });

  it('refuses a question of another category', async () => {
    const path = writeFixture(
      dir,
      'other.jsonl',
      JSON.stringify({ uid: 'z', category: 'coding', prompt: 'p' }),
    );
    await expect(loadArenaQuestions(path)).rejects.toThrow(/only creative_writing/);
  });
});

const dataDir = resolve(repoRoot, '../shared/data');
const arenaData = join(dataDir, 'arenahardwriting');

describe('validation on the real reference files', () => {
  it.skipIf(!existsSync(arenaData))(
    'loads 250 questions and 250 baseline answers with equal uid sets',
    async () => {
      const questions = await loadArenaQuestions(join(arenaData, 'question.jsonl'));
      const baseline = await loadArenaBaseline(join(arenaData, 'Qwen3-1.7B.jsonl'));
      expect(questions).toHaveLength(250);
      expect(baseline.size).toBe(250);
      expect(new Set(questions.map((q) => q.uid))).toEqual(new Set(baseline.keys()));
      for (const answer of baseline.values()) expect(answer.length).toBeGreaterThan(0);
    },
  );

  it.skipIf(!existsSync(arenaData) || !hasPython)(
    'selects the same first ids for limit 32 as the reference',
    async () => {
      const questions = await loadArenaQuestions(join(arenaData, 'question.jsonl'));
      const samples = questions.map((q) => ({ id: q.uid, record: q }));
      const selected = selectArenaSamples(samples, { limit: 32 }).map((s) => s.id);
      const lines = readFileSync(join(arenaData, 'question.jsonl'), 'utf8').trim().split('\n');
      const expected = pythonShuffle(lines.map((l) => (JSON.parse(l) as { uid: string }).uid));
      expect(selected).toHaveLength(32);
      expect(selected.slice(0, 5)).toEqual(expected.slice(0, 5));
      expect(selected).toEqual(expected.slice(0, 32));
    },
  );
});
