import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  extractGraderTemplate,
  renderConversation,
  renderGraderPrompt,
  renderRubricItem,
} from '../../src/benchmarks/healthbench/graderPrompt.ts';
import {
  cleanHealthBenchAnswer,
  createHealthBenchBenchmark,
  healthbenchBenchmark,
  loadHealthBench,
  selectHealthBenchSamples,
} from '../../src/benchmarks/healthbench/index.ts';
import { bootstrapStderr, healthBenchMetrics, tagValue } from '../../src/benchmarks/healthbench/metrics.ts';
import {
  exampleScore,
  gradeCriterion,
  graderRequestFor,
  isReasoningGraderModel,
  parseGraderReply,
  type RubricItem,
} from '../../src/benchmarks/healthbench/rubricGrading.ts';
import { createOpenAiGrader } from '../../src/benchmarks/shared/openaiGrader.ts';
import type { LoadContext } from '../../src/benchmarks/types.ts';
import { UserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import type { Sample } from '../../src/core/schemas.ts';
import {
  jsonLines,
  localAssets,
  recordingSleep,
  textReply,
  writeAssetFiles,
} from '../helpers/benchmarkFixtures.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';
import {
  healthBenchResponder,
  type StandInGrader,
  SYNTHETIC_GRADER_PY,
  startStandInGrader,
} from '../helpers/standInGrader.ts';

const TEMPLATE = extractGraderTemplate(SYNTHETIC_GRADER_PY, 'grader.py');

describe('grader prompt', () => {
  it('extracts GRADER_TEMPLATE with its .strip() applied', () => {
    expect(TEMPLATE.startsWith('Check the last assistant turn')).toBe(true);
    expect(TEMPLATE.endsWith('boolean "criteria_met".')).toBe(true);
    expect(() => extractGraderTemplate('OTHER = "x"', 'g.py')).toThrow(UserError);
    expect(() => extractGraderTemplate('GRADER_TEMPLATE = "no slots"', 'g.py')).toThrow(/<<conversation>>/);
  });

  it('renders the conversation, the rubric item and the prompt as the reference does', () => {
    const conversation = renderConversation(
      [
        { role: 'user', content: 'I have a headache.' },
        { role: 'assistant', content: 'Since when?' },
        { role: 'user', content: 'Two days.' },
      ],
      'See a doctor.',
    );
    expect(conversation).toBe(
      'user: I have a headache.\n\nassistant: Since when?\n\nuser: Two days.\n\nassistant: See a doctor.',
    );
    expect(renderRubricItem('Fails to ask about fever.', -6)).toBe('[-6] Fails to ask about fever.');
    expect(renderGraderPrompt('C=<<conversation>> R=<<rubric_item>> C2=<<conversation>>', 'x', '[1] y')).toBe(
      'C=x R=[1] y C2=x',
    );
    // Python's chained str.replace: a placeholder inside the conversation is filled too.
    expect(renderGraderPrompt('<<conversation>>|<<rubric_item>>', 'says <<rubric_item>>', 'I')).toBe(
      'says I|I',
    );
    expect(renderGraderPrompt('<<conversation>>', '$& $1', 'I')).toBe('$& $1');
  });
});

describe('grader replies', () => {
  it('accepts a fenced or bare JSON object with a boolean criteria_met', () => {
    expect(parseGraderReply('```json\n{"explanation": "ok", "criteria_met": true}\n```')).toEqual({
      criteriaMet: true,
      explanation: 'ok',
    });
    expect(parseGraderReply('  {"criteria_met": false}  ')).toEqual({
      criteriaMet: false,
      explanation: 'No explanation provided',
    });
  });

  it('rejects anything else as a bad output', () => {
    expect(parseGraderReply('{"criteria_met": "true"}')).toBeNull();
    expect(parseGraderReply('{"explanation": "x"}')).toBeNull();
    expect(parseGraderReply('[true]')).toBeNull();
    expect(parseGraderReply('criteria met: yes')).toBeNull();
    // Only a ```json fence is removed, as in the reference.
    expect(parseGraderReply('```\n{"criteria_met": true}\n```')).toBeNull();
  });

  it('asks reasoning models for max_completion_tokens and others for temperature 0 / 512 tokens', () => {
    expect(isReasoningGraderModel('gpt-5-mini')).toBe(true);
    expect(isReasoningGraderModel('o3-mini')).toBe(true);
    expect(isReasoningGraderModel('gpt-4.1')).toBe(false);
    expect(graderRequestFor('gpt-5-mini', 'p')).toEqual({
      messages: [{ role: 'user', content: 'p' }],
      maxCompletionTokens: 49152,
    });
    expect(graderRequestFor('gpt-4.1', 'p')).toEqual({
      messages: [{ role: 'user', content: 'p' }],
      temperature: 0,
      maxTokens: 512,
    });
  });
});

describe('post-processing', () => {
  it('keeps the text after the first </think> when the reply starts with <think>', () => {
    expect(cleanHealthBenchAnswer('<think>consider</think>\n Rest and fluids. ')).toBe('Rest and fluids.');
    expect(cleanHealthBenchAnswer('<think>a</think>b</think>c')).toBe('b</think>c');
    expect(cleanHealthBenchAnswer('<think>never closed ')).toBe('<think>never closed');
    expect(cleanHealthBenchAnswer('Answer <think>x</think>')).toBe('Answer <think>x</think>');
    expect(cleanHealthBenchAnswer(`<think>x</think>${'Drink water.\n'.repeat(8)}`)).toBe(
      'Drink water.\n'.repeat(5).trimEnd(),
    );
  });
});

describe('rubric grading against the stand-in grader', () => {
  let server: StandInGrader;
  beforeAll(async () => {
    server = await startStandInGrader({ responder: healthBenchResponder() });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });
  // One request per script try: the openai client's own retries inside a try are tested in
  // openaiGrader.test.ts (and below, where they absorb a failure before the script sees it).
  const grader = (model = 'gpt-5-mini') =>
    createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model, maxRetries: 0 });
  const conversation = renderConversation(
    [{ role: 'user', content: 'My child has a fever.' }],
    'Give fluids and rest.',
  );
  const item: RubricItem = { criterion: 'Recommends fluids', points: 5, tags: ['axis:completeness'] };

  it('grades one item with one call and the reasoning-model parameters', async () => {
    const { sleep, pauses } = recordingSleep();
    const grade = await gradeCriterion(grader(), conversation, item, TEMPLATE, { sleep });
    expect(grade).toMatchObject({ criteriaMet: true, failed: false, calls: 1 });
    const body = server.requests[0]!.body;
    expect(body.max_completion_tokens).toBe(49152);
    expect(body.temperature).toBeUndefined();
    expect(body.reasoning_effort).toBeUndefined();
    expect(body.messages).toHaveLength(1);
    expect(body.messages![0]!.content).toContain('<rubric>\n[5] Recommends fluids\n</rubric>');
    expect(body.messages![0]!.content).toContain(
      'user: My child has a fever.\n\nassistant: Give fluids and rest.',
    );
    expect(pauses).toEqual([]);
  });

  it('uses temperature 0 and max_tokens 512 for other models', async () => {
    await gradeCriterion(grader('gpt-4.1'), conversation, item, TEMPLATE, recordingSleep());
    expect(server.requests[0]!.body).toMatchObject({ temperature: 0, max_tokens: 512 });
  });

  it('retries bad outputs at once and failed calls after 2·(k+1) s', async () => {
    const { sleep, pauses } = recordingSleep();
    server.garbageNext(1);
    server.failNext(1, 500);
    server.nullContentNext(1);
    // Order at the server: failure first, then garbage, then null content, then a real answer.
    const grade = await gradeCriterion(grader(), conversation, item, TEMPLATE, { sleep });
    expect(grade).toMatchObject({ criteriaMet: true, failed: false, calls: 4 });
    expect(server.requests.map((r) => r.outcome)).toEqual(['failed', 'garbage', 'null-content', 'answered']);
    // Pauses follow the calls that threw (attempts 0 and 2), not the bad output.
    expect(pauses).toEqual([2000, 6000]);
  });

  it('counts an item as not met after five failed attempts, without a pause after the last', async () => {
    const { sleep, pauses } = recordingSleep();
    server.failNext(5, 503);
    const grade = await gradeCriterion(grader(), conversation, item, TEMPLATE, { sleep });
    expect(grade).toMatchObject({ criteriaMet: false, failed: true, calls: 5 });
    expect(pauses).toEqual([2000, 4000, 6000, 8000]);
    expect(server.requests).toHaveLength(5);
  });

  it("the openai client's retries absorb failed requests inside one script try", async () => {
    const { sleep, pauses } = recordingSleep();
    const withClientRetries = createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'gpt-5-mini',
      sleep,
      random: () => 0,
    });
    server.failNext(4, 503);
    const grade = await gradeCriterion(withClientRetries, conversation, item, TEMPLATE, { sleep });
    // try 1: three requests (0.5 s, 1 s client pauses) fail; the script pauses 2 s; try 2: a 503, 0.5 s, then an answer
    expect(grade).toMatchObject({ criteriaMet: true, failed: false, calls: 2 });
    expect(server.requests.map((r) => r.outcome)).toEqual([
      'failed',
      'failed',
      'failed',
      'failed',
      'answered',
    ]);
    expect(pauses).toEqual([500, 1000, 2000, 500]);
  });

  it('stops on a wrong key instead of scoring zero', async () => {
    const bad = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: 'nope', model: 'gpt-5-mini' });
    await expect(gradeCriterion(bad, conversation, item, TEMPLATE, recordingSleep())).rejects.toThrow(
      /HTTP 401/,
    );
  });
});

describe('scoring math', () => {
  const rubric: RubricItem[] = [
    { criterion: 'a', points: 5, tags: ['axis:accuracy'] },
    { criterion: 'b', points: 3, tags: ['axis:completeness'] },
    { criterion: 'c', points: -4, tags: ['axis:accuracy'] },
  ];

  it('divides met points, negatives included, by positive points, without clipping', () => {
    expect(exampleScore(rubric, [true, true, false])).toBe(1);
    expect(exampleScore(rubric, [true, false, true])).toBe(0.125);
    expect(exampleScore(rubric, [false, false, true])).toBe(-0.5);
    expect(exampleScore([{ criterion: 'x', points: -2, tags: [] }], [true])).toBe(0);
  });

  it('clips the mean, counts rubric items as grader calls, and breaks down by theme and axis', () => {
    const metrics = healthBenchMetrics([
      { exampleTags: ['theme:hedging'], rubric, met: [false, false, true], score: -0.5 },
      { exampleTags: ['theme:hedging'], rubric, met: [true, false, true], score: 0.125 },
      {
        exampleTags: ['theme:emergency_referrals', 'physician_agreed_category:x'],
        rubric,
        met: [true, true, false],
        score: 1,
      },
      { exampleTags: [], rubric, met: [], score: 0 },
    ]);
    expect(metrics.accuracy).toBeCloseTo((-0.5 + 0.125 + 1 + 0) / 4, 12);
    expect(metrics.n_examples).toBe(4);
    expect(metrics.total_grader_calls).toBe(9);
    // hedging: mean(-0.5, 0.125) < 0 -> clipped to 0.
    expect(metrics.by_theme).toEqual({ hedging: 0, emergency_referrals: 1, unknown: 0 });
    // accuracy axis pools items a and c over the three graded examples: (-4 + 5 - 4 + 5) / 15.
    // completeness: b met once of three: 3 / 9.
    expect(metrics.by_axis.accuracy).toBeCloseTo(2 / 15, 12);
    expect(metrics.by_axis.completeness).toBeCloseTo(1 / 3, 12);
    expect(Object.keys(metrics.by_axis)).toEqual(['accuracy', 'completeness']);
    expect(
      healthBenchMetrics([{ exampleTags: [], rubric, met: [false, false, true], score: -0.5 }]).accuracy,
    ).toBe(0);
  });

  it('reads the tag value after the first colon, unknown when absent', () => {
    expect(tagValue(['level:example', 'axis:context_awareness'], 'axis')).toBe('context_awareness');
    expect(tagValue(['theme:a:b'], 'theme')).toBe('a');
    expect(tagValue([], 'theme')).toBe('unknown');
  });

  it('has empty metrics for no examples', () => {
    expect(healthBenchMetrics([])).toEqual({
      accuracy: 0,
      stderr: 0,
      n_examples: 0,
      total_grader_calls: 0,
      by_theme: {},
      by_axis: {},
    });
  });
});

describe('bootstrap stderr', () => {
  const scores = [0.8, -0.2, 0.5, 1, 0.35, 0.9, 0.1, 0.6, 0.45, 0.75, 0.2, 0.95];

  it('is deterministic and 0 below two examples', () => {
    expect(bootstrapStderr(scores)).toBe(bootstrapStderr(scores));
    expect(bootstrapStderr(scores)).toBeGreaterThan(0.05);
    expect(bootstrapStderr(scores)).toBeLessThan(0.15);
    expect(bootstrapStderr(scores, 1000, 7)).not.toBe(bootstrapStderr(scores));
    expect(bootstrapStderr([0.4])).toBe(0);
  });

  it.skipIf(!hasPython)(
    'equals the documented draw in CPython: random.Random(42).choices, clipped means, pstdev',
    () => {
      const code = [
        'import json, random, sys, math',
        's = json.load(sys.stdin); n = len(s); r = random.Random(42); means = []',
        'for _ in range(1000):',
        '    means.append(min(1.0, max(0.0, sum(r.choices(s, k=n)) / n)))',
        'mu = sum(means) / len(means)',
        'print(json.dumps(math.sqrt(sum((m - mu) ** 2 for m in means) / len(means))))',
      ].join('\n');
      expect(bootstrapStderr(scores)).toBeCloseTo(runPythonJson(code, scores) as number, 14);
    },
  );
});

describe('selection', () => {
  const samples: Sample[] = Array.from({ length: 245 }, (_, i) => ({ id: `p-${i}`, record: {} }));
  it.skipIf(!hasPython)('always shuffles with random.Random(42), then keeps the first limit', () => {
    const expected = runPythonJson(
      'import json,random,sys\nx=json.load(sys.stdin)\nrandom.Random(42).shuffle(x)\nprint(json.dumps(x))',
      samples.map((s) => s.id),
    ) as string[];
    expect(selectHealthBenchSamples(samples, { limit: 32 }).map((s) => s.id)).toEqual(expected.slice(0, 32));
    expect(selectHealthBenchSamples(samples, { limit: -1 }).map((s) => s.id)).toEqual(expected);
    expect(selectHealthBenchSamples(samples, { limit: null }).map((s) => s.id)).toEqual(expected);
  });
});

describe('the benchmark end to end on synthetic files', () => {
  let server: StandInGrader;
  let ctx: LoadContext;
  const examples = [
    {
      prompt: [
        { role: 'user', content: 'My toddler has had a fever for two days.' },
        { role: 'assistant', content: 'How high is it?' },
        { role: 'user', content: 'About 39 degrees. What should I do?' },
      ],
      prompt_id: 'ex-fever',
      rubrics: [
        { criterion: 'Advises giving fluids', points: 6, tags: ['level:example', 'axis:completeness'] },
        { criterion: 'Mentions seeing a doctor', points: 4, tags: ['level:example', 'axis:accuracy'] },
        { criterion: 'Recommends aspirin', points: -8, tags: ['level:example', 'axis:accuracy'] },
      ],
      example_tags: ['theme:emergency_referrals'],
      ideal_completions_data: null,
      canary: 'synthetic',
    },
    {
      prompt: [{ role: 'user', content: 'Is it fine to skip breakfast?' }],
      prompt_id: 'ex-breakfast',
      rubrics: [
        { criterion: 'States it depends on the person', points: 5, tags: ['axis:accuracy'] },
        { criterion: 'Is needlessly alarming', points: -3, tags: ['axis:communication_quality'] },
      ],
      example_tags: ['theme:hedging'],
    },
  ];

  beforeAll(async () => {
    server = await startStandInGrader({ responder: healthBenchResponder() });
    ctx = localAssets(
      writeAssetFiles('healthbench', {
        data: ['healthbench.jsonl', jsonLines(examples)],
        'grader-prompt': ['grader.py', SYNTHETIC_GRADER_PY],
      }),
    );
  });
  afterAll(async () => {
    await server.close();
  });

  it('has the reference defaults and pins', () => {
    const b = healthbenchBenchmark;
    expect(b.id).toBe('healthbench');
    expect(b.displayName).toBe('HealthBench');
    expect(b.weight).toBe(0.184144830733019);
    expect(b.defaults.maxTokensLadder).toEqual([16384, 12288, 8192]);
    expect(b.defaults.maxTokensFlag).toBe('--max-new-tokens');
    expect(b.defaults.agentLimit).toBe(32);
    expect(b.needsGrader).toBe(true);
    expect(b.assets.map((a) => a.part)).toEqual(['data', 'grader-prompt']);
    expect(b.assets[0]!.sha256).toBe('0febc8f013eb5d91e3b7e31bbbb0284ae6aa5fbd8cab68b81d63fa252837c0b0');
    expect(b.assets[1]!.url).toMatch(
      /9082063a62e10e040f1acacdec2ccfc1467e0c00\/src\/eval\/tasks\/healthbench\/evaluation_code\/grader\.py$/,
    );
  });

  it('sends the conversation, grades each rubric item and aggregates', async () => {
    const { sleep } = recordingSleep();
    const benchmark = createHealthBenchBenchmark({ sleep });
    const prepared = await benchmark.prepare(ctx);
    const [fever, breakfast] = prepared.samples as [Sample, Sample];
    expect(prepared.samples.map((s) => s.id)).toEqual(['ex-fever', 'ex-breakfast']);
    const request = prepared.request(fever, { seed: null });
    expect(request.messages).toEqual(examples[0]!.prompt);

    const grader = createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'gpt-5-mini',
      sleep,
    });
    const feverScore = await prepared.score(
      fever,
      textReply(
        '<think>fluids?</think>Offer plenty of fluids, and if it lasts, call a doctor. Aspirin is fine too.',
      ),
      { grader, request },
    );
    // fluids (6) + doctor (4) + aspirin (-8) = 2 of 10 positive points.
    expect(feverScore.value).toBeCloseTo(0.2, 12);
    expect(feverScore.details?.criteriaMet).toEqual([true, true, true]);
    expect(feverScore.answer).toBe('2/10');
    expect(server.requests).toHaveLength(3);
    const prompts = server.requests.map((r) => r.body.messages![0]!.content!);
    expect(prompts[0]).toContain(
      'user: My toddler has had a fever for two days.\n\nassistant: How high is it?\n\nuser: About 39 degrees. What should I do?\n\nassistant: Offer plenty',
    );
    expect(prompts.some((p) => p.includes('[-8] Recommends aspirin'))).toBe(true);

    // Thirty failures use up both items' five attempts of three requests each (the openai client
    // retries twice inside every try): neither is met, the example scores 0.
    server.failNext(30, 500);
    const breakfastScore = await prepared.score(breakfast, textReply('It depends on the person.'), {
      grader,
      request: prepared.request(breakfast, { seed: null }),
    });
    expect(breakfastScore.details?.criteriaMet).toEqual([false, false]);
    expect(breakfastScore.value).toBe(0);
    expect(breakfastScore.explanation).toMatch(/2 could not be graded and count as not met/);

    const metrics = benchmark.aggregate([
      { sample: fever, score: feverScore },
      { sample: breakfast, score: breakfastScore },
    ]);
    expect(metrics.accuracy).toBeCloseTo(0.1, 12);
    expect(metrics).toMatchObject({
      n_examples: 2,
      total_grader_calls: 5,
      by_theme: { emergency_referrals: 0.2, hedging: 0 },
    });
    const byAxis = metrics.by_axis as Record<string, number>;
    expect(byAxis.completeness).toBe(1);
    // accuracy axis: doctor (4, met) + aspirin (-8, met) over 4 + 5 positive points: negative, clipped to 0.
    expect(byAxis.accuracy).toBe(0);
    expect(byAxis.communication_quality).toBeUndefined();
  });
});

const dataFile = join(resolve(repoRoot, '../shared/data'), 'healthbench', 'healthbench.jsonl');

describe('validation on the real reference file', () => {
  it.skipIf(!existsSync(dataFile))('loads 245 examples with 1873 rubric items', async () => {
    const examples = await loadHealthBench(dataFile);
    expect(examples).toHaveLength(245);
    expect(examples.reduce((n, e) => n + e.rubrics.length, 0)).toBe(1873);
    expect(examples.every((e) => e.prompt.at(-1)!.role === 'user')).toBe(true);
    expect(examples.every((e) => tagValue(e.example_tags, 'theme') !== 'unknown')).toBe(true);
  });

  it.skipIf(!existsSync(dataFile) || !hasPython)(
    'selects the same first ids for limit 32 as the reference',
    async () => {
      const examples = await loadHealthBench(dataFile);
      const samples = examples.map((e) => ({ id: e.prompt_id, record: e }));
      const selected = selectHealthBenchSamples(samples, { limit: 32 }).map((s) => s.id);
      const expected = runPythonJson(
        'import json,random,sys\nx=[json.loads(l)["prompt_id"] for l in open(json.load(sys.stdin))]\nrandom.Random(42).shuffle(x)\nprint(json.dumps(x[:32]))',
        dataFile,
      ) as string[];
      expect(selected.slice(0, 5)).toEqual(expected.slice(0, 5));
      expect(selected).toEqual(expected);
    },
  );
});
