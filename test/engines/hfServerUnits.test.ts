import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';

/**
 * The hf server's pure functions (hermes parsing, context limit, sampling defaults), run in plain
 * python3: the module imports torch and transformers only when it loads a model.
 */
const bad = 'Sure <tool_call>{"name": "f", "arguments": {oops}}</tool_call>';
const nameless = '<tool_call>{"arguments": {}}</tool_call>';
const qwenGen = '{"temperature": 0.6, "top_p": 0.95, "top_k": 20, "do_sample": True, "eos_token_id": [1, 2]}';

// Every expression registered with py() while vitest collects the tests runs in one python3 process.
const expressions: string[] = [];
let results: unknown[] = [];
function py(expression: string): () => unknown {
  const index = expressions.push(expression) - 1;
  return () => results[index];
}

beforeAll(() => {
  const script = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'python'))})`,
    'from ptb_hf_server import *',
    'def err(fn):',
    '    try:',
    '        fn()',
    '    except ApiError as e:',
    '        return {"status": e.status, "message": e.message, "param": e.param}',
    '    return None',
    'out = []',
    ...expressions.map((e) => `out.append(${e})`),
    'print(json.dumps(out))',
  ].join('\n');
  results = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8' }));
});

type Parsed = [string | null, { id: string; type: string; function: { name: string; arguments: string } }[]];

describe('parse_hermes (vLLM hermes tool-call parser behaviour)', () => {
  const case0 = py('parse_hermes("The answer is 4.")');
  it('leaves text without a tool-call tag alone', () => {
    expect(case0()).toEqual(['The answer is 4.', []]);
  });

  const case1 = py(
    `parse_hermes('Let me check.\\n<tool_call>\\n{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}\\n</tool_call>\\n<tool_call>{"name": "noop", "arguments": {}}</tool_call>')`,
  );
  it('extracts calls, keeps the text before the first tag as content, serialises arguments', () => {
    const [content, calls] = case1() as Parsed;
    expect(content).toBe('Let me check.\n');
    expect(calls.map((c) => c.function.name)).toEqual(['get_weather', 'noop']);
    expect(JSON.parse(calls[0]!.function.arguments)).toEqual({ city: 'Zürich', days: 2 });
    expect(calls[0]!.function.arguments).toContain('Zürich'); // ensure_ascii=False, as vLLM
    expect(calls[0]!.type).toBe('function');
    expect(calls[0]!.id).toMatch(/^chatcmpl-tool-/);
    expect(calls[0]!.id).not.toBe(calls[1]!.id);
  });

  const case2 = py(`parse_hermes('<tool_call>{"name": "f", "arguments": {"x": 1}}')`);
  it('gives null content when the output starts with the call, and parses an unclosed last call', () => {
    const [content, calls] = case2() as Parsed;
    expect(content).toBeNull();
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0]!.function.arguments)).toEqual({ x: 1 });
  });

  const case3 = py(`parse_hermes(${JSON.stringify(bad)})`);
  const case4 = py(`parse_hermes(${JSON.stringify(nameless)})`);
  it('parses nothing and keeps the whole text when a call is not valid JSON or has no name', () => {
    expect(case3()).toEqual([bad, []]);
    expect(case4()).toEqual([nameless, []]);
  });
});

describe('max_context_length (vLLM max_model_len from config.json)', () => {
  const case5 = py('max_context_length({"max_position_embeddings": 40960})');
  const case6 = py('max_context_length({"max_position_embeddings": 4096, "seq_length": 2048})');
  const case7 = py('max_context_length({"text_config": {"max_position_embeddings": 8192}})');
  const case8 = py(
    'max_context_length({"max_position_embeddings": 32768, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}})',
  );
  const case9 = py(
    'max_context_length({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})',
  );
  it('takes the smallest context key and applies rope scaling factors', () => {
    expect(case5()).toBe(40960);
    expect(case6()).toBe(2048);
    expect(case7()).toBe(8192);
    expect(case8()).toBe(131072);
    expect(case9()).toBe(131072);
  });
});

describe('resolve_sampling (generation_config defaults, request overrides, context check)', () => {
  const case10 = py(`default_sampling(${qwenGen})`);
  const case11 = py(`resolve_sampling({"max_tokens": 10}, default_sampling(${qwenGen}), 5, 100).__dict__`);
  const case12 = py(
    `resolve_sampling({"max_tokens": 10, "temperature": 0, "top_k": -1, "seed": 7}, default_sampling(${qwenGen}), 5, 100).__dict__`,
  );
  it('takes defaults from generation_config.json and lets the request override them', () => {
    expect(case10()).toEqual({ temperature: 0.6, top_p: 0.95, top_k: 20 });
    const fromConfig = case11();
    expect(fromConfig).toMatchObject({
      max_tokens: 10,
      temperature: 0.6,
      top_p: 0.95,
      top_k: 20,
      seed: null,
    });
    const overridden = case12();
    expect(overridden).toMatchObject({ temperature: 0, top_p: 0.95, top_k: 0, seed: 7 });
  });

  const case13 = py('resolve_sampling({"max_tokens": 3}, {}, 5, 100).__dict__');
  it("uses vLLM's neutral sampling when the checkpoint sets none", () => {
    expect(case13()).toMatchObject({
      temperature: 1,
      top_p: 1,
      top_k: 0,
      min_p: 0,
      repetition_penalty: 1,
    });
  });

  const case14 = py('resolve_sampling({}, {}, 30, 100).max_tokens');
  const case15 = py('resolve_sampling({}, default_sampling({"max_new_tokens": 20}), 30, 100).max_tokens');
  const case16 = py(
    'resolve_sampling({"max_completion_tokens": 9, "max_tokens": 50}, {}, 30, 100).max_tokens',
  );
  it('fills a missing max_tokens with the rest of the context, capped by max_new_tokens', () => {
    expect(case14()).toBe(70);
    expect(case15()).toBe(20);
    expect(case16()).toBe(9);
  });

  const case17 = py('err(lambda: resolve_sampling({"max_tokens": 71}, {}, 30, 100))');
  const case18 = py('err(lambda: resolve_sampling({"max_tokens": 70}, {}, 30, 100))');
  const case19 = py('err(lambda: resolve_sampling({}, {}, 100, 100))');
  it('refuses prompt + max_tokens over the context with a 400, as vLLM does', () => {
    const tooMany = case17() as { status: number; message: string };
    expect(tooMany.status).toBe(400);
    expect(tooMany.message).toContain(
      'maximum context length is 100 tokens and your request has 30 input tokens',
    );
    expect(case18()).toBeNull();
    const longPrompt = case19() as { status: number; message: string };
    expect(longPrompt.status).toBe(400);
    expect(longPrompt.message).toContain('your request has 100 input tokens');
  });

  const case20 = py('err(lambda: resolve_sampling({"max_tokens": "5"}, {}, 1, 100))');
  const case21 = py('err(lambda: resolve_sampling({"max_tokens": 0}, {}, 1, 100))');
  const case22 = py('err(lambda: resolve_sampling({"top_p": 1.5}, {}, 1, 100))');
  it('rejects malformed numbers', () => {
    expect(case20()).toMatchObject({ status: 400, param: 'max_tokens' });
    expect(case21()).toMatchObject({ status: 400 });
    expect(case22()).toMatchObject({ status: 400, param: 'top_p' });
  });

  const case23 = py(
    'resolve_sampling({"max_tokens": 3}, {}, 1, 100).batch_key() == resolve_sampling({"max_tokens": 9}, {}, 1, 100).batch_key()',
  );
  const case24 = py(
    'resolve_sampling({"temperature": 0.5}, {}, 1, 100).batch_key() == resolve_sampling({"temperature": 0.7}, {}, 1, 100).batch_key()',
  );
  const case24b = py(
    'resolve_sampling({"seed": 1}, {}, 1, 100).batch_key() == resolve_sampling({"seed": 2}, {}, 1, 100).batch_key()',
  );
  it('keeps requests with different sampling out of one batch; seeds share one (each row has its own generator)', () => {
    expect(case23()).toBe(true);
    expect(case24()).toBe(false);
    expect(case24b()).toBe(true);
  });
});

describe('message normalisation and batch shapes', () => {
  const case25 = py(
    'normalize_messages([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\\"x\\": 1}"}}]}])',
  );
  const case26 = py('err(lambda: normalize_messages([]))');
  it('joins text parts and turns tool-call argument strings into objects for the template', () => {
    const out = case25() as { content: unknown; tool_calls?: { function: { arguments: unknown } }[] }[];
    expect(out[0]!.content).toBe('a\nb');
    expect(out[1]!.tool_calls![0]!.function.arguments).toEqual({ x: 1 });
    expect(case26()).toMatchObject({ status: 400, param: 'messages' });
  });

  const case27 = py('[bucket(n, 64) for n in (1, 2, 3, 5, 6, 33, 64)]');
  const case28 = py('bucket(40, 48)');
  it('rounds batch sizes up to powers of two within the cap', () => {
    expect(case27()).toEqual([1, 2, 4, 8, 8, 64, 64]);
    expect(case28()).toBe(48);
  });
});
