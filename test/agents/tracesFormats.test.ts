import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseClaudeStreamJson } from '../../src/agents/traces/claudeStreamJson.ts';
import { parseCodexJson } from '../../src/agents/traces/codexJson.ts';
import { parseGeminiStreamJson } from '../../src/agents/traces/geminiStreamJson.ts';
import { parseOpenCodeJson } from '../../src/agents/traces/openCodeJson.ts';
import { parsePlainText } from '../../src/agents/traces/plainText.ts';
import { parseTraceFile } from '../../src/agents/traces/registry.ts';
import { renderTrajectory } from '../../src/agents/traces/render.ts';
import { stripTimestampPrefix } from '../../src/agents/traces/timestampPrefix.ts';
import type { TraceFormat } from '../../src/agents/types.ts';
import { type Trajectory, type TrajectoryEvent, TrajectorySchema } from '../../src/core/trial.ts';

const fixtureDir = resolve(import.meta.dirname, '../fixtures/traces');
const fixturePath = (name: string) => resolve(fixtureDir, name);
const fixtureLines = (name: string) => readFileSync(fixturePath(name), 'utf8').split('\n');

function kinds(t: Trajectory): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of t.events) counts[e.kind] = (counts[e.kind] ?? 0) + 1;
  return counts;
}

function only(t: Trajectory, pred: (e: TrajectoryEvent) => boolean): TrajectoryEvent {
  const found = t.events.filter(pred);
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** Properties every parsed trace must have, whatever its format. */
function checkInvariants(t: Trajectory, format: TraceFormat): void {
  expect(TrajectorySchema.parse(t)).toEqual(t);
  expect(t.format).toBe(format);
  expect(t.events.map((e) => e.index)).toEqual(t.events.map((_, i) => i));
  expect(t.totals.messages).toBe(t.events.filter((e) => e.kind === 'message').length);
  expect(t.totals.toolCalls).toBe(t.events.filter((e) => e.kind === 'tool_call').length);
  expect(t.unparsedLines).toBe(t.events.filter((e) => e.kind === 'raw').length);
  // Every result follows the call it answers.
  const seen = new Set<string>();
  for (const e of t.events) {
    if (e.kind === 'tool_call' && e.tool?.id) seen.add(e.tool.id);
    if (e.kind === 'tool_result') {
      expect(e.tool?.id, `result #${e.index} has an id`).toBeTruthy();
      expect(seen.has(e.tool!.id!), `result ${e.tool?.id} follows its call`).toBe(true);
    }
  }
  // The fixtures are timestamp-prefixed on every line.
  expect(t.events.filter((e) => !e.ts)).toEqual([]);
}

function resultFor(t: Trajectory, id: string): TrajectoryEvent {
  return only(t, (e) => e.kind === 'tool_result' && e.tool?.id === id);
}

describe('Claude Code stream-json', () => {
  const t = parseClaudeStreamJson(fixtureLines('claude-stream-json/run.txt'));

  it('turns every line into one event of the right kind', () => {
    checkInvariants(t, 'claude-stream-json');
    expect(kinds(t)).toEqual({
      raw: 3,
      system: 3,
      reasoning: 1,
      message: 2,
      tool_call: 4,
      tool_result: 4,
      result: 1,
    });
    expect(t.sessionId).toBe('3f2c9a1e-8b7d-4e21-9c55-1a2b3c4d5e6f');
    expect(t.model).toBe('claude-opus-4-6');
  });

  it('links tool calls to their results and keeps errors', () => {
    const call = only(t, (e) => e.kind === 'tool_call' && e.tool?.id === 'toolu_01Xp9Ls4Wd2Vb7Nc3Fk6Hj8Q');
    expect(call.tool?.name).toBe('Bash');
    expect(call.tool?.input).toMatchObject({ command: expect.stringContaining('import trl') });
    const failed = resultFor(t, 'toolu_01Xp9Ls4Wd2Vb7Nc3Fk6Hj8Q');
    expect(failed.isError).toBe(true);
    expect(failed.tool?.name).toBe('Bash');
    expect(failed.text).toContain("No module named 'trl'");
    // content given as a list of text blocks
    expect(resultFor(t, 'toolu_01Rd5Kc2Jm8Np4Qx7Ws3Ty6Z').text).toContain('from vllm import LLM');
    expect(resultFor(t, 'toolu_01Hn3bX8VwPq2sYk5Rt7LmD9').isError).toBe(false);
  });

  it('takes tokens and cost from the result line (all models)', () => {
    expect(t.totals).toMatchObject({
      inputTokens: 120 + 150_000 + 25_000 + 2000,
      cacheReadTokens: 150_000,
      outputTokens: 3400 + 300,
      costUsd: 1.2345,
    });
    const result = only(t, (e) => e.kind === 'result');
    expect(result.isError).toBe(false);
    expect(result.text).toContain('0.62 accuracy');
  });

  it('reads the timestamp prefix and keeps unknown and broken lines', () => {
    expect(t.events[0]).toMatchObject({
      kind: 'raw',
      ts: '2025-11-20T10:00:00Z',
      text: expect.stringContaining('CUDA'),
    });
    expect(only(t, (e) => e.kind === 'reasoning').ts).toBe('2025-11-20T10:00:09Z');
    expect(t.unparsedLines).toBe(3);
    const unknown = only(t, (e) => (e.raw as { type?: string } | undefined)?.type === 'stream_event');
    expect(unknown.kind).toBe('system');
    const last = t.events.at(-1)!;
    expect(last.kind).toBe('raw');
    expect(last.text).toMatch(/"status":"shut$/);
  });

  it('sums per-message usage once per API message when a killed run has no result line', () => {
    const cut = parseClaudeStreamJson(fixtureLines('claude-stream-json/timeout.txt'));
    checkInvariants(cut, 'claude-stream-json');
    expect(cut.unparsedLines).toBe(1);
    // msg_01Qv... appears on three lines (output 8, 8, 152): counted once, with its last usage.
    expect(cut.totals).toMatchObject({
      inputTokens: 4 + 6021 + 11_234 + (2 + 1502 + 17_255),
      cacheReadTokens: 11_234 + 17_255,
      outputTokens: 152 + 61,
      costUsd: null,
    });
  });

  it('renders commands, files and totals', () => {
    const text = renderTrajectory(t);
    expect(text).toContain('$ ls -la /home/ben/task && bash /home/ben/task/timer.sh');
    expect(text).toContain("$ python -c 'import trl, torch; print(trl.__version__, torch.__version__)'");
    expect(text).toContain('file: /home/ben/task/evaluate.py');
    expect(text).toContain('tool result Bash [toolu_01Xp9Ls4Wd2Vb7Nc3Fk6Hj8Q] · error');
    expect(text).toContain('assistant · turn 2 · 19:42:05 (+9:42:05)');
    expect(text).toContain('tokens: input 177,120 (cache read 150,000) · output 3,700');
    expect(text).toContain('cost: $1.2345');
    expect(text).toContain('wall clock: 2025-11-20T10:00:00Z → 2025-11-20T19:42:07Z (9:42:07)');
  });
});

describe('Codex exec --json, item protocol', () => {
  const t = parseCodexJson(fixtureLines('codex-json/items.txt'));

  it('maps every item type', () => {
    checkInvariants(t, 'codex-json');
    expect(kinds(t)).toEqual({
      system: 12,
      reasoning: 1,
      tool_call: 6,
      tool_result: 5,
      raw: 2,
      error: 3,
      message: 2,
      usage: 2,
    });
    expect(t.sessionId).toBe('0199a213-81c0-7800-8aa1-bbab2a035a53');
    const names = t.events.filter((e) => e.kind === 'tool_call').map((e) => e.tool?.name);
    expect(names).toEqual(['shell', 'web_search', 'docs.search', 'apply_patch', 'shell', 'shell']);
  });

  it('links command, search, MCP and file-change items by id', () => {
    const ok = resultFor(t, 'item_1');
    expect(ok).toMatchObject({ exitCode: 0, isError: false });
    expect(ok.text).toContain('Remaining time: 9:59');
    const failed = resultFor(t, 'item_6');
    expect(failed).toMatchObject({ exitCode: 1, isError: true });
    expect(failed.text).toContain('CUDA out of memory');
    expect(resultFor(t, 'item_3').text).toBe('search: Qwen3 1.7B GSM8K supervised fine-tuning learning rate');
    expect(resultFor(t, 'item_4').text).toContain('SFTConfig(packing=True)');
    expect(resultFor(t, 'item_5').text).toBe(
      'add /home/ben/task/train.py\nupdate /home/ben/task/prepare_data.py',
    );
    // Item ids restart in each resumed process: the fourth run's item_0 stays distinct.
    const lastCall = t.events.filter((e) => e.kind === 'tool_call').at(-1)!;
    expect(lastCall.tool?.id).toBe('item_0#4');
    expect(t.events.some((e) => e.kind === 'tool_result' && e.tool?.id === 'item_0#4')).toBe(false);
  });

  it('sums turn.completed usage over resumed runs; errors and the plan are kept', () => {
    expect(t.totals).toMatchObject({
      inputTokens: 24_763 + 30_211,
      cacheReadTokens: 21_504 + 28_160,
      outputTokens: 1122 + 415,
      reasoningTokens: 0,
      costUsd: null,
    });
    const errors = t.events.filter((e) => e.kind === 'error').map((e) => e.text);
    expect(errors).toEqual([
      'stream disconnected before completion: retrying 1/5',
      'stream error: unexpected status 503 Service Unavailable',
      'exceeded retry limit, last status: 503 Service Unavailable',
    ]);
    const plans = t.events.filter((e) => e.text?.startsWith('plan:'));
    expect(plans).toHaveLength(3);
    expect(plans[2]!.text).toContain('[x] Save the model to final_model/');
    expect(t.events.some((e) => e.kind === 'system' && e.text === 'event item.plan.delta')).toBe(true);
    expect(t.unparsedLines).toBe(2);
    expect(t.events.at(-1)).toMatchObject({ kind: 'raw', ts: '2025-11-21T18:05:01Z' });
  });

  it('renders unwrapped shell commands', () => {
    const text = renderTrajectory(t);
    expect(text).toContain('$ ls -la && bash timer.sh');
    expect(text).toContain('$ python train.py --epochs 2 --batch-size 8 --resume');
    expect(text).toContain('tool result shell [item_6] · exit 1 · error');
    expect(text).toContain('tokens: input 54,974 (cache read 49,664) · output 1,537');
    expect(text).toContain('cost: not reported by the agent');
  });
});

describe('Codex exec --json, legacy event protocol', () => {
  const t = parseCodexJson(fixtureLines('codex-json/legacy.txt'));

  it('unwraps {id, msg} envelopes and handles every legacy event', () => {
    checkInvariants(t, 'codex-json');
    expect(kinds(t)).toEqual({
      raw: 3,
      system: 7,
      message: 3,
      reasoning: 2,
      tool_call: 6,
      tool_result: 6,
      usage: 2,
      error: 3,
    });
    expect(t.sessionId).toBe('5b7e6c2a-1d34-4f8e-9a0b-2c4d6e8f0a1b');
    expect(t.model).toBe('gpt-5-codex');
    expect(t.events.find((e) => e.text?.startsWith('session configured'))?.text).toContain(
      'sandbox danger-full-access',
    );
  });

  it('joins consecutive deltas into one event and drops the repeated final text', () => {
    const reasoning = t.events.filter((e) => e.kind === 'reasoning').map((e) => e.text);
    expect(reasoning).toEqual([
      '**Planning the fine-tuning run**',
      'Check GPU memory first, then pick a batch size.',
    ]);
    const agent = t.events.filter((e) => e.kind === 'message' && e.role === 'assistant').map((e) => e.text);
    expect(agent).toEqual(['Training ran out of memory at batch size 32; retrying with batch size 8.']);
    // Output deltas of a command cut off by the time limit: base64 decoded and joined.
    const open = resultFor(t, 'call_T3cc');
    expect(open.text).toBe('step 10 loss 1.2310\nstep 20 loss 0.9874\n');
    expect(open.exitCode).toBeNull();
    expect(open.raw).toEqual({ incomplete: true });
  });

  it('links exec, MCP, patch and web-search calls; reads exit codes', () => {
    expect(resultFor(t, 'call_Xk2vB7')).toMatchObject({ exitCode: 0, isError: false });
    expect(resultFor(t, 'call_T2aa')).toMatchObject({ exitCode: 1, isError: true });
    expect(resultFor(t, 'call_M1pQ').text).toContain('trades compute for activation memory');
    expect(resultFor(t, 'call_P9zR')).toMatchObject({
      isError: false,
      text: expect.stringContaining('A /home/ben/task/train.py'),
    });
    expect(resultFor(t, 'ws_0a1b').text).toBe('search: Qwen3 SFT out of memory gradient checkpointing');
    const call = only(t, (e) => e.kind === 'tool_call' && e.tool?.id === 'call_Xk2vB7');
    expect(call.tool?.input).toMatchObject({
      command: 'ls -la && nvidia-smi --query-gpu=name,memory.total --format=csv',
    });
  });

  it('takes tokens from the last running session total', () => {
    expect(t.totals).toMatchObject({
      inputTokens: 19_876,
      cacheReadTokens: 8064,
      outputTokens: 1390,
      reasoningTokens: 832,
      costUsd: null,
    });
    expect(t.events.filter((e) => e.kind === 'usage').map((e) => e.usage?.inputTokens)).toEqual([
      8123, 11_753,
    ]);
    expect(t.events.map((e) => e.text)).toContain(
      'unexpected status 500 Internal Server Error (internal_server_error)',
    );
    expect(t.events.map((e) => e.text)).toContain('turn aborted: interrupted');
  });

  it('adds up session totals across processes that restart them (reprompt loop)', () => {
    const count = (input: number, output: number) =>
      `{"id":"0","msg":{"type":"token_count","info":{"total_token_usage":{"input_tokens":${input},"cached_input_tokens":0,"output_tokens":${output},"reasoning_output_tokens":0,"total_tokens":${input + output}},"last_token_usage":null,"model_context_window":null},"rate_limits":null}}`;
    const two = parseCodexJson([count(100, 10), count(300, 30), count(50, 5), count(90, 9)]);
    expect(two.totals).toMatchObject({ inputTokens: 390, outputTokens: 39 });
  });
});

describe('Gemini CLI stream-json', () => {
  const t = parseGeminiStreamJson(fixtureLines('gemini-stream-json/stream.txt'));

  it('maps init, message, tool_use, tool_result, error and result', () => {
    checkInvariants(t, 'gemini-stream-json');
    expect(kinds(t)).toEqual({
      raw: 3,
      system: 2,
      message: 3,
      tool_call: 3,
      tool_result: 3,
      error: 2,
      result: 1,
    });
    expect(t.sessionId).toBe('8d3c2b1a-6f5e-4d4c-9b3a-2f1e0d9c8b7a');
    expect(t.model).toBe('gemini-3-pro-preview');
  });

  it('merges delta fragments of one role into one message', () => {
    const assistant = t.events
      .filter((e) => e.kind === 'message' && e.role === 'assistant')
      .map((e) => e.text);
    expect(assistant[0]).toBe("I'll start by listing the task files and reading evaluate.py.");
    expect(assistant).toHaveLength(2);
  });

  it('links tools by tool_id, marks failures, separates warnings from errors', () => {
    const failed = resultFor(t, 'run_shell_command-1763888490005-c01d9a33');
    expect(failed.isError).toBe(true);
    expect(failed.text).toContain("No module named 'peft'");
    expect(resultFor(t, 'read_file-1763888411904-7b2d0e91').isError).toBe(false);
    const errors = t.events.filter((e) => e.kind === 'error');
    expect(errors.map((e) => e.isError)).toEqual([false, true]);
  });

  it('takes tokens from result.stats', () => {
    expect(t.totals).toMatchObject({
      inputTokens: 405_112,
      cacheReadTokens: 301_220,
      outputTokens: 7765,
      costUsd: null,
    });
    expect(only(t, (e) => e.kind === 'result').usage?.inputTokens).toBe(405_112);
  });

  it('renders a list-valued command shell-quoted', () => {
    const text = renderTrajectory(t);
    expect(text).toContain("$ python train.py --lr 2e-5 --run-name 'sft v1'");
    expect(text).toContain('$ ls -la /home/ben/task');
    expect(text).toContain('tokens: input 405,112 (cache read 301,220) · output 7,765');
  });

  it('falls back to the event timestamp when a line has no prefix', () => {
    const bare = parseGeminiStreamJson(
      fixtureLines('gemini-stream-json/stream.txt').map(stripTimestampPrefix),
    );
    expect(bare.events[1]!.ts).toBe('2025-11-23T09:00:02.118Z');
    expect(bare.events[0]!.ts).toBeNull();
  });
});

describe('Gemini CLI legacy method/response shape', () => {
  const t = parseGeminiStreamJson(fixtureLines('gemini-stream-json/legacy.txt'));

  it('reads candidates parts: thoughts, text, function calls and responses, inline data', () => {
    checkInvariants(t, 'gemini-stream-json');
    expect(kinds(t)).toEqual({
      raw: 3,
      reasoning: 1,
      message: 3,
      tool_call: 2,
      usage: 3,
      tool_result: 2,
      system: 2,
      error: 1,
    });
    expect(only(t, (e) => e.kind === 'reasoning').text).toBe(
      '**Planning** I will inspect the task directory first.',
    );
    // Responses without ids are linked to the oldest open call of the same function.
    expect(resultFor(t, 'run_shell_command#1').text).toContain('timer.sh');
    expect(resultFor(t, 'run_shell_command#2').text).toContain('epoch 2 loss 0.66');
    expect(t.events.some((e) => e.text === 'inline data (image/png)')).toBe(true);
    expect(only(t, (e) => e.kind === 'error').text).toContain('Resource has been exhausted');
  });

  it('sums the final usageMetadata of each call', () => {
    expect(t.totals).toMatchObject({
      inputTokens: 9120 + 9480 + 10_020,
      outputTokens: 64 + 41 + 12,
      cacheReadTokens: 8192 + 9216,
      reasoningTokens: 128 + 40,
    });
    expect(renderTrajectory(t)).toContain('$ python train.py --lr 2e-5');
  });
});

describe('OpenCode run --format json', () => {
  const t = parseOpenCodeJson(fixtureLines('opencode-json/run.txt'));

  it('maps step_start, text, reasoning, tool_use, step_finish and error', () => {
    checkInvariants(t, 'opencode-json');
    expect(kinds(t)).toEqual({
      system: 3,
      message: 2,
      reasoning: 1,
      tool_call: 4,
      tool_result: 4,
      usage: 3,
      error: 1,
      raw: 2,
    });
    expect(t.sessionId).toBe('ses_5a1b2c3d4e5fAbCdEfGhIjKl');
    expect(only(t, (e) => e.kind === 'error').text).toBe('APIError: Overloaded');
  });

  it('splits a finished tool part into a call (at its start time) and a result', () => {
    const call = only(t, (e) => e.kind === 'tool_call' && e.tool?.id === 'toolu_01AbCdEfGh');
    expect(call.ts).toBe('2025-11-24T09:00:07.118Z');
    expect(call.tool?.input).toEqual({ command: 'ls -la', description: 'Lists files in the task directory' });
    const failed = resultFor(t, 'toolu_01YzAbCdEf');
    expect(failed.isError).toBe(true);
    expect(failed.text).toContain("No module named 'peft'");
    expect(resultFor(t, 'toolu_01IjKlMnOp').text).toContain('00001| import argparse');
  });

  it('sums step_finish tokens (cache added back into input) and cost', () => {
    expect(t.totals.inputTokens).toBe(2 + 11_020 + 5012 + (5 + 16_032 + 1203) + (3 + 17_235 + 410));
    expect(t.totals.cacheReadTokens).toBe(11_020 + 16_032 + 17_235);
    expect(t.totals.outputTokens).toBe(187 + 402 + 96);
    expect(t.totals.reasoningTokens).toBe(128);
    expect(t.totals.costUsd).toBeCloseTo(0.0421 + 0.0312 + 0.0155, 10);
  });

  it('renders bash as $ command and file tools by path', () => {
    const text = renderTrajectory(t);
    expect(text).toContain('$ python train.py --lora-r 16');
    expect(text).toContain('file: /home/ben/task/evaluate.py');
    expect(text).toContain('cost: $0.0888');
  });

  it('uses the epoch-ms timestamp when lines carry no prefix', () => {
    const bare = parseOpenCodeJson(fixtureLines('opencode-json/run.txt').map(stripTimestampPrefix));
    expect(bare.events[0]!.ts).toBe('2025-11-24T09:00:02.118Z');
  });
});

describe('plain text', () => {
  it('keeps every non-empty line as a raw event without counting it as unparsed', () => {
    const t = parsePlainText(fixtureLines('text/codexhigh.txt'));
    expect(TrajectorySchema.parse(t)).toEqual(t);
    expect(t.events).toHaveLength(24);
    expect(t.events.every((e) => e.kind === 'raw')).toBe(true);
    expect(t.unparsedLines).toBe(0);
    expect(t.events[3]).toMatchObject({ ts: '2025-11-25T07:00:00Z', text: 'model: gpt-5.1-codex' });
    expect(t.events.some((e) => e.text?.startsWith('{"note"'))).toBe(true);
    expect(renderTrajectory(t)).toContain('tokens used\n1,204,331');
  });

  it('a Codex run without --json parses as raw lines under codex-json too', () => {
    const t = parseCodexJson(fixtureLines('text/codexhigh.txt'));
    expect(t.events.filter((e) => e.kind === 'raw')).toHaveLength(23);
    expect(t.unparsedLines).toBe(23);
  });
});

describe('parseTraceFile', () => {
  it('gives the same trajectory as parsing the lines in memory', async () => {
    for (const [format, file] of [
      ['claude-stream-json', 'claude-stream-json/run.txt'],
      ['codex-json', 'codex-json/legacy.txt'],
      ['gemini-stream-json', 'gemini-stream-json/stream.txt'],
      ['opencode-json', 'opencode-json/run.txt'],
    ] as const) {
      const fromFile = await parseTraceFile(format, fixturePath(file));
      const parsers = {
        'claude-stream-json': parseClaudeStreamJson,
        'codex-json': parseCodexJson,
        'gemini-stream-json': parseGeminiStreamJson,
        'opencode-json': parseOpenCodeJson,
      };
      expect(fromFile).toEqual(parsers[format](fixtureLines(file)));
    }
  });
});
