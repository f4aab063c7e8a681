import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { streamTraceFile } from '../../src/agents/traces/registry.ts';
import { renderTraceFile } from '../../src/agents/traces/render.ts';
import { timestampLine } from '../../src/agents/traces/timestampPrefix.ts';

const TARGET_BYTES = 100 * 1024 * 1024;

// A collector we can call, so the test measures memory that is kept rather than garbage not yet
// collected.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const liveHeap = () => {
  collectGarbage();
  return process.memoryUsage().heapUsed;
};
const tmp = mkdtempSync(join(tmpdir(), 'ptb-traces-large-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A ~100 MB Claude Code trace: tool calls with multi-kilobyte outputs (training logs), a broken
 * line every 1,000 calls, the result line at the end. Returns how many calls it wrote.
 */
function writeLargeClaudeTrace(path: string): { calls: number; broken: number } {
  const fd = openSync(path, 'w');
  const start = Date.parse('2025-11-20T10:00:00Z');
  const log = Array.from({ length: 60 }, (_, i) => `step ${i} loss ${(2 - i / 40).toFixed(4)} lr 2e-05`).join(
    '\n',
  );
  let bytes = 0;
  let calls = 0;
  let broken = 0;
  let batch: string[] = [];
  const push = (second: number, body: string) => {
    const line = `${timestampLine(new Date(start + second * 1000), body)}\n`;
    batch.push(line);
    bytes += line.length;
    if (batch.length >= 2000) {
      writeSync(fd, batch.join(''));
      batch = [];
    }
  };
  push(
    0,
    JSON.stringify({
      type: 'system',
      subtype: 'init',
      session_id: 's-large',
      model: 'claude-opus-4-6',
      tools: ['Bash'],
    }),
  );
  // Serialise each line shape once; only the call number changes (generation stays fast).
  const callTemplate = JSON.stringify({
    type: 'assistant',
    message: {
      id: 'msg_@N@',
      role: 'assistant',
      model: 'claude-opus-4-6',
      content: [
        { type: 'tool_use', id: 'toolu_@N@', name: 'Bash', input: { command: 'python train.py --seed @N@' } },
      ],
      usage: {
        input_tokens: 3,
        cache_read_input_tokens: 1000,
        cache_creation_input_tokens: 20,
        output_tokens: 50,
      },
    },
    session_id: 's-large',
  }).split('@N@');
  const resultTemplate = JSON.stringify({
    type: 'user',
    message: {
      role: 'user',
      content: [{ type: 'tool_result', tool_use_id: 'toolu_@N@', content: `${log}\nrun @N@ done` }],
    },
    session_id: 's-large',
  }).split('@N@');
  while (bytes < TARGET_BYTES) {
    const n = String(calls);
    push(calls, callTemplate.join(n));
    push(calls + 1, resultTemplate.join(n));
    calls += 1;
    if (calls % 1000 === 0) {
      push(calls, '{"type":"assistant","message":{"id":"msg_cut","content":[{"type":"te');
      broken += 1;
    }
  }
  push(
    calls + 2,
    JSON.stringify({
      type: 'result',
      subtype: 'success',
      total_cost_usd: 321.5,
      usage: { input_tokens: 1, output_tokens: 2 },
    }),
  );
  writeSync(fd, batch.join(''));
  closeSync(fd);
  return { calls, broken };
}

describe('large traces', () => {
  it('streams a ~100 MB trace in bounded memory and reports its throughput', async () => {
    const path = join(tmp, 'solve_out.txt');
    const genStart = performance.now();
    const { calls, broken } = writeLargeClaudeTrace(path);
    const genMs = performance.now() - genStart;
    const mb = statSync(path).size / (1024 * 1024);

    const heapBefore = liveHeap();
    let peakHeap = heapBefore;
    let toolCalls = 0;
    let results = 0;
    let lastResultText = '';
    const t0 = performance.now();
    let gcMs = 0;
    const summary = await streamTraceFile('claude-stream-json', path, (e) => {
      if (e.kind === 'tool_call') toolCalls += 1;
      if (e.kind === 'tool_result') {
        results += 1;
        if (results % 10_000 === 0) {
          const g0 = performance.now();
          peakHeap = Math.max(peakHeap, liveHeap());
          gcMs += performance.now() - g0;
        }
        lastResultText = e.text ?? '';
      }
    });
    const parseMs = performance.now() - t0 - gcMs;
    const growthMb = (peakHeap - heapBefore) / (1024 * 1024);
    console.log(
      `large trace: ${mb.toFixed(1)} MB, ${calls} tool calls; generated in ${(genMs / 1000).toFixed(1)} s; ` +
        `streamed in ${(parseMs / 1000).toFixed(2)} s = ${(mb / (parseMs / 1000)).toFixed(0)} MB/s; ` +
        `peak live-heap growth ${growthMb.toFixed(1)} MB`,
    );

    expect(mb).toBeGreaterThan(99);
    expect(toolCalls).toBe(calls);
    expect(results).toBe(calls);
    expect(lastResultText).toContain(`run ${calls - 1} done`);
    expect(summary.unparsedLines).toBe(broken);
    expect(summary.totals).toMatchObject({
      toolCalls: calls,
      costUsd: 321.5,
      inputTokens: 1,
      outputTokens: 2,
    });
    expect(summary.sessionId).toBe('s-large');
    // Nothing proportional to the file is kept: the live heap stays a small fraction of the file.
    expect(growthMb).toBeLessThan(10);

    const r0 = performance.now();
    const out = join(tmp, 'solve_parsed.txt');
    await renderTraceFile('claude-stream-json', path, out);
    const renderMs = performance.now() - r0;
    console.log(
      `large trace rendered to ${(statSync(out).size / (1024 * 1024)).toFixed(1)} MB in ${(renderMs / 1000).toFixed(2)} s ` +
        `= ${(mb / (renderMs / 1000)).toFixed(0)} MB/s`,
    );
    expect(statSync(out).size).toBeGreaterThan(0);
  });
});
