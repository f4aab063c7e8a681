import { describe, expect, it } from 'vitest';
import {
  bfclBenchmark,
  bfclTarget,
  bfclToolSpec,
  bfclTypeToJsonType,
  JsonDecodeError,
  parsePythonJson,
  parseToolCallArguments,
  pythonEquals,
  scoreToolCalls,
  toolParamSchema,
} from '../../src/benchmarks/bfcl/index.ts';
import { applyKeyOrder, arrowKeyOrder } from '../../src/benchmarks/bfcl/tools.ts';
import type { ToolCall, ToolSpec } from '../../src/core/schemas.ts';
import { jsonLines, localAssets, toolCallReply, writeAssetFiles } from '../helpers/benchmarkFixtures.ts';

function call(name: string, args: string): ToolCall {
  return { id: 'call_0', type: 'function', function: { name, arguments: args } };
}

// Synthetic records in the BFCL exec_simple schema (made up for the test).
const RECTANGLE = {
  id: 'exec_simple_900',
  question: [[{ role: 'user', content: 'What is the area of a 3 by 4.5 rectangle?' }]],
  function: [
    {
      name: 'rectangle_area',
      description: 'Area of a rectangle.',
      parameters: {
        type: 'dict',
        properties: {
          width: { type: 'integer', description: 'Width.' },
          height: { type: 'float', description: 'Height.' },
        },
        required: ['width', 'height'],
      },
    },
  ],
  execution_result_type: ['exact_match'],
  ground_truth: ['rectangle_area(width=3, height=4.5)'],
};
const ROUTE = {
  id: 'exec_simple_901',
  question: [[{ role: 'user', content: 'Plan a route through (0, 0) and (2, 3), avoiding tolls.' }]],
  function: [
    {
      name: 'plan_route',
      description: 'Plan a route.',
      parameters: {
        type: 'dict',
        properties: {
          options: {
            type: 'dict',
            description: 'Route options.',
            properties: { avoid_tolls: { type: 'boolean', description: 'Avoid tolls.', default: false } },
          },
          height: { type: 'float', description: 'Unused here.' },
          points: {
            type: 'array',
            description: 'Waypoints.',
            items: { type: 'tuple', items: { type: 'float' }, description: 'A point.' },
          },
        },
        required: ['points'],
      },
    },
  ],
  execution_result_type: ['exact_match'],
  ground_truth: ['plan_route(points=[(0, 0), (2, 3)], options={"avoid_tolls": True})'],
};

describe('pythonEquals (Python == after json.loads)', () => {
  it('treats ints, floats and bools as one numeric tower', () => {
    expect(pythonEquals(1, 1)).toBe(true);
    expect(pythonEquals(1, 1.0)).toBe(true);
    expect(pythonEquals(true, 1)).toBe(true);
    expect(pythonEquals(1.0, true)).toBe(true);
    expect(pythonEquals(false, 0)).toBe(true);
    expect(pythonEquals(true, 2)).toBe(false);
    expect(pythonEquals(0.1 + 0.2, 0.3)).toBe(false);
    expect(pythonEquals(Number.NaN, Number.NaN)).toBe(false);
  });

  it('never equates values of different kinds', () => {
    expect(pythonEquals('1', 1)).toBe(false);
    expect(pythonEquals(null, 0)).toBe(false);
    expect(pythonEquals(null, false)).toBe(false);
    expect(pythonEquals([], {})).toBe(false);
    expect(pythonEquals('', null)).toBe(false);
    expect(pythonEquals(null, null)).toBe(true);
  });

  it('compares strings exactly', () => {
    expect(pythonEquals('Paris', 'Paris')).toBe(true);
    expect(pythonEquals('Paris', 'paris')).toBe(false);
    expect(pythonEquals('Paris', 'Paris ')).toBe(false);
  });

  it('is order-sensitive for lists and order-insensitive for dicts', () => {
    expect(pythonEquals([1, 2], [1, 2])).toBe(true);
    expect(pythonEquals([1, 2], [2, 1])).toBe(false);
    expect(pythonEquals([1, 2], [1, 2, 3])).toBe(false);
    expect(pythonEquals({ a: 1, b: [1, { c: true }] }, { b: [1.0, { c: 1 }], a: 1 })).toBe(true);
    expect(pythonEquals({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(pythonEquals({ a: 1, b: 2 }, { a: 1, c: 2 })).toBe(false);
  });
});

describe('parsePythonJson (json.loads)', () => {
  it('reads JSON plus NaN and Infinity', () => {
    expect(parsePythonJson(' {"a": [1, 2.5e1, -0], "b": null, "c": "\\u00e9\\n"} ')).toEqual({
      a: [1, 25, -0],
      b: null,
      c: 'é\n',
    });
    expect(parsePythonJson('[NaN, Infinity, -Infinity]')).toEqual([Number.NaN, Infinity, -Infinity]);
    expect(parsePythonJson('{"k": 1, "k": 2}')).toEqual({ k: 2 });
  });

  it('raises on what Python rejects', () => {
    for (const text of [
      '{"a": 1} x',
      "{'a': 1}",
      '{"a": 01}',
      '{"a": "\n"}',
      '{"a": 1,}',
      '[1,]',
      'nan',
      '',
    ]) {
      expect(() => parsePythonJson(text), JSON.stringify(text)).toThrow(JsonDecodeError);
    }
  });
});

describe('tool conversion (inspect_evals create_tool_info_from_dict + OpenAI dump)', () => {
  it('maps BFCL types', () => {
    expect(bfclTypeToJsonType('dict')).toBe('object');
    expect(bfclTypeToJsonType('float')).toBe('number');
    expect(bfclTypeToJsonType('tuple')).toBe('array');
    expect(bfclTypeToJsonType('integer')).toBe('integer');
    expect(bfclTypeToJsonType(undefined)).toBeUndefined();
    expect(() => bfclTypeToJsonType('any')).toThrow(/invalid type/);
    expect(() => bfclTypeToJsonType('Dict')).toThrow(/invalid type/);
  });

  it('converts recursively, orders fields like inspect JSONSchema and drops unset ones', () => {
    const tool = bfclToolSpec(ROUTE.function[0]!);
    expect(JSON.stringify(tool)).toBe(
      JSON.stringify({
        type: 'function',
        function: {
          name: 'plan_route',
          description: 'Plan a route.',
          parameters: {
            type: 'object',
            properties: {
              options: {
                type: 'object',
                description: 'Route options.',
                properties: { avoid_tolls: { type: 'boolean', description: 'Avoid tolls.', default: false } },
              },
              height: { type: 'number', description: 'Unused here.' },
              points: {
                type: 'array',
                description: 'Waypoints.',
                items: { type: 'array', description: 'A point.', items: { type: 'number' } },
              },
            },
            required: ['points'],
            additionalProperties: false,
          },
        },
      }),
    );
  });

  it('drops empty properties/items and null defaults, keeps enum and required', () => {
    expect(
      toolParamSchema({ type: 'dict', properties: {}, items: {}, default: null, enum: ['a'], required: [] }),
    ).toEqual({ type: 'object', enum: ['a'], required: [] });
  });

  it('refuses a function without properties, as the reference asserts', () => {
    expect(() =>
      bfclToolSpec({ name: 'pwd', description: 'x', parameters: { type: 'dict', properties: {} } }),
    ).toThrow(/no parameter properties/);
  });
});

describe('Arrow key order', () => {
  it('orders every record by the file-wide first appearance of its keys', () => {
    const functions = [ROUTE.function, RECTANGLE.function];
    const order = arrowKeyOrder(functions);
    // `height` appears after `options` in the first record, so the second record's
    // {width, height} becomes {height, width}.
    const reordered = applyKeyOrder(RECTANGLE.function, order);
    expect(Object.keys(reordered[0]!.parameters.properties as object)).toEqual(['height', 'width']);
    const unchanged = applyKeyOrder(ROUTE.function, order);
    expect(Object.keys(unchanged[0]!.parameters.properties as object)).toEqual([
      'options',
      'height',
      'points',
    ]);
  });
});

describe('parseToolCallArguments (inspect parse_tool_call)', () => {
  const tools: ToolSpec[] = [bfclToolSpec(RECTANGLE.function[0]!)];

  it('reads a JSON object after str.strip()', () => {
    expect(parseToolCallArguments('rectangle_area', '\n {"width": 3, "height": 4.5} \n', tools)).toEqual({
      width: 3,
      height: 4.5,
    });
  });

  it('leaves the arguments empty when the JSON object is malformed', () => {
    expect(parseToolCallArguments('rectangle_area', '{"width": 3,', tools)).toEqual({});
  });

  it('binds non-object arguments to the first parameter via YAML', () => {
    expect(parseToolCallArguments('rectangle_area', '7', tools)).toEqual({ width: 7 });
    expect(parseToolCallArguments('rectangle_area', '"text"', tools)).toEqual({ width: 'text' });
    expect(parseToolCallArguments('rectangle_area', '[1, 2]', tools)).toEqual({ width: [1, 2] });
    expect(parseToolCallArguments('rectangle_area', 'foo: [', tools)).toEqual({ width: 'foo: [' });
    expect(parseToolCallArguments('unknown_tool', '7', tools)).toEqual({});
  });
});

describe('scoreToolCalls (inspect_evals bfcl_scorer)', () => {
  const target = bfclTarget(RECTANGLE.ground_truth[0]!);
  const tools = [bfclToolSpec(RECTANGLE.function[0]!)];

  it('parses the target through the JSON round trip', () => {
    expect(target).toEqual({ function: 'rectangle_area', arguments: { width: 3, height: 4.5 } });
    expect(bfclTarget(ROUTE.ground_truth[0]!)).toEqual({
      function: 'plan_route',
      arguments: {
        points: [
          [0, 0],
          [2, 3],
        ],
        options: { avoid_tolls: true },
      },
    });
  });

  it('accepts the right call with any key order and Python-equal numbers', () => {
    expect(
      scoreToolCalls([call('rectangle_area', '{"height": 4.5, "width": 3.0}')], target, tools).value,
    ).toBe(1);
    expect(scoreToolCalls([call('rectangle_area', '{"width": 3, "height": 4.5}')], target, tools).value).toBe(
      1,
    );
  });

  it('needs exactly one tool call', () => {
    const right = call('rectangle_area', '{"width": 3, "height": 4.5}');
    expect(scoreToolCalls([], target, tools)).toMatchObject({ value: 0, details: { toolCallCount: 0 } });
    expect(scoreToolCalls([right, right], target, tools)).toMatchObject({
      value: 0,
      details: { toolCallCount: 2 },
    });
  });

  it('rejects a different name, value, type, extra or missing argument', () => {
    const cases = [
      call('rectangle_areas', '{"width": 3, "height": 4.5}'),
      call('rectangle_area', '{"width": 3, "height": 4.6}'),
      call('rectangle_area', '{"width": "3", "height": 4.5}'),
      call('rectangle_area', '{"width": 3, "height": 4.5, "unit": "cm"}'),
      call('rectangle_area', '{"width": 3}'),
      call('rectangle_area', '{"width": 3, "height": 4.5'),
    ];
    for (const c of cases) expect(scoreToolCalls([c], target, tools).value, c.function.arguments).toBe(0);
  });

  it('keeps list order and nesting', () => {
    const routeTarget = bfclTarget(ROUTE.ground_truth[0]!);
    const routeTools = [bfclToolSpec(ROUTE.function[0]!)];
    const good = call('plan_route', '{"options": {"avoid_tolls": 1}, "points": [[0, 0.0], [2, 3]]}');
    const swapped = call('plan_route', '{"options": {"avoid_tolls": true}, "points": [[2, 3], [0, 0]]}');
    expect(scoreToolCalls([good], routeTarget, routeTools).value).toBe(1);
    expect(scoreToolCalls([swapped], routeTarget, routeTools).value).toBe(0);
  });
});

describe('bfclBenchmark', () => {
  const ctx = localAssets(
    writeAssetFiles('bfcl', { train: ['BFCL_v3_exec_simple.jsonl', jsonLines([ROUTE, RECTANGLE])] }),
  );

  it('has the reference defaults and pins the PR revision', () => {
    expect(bfclBenchmark.usesTools).toBe(true);
    expect(bfclBenchmark.defaults).toMatchObject({
      maxTokensLadder: [16000, 12000, 8000],
      agentLimit: null,
      referenceConcurrency: 6,
      gpuMemoryUtilization: 0.8,
    });
    expect(bfclBenchmark.weight).toBe(0.0746078457817324);
    expect(bfclBenchmark.assets[0]!.url).toBe(
      'https://huggingface.co/datasets/gorilla-llm/Berkeley-Function-Calling-Leaderboard/resolve/1bf8bbc3c0e35d04d00339c223a3fd653aa195ac/BFCL_v3_exec_simple.jsonl',
    );
  });

  it('builds the request from the question turn, Arrow-ordered tools and tool_choice auto', async () => {
    const prepared = await bfclBenchmark.prepare(ctx);
    expect(prepared.samples.map((s) => s.id)).toEqual(['exec_simple_901', 'exec_simple_900']);
    const request = prepared.request(prepared.samples[1]!, { seed: null });
    expect(request.messages).toEqual([
      { role: 'user', content: 'What is the area of a 3 by 4.5 rectangle?' },
    ]);
    expect(request.toolChoice).toBe('auto');
    expect(request.tools).toHaveLength(1);
    expect(Object.keys(request.tools![0]!.function.parameters.properties as object)).toEqual([
      'height',
      'width',
    ]);
  });

  it('scores replies by their tool calls and aggregates accuracy only', async () => {
    const prepared = await bfclBenchmark.prepare(ctx);
    const [route, rectangle] = prepared.samples as [
      (typeof prepared.samples)[0],
      (typeof prepared.samples)[0],
    ];
    const scoreOf = (sample: typeof route, calls: ToolCall[]) =>
      prepared.score(sample, toolCallReply(calls), { request: prepared.request(sample, { seed: null }) });
    const right = await scoreOf(rectangle, [call('rectangle_area', '{"width": 3, "height": 4.5}')]);
    const wrong = await scoreOf(route, [call('plan_route', '{"points": [[0, 0]]}')]);
    const none = await scoreOf(route, []);
    expect([right.value, wrong.value, none.value]).toEqual([1, 0, 0]);
    const metrics = bfclBenchmark.aggregate([
      { sample: rectangle, score: right },
      { sample: route, score: wrong },
      { sample: route, score: none },
      { sample: rectangle, score: right },
    ]);
    expect(metrics).toEqual({ accuracy: 0.5 });
  });

  it('selects the first N', async () => {
    const prepared = await bfclBenchmark.prepare(ctx);
    expect(bfclBenchmark.select(prepared.samples, { limit: 1 }).map((s) => s.id)).toEqual([
      'exec_simple_901',
    ]);
    expect(bfclBenchmark.select(prepared.samples, { limit: null })).toHaveLength(2);
  });
});
