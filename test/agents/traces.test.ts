import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCodexJson } from '../../src/agents/traces/codexJson.ts';
import {
  createTraceReader,
  forEachLine,
  parseTrace,
  parseTraceFile,
  TRACE_FORMATS,
} from '../../src/agents/traces/registry.ts';
import { clip, renderTraceFile, renderTrajectory } from '../../src/agents/traces/render.ts';
import { commandText, shellQuote } from '../../src/agents/traces/shellText.ts';
import {
  splitTimestampPrefix,
  stripTimestampPrefix,
  timestampLine,
} from '../../src/agents/traces/timestampPrefix.ts';
import type { TraceFormat } from '../../src/agents/types.ts';
import { UserError } from '../../src/core/errors.ts';
import type { TrajectoryEvent } from '../../src/core/trial.ts';

const tmp = mkdtempSync(join(tmpdir(), 'ptb-traces-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('timestamp prefix', () => {
  it('formats and splits the solve_out.txt prefix', () => {
    const line = timestampLine(new Date('2025-11-20T10:00:03.456Z'), '{"type":"turn.started"}');
    expect(line).toBe('[2025-11-20T10:00:03Z] {"type":"turn.started"}');
    expect(splitTimestampPrefix(line)).toEqual({
      ts: '2025-11-20T10:00:03Z',
      body: '{"type":"turn.started"}',
    });
    expect(splitTimestampPrefix('[2025-11-20T10:00:03.123Z] x')).toEqual({
      ts: '2025-11-20T10:00:03.123Z',
      body: 'x',
    });
    expect(stripTimestampPrefix('[2025-11-20T10:00:03Z] ')).toBe('');
  });

  it('leaves lines without a valid prefix alone', () => {
    for (const line of ['{"a":1}', '[INFO] starting', '[2025-11-20 10:00:03] x', '']) {
      expect(splitTimestampPrefix(line)).toEqual({ ts: null, body: line });
    }
  });
});

describe('shell text', () => {
  it('unwraps shell wrappers and quotes argv', () => {
    expect(commandText(['bash', '-lc', 'python train.py'])).toBe('python train.py');
    expect(commandText(['/bin/zsh', '-c', 'ls'])).toBe('ls');
    expect(commandText(['python', 'train.py', '--name', "it's v1"])).toBe(
      `python train.py --name 'it'\\''s v1'`,
    );
    expect(commandText("bash -lc 'python train.py --lr 2e-5'")).toBe('python train.py --lr 2e-5');
    expect(commandText(`bash -lc 'echo '"'"'hi'"'"''`)).toBe(`echo 'hi'`);
    expect(commandText('bash -lc ls')).toBe('ls');
    expect(commandText('make -j4')).toBe('make -j4');
    expect(commandText({ not: 'a command' })).toBeUndefined();
    expect(shellQuote('')).toBe("''");
  });
});

describe('trace reader', () => {
  it('never throws on broken input: truncated, non-object and odd-shaped lines become raw events', () => {
    const lines = [
      '[2025-11-20T10:00:00Z] {"type":"assistant","message":{"content":[{"type":"text","text":"cut',
      '[1,2,3]',
      '"a json string"',
      '{"type":"assistant","message":{"content":"plain string content"}}',
      '{"type":"user","message":{"content":[7,null,{"type":"image","source":{}}]}}',
      '{"type":"result","usage":"not an object","total_cost_usd":"free"}',
      '',
      '   ',
    ];
    for (const format of TRACE_FORMATS) {
      const t = parseTrace(format, lines);
      expect(t.events.length, format).toBeGreaterThan(0);
      if (format !== 'text') expect(t.unparsedLines, format).toBeGreaterThanOrEqual(3);
    }
    const claude = parseTrace('claude-stream-json', lines);
    expect(claude.events.map((e) => e.kind)).toEqual(['raw', 'raw', 'raw', 'message', 'system', 'result']);
    expect(claude.totals.costUsd).toBeNull();
  });

  it('strips \\r, caps huge texts and keeps the head', () => {
    const big = 'x'.repeat(5000);
    const t = parseTrace(
      'gemini-stream-json',
      [`{"type":"message","role":"assistant","content":"${big}"}\r`],
      { maxTextChars: 1000 },
    );
    expect(t.events[0]!.text!.startsWith('x'.repeat(1000))).toBe(true);
    expect(t.events[0]!.text).toContain('4000 more characters not kept');
    expect(t.unparsedLines).toBe(0);
  });

  it('delivers events as lines arrive and holds only a streaming block back', () => {
    const seen: TrajectoryEvent[] = [];
    const reader = createTraceReader('codex-json', (e) => seen.push(e));
    reader.line('{"id":"0","msg":{"type":"agent_message_delta","delta":"Hel"}}');
    reader.line('{"id":"0","msg":{"type":"agent_message_delta","delta":"lo"}}');
    expect(seen).toHaveLength(0);
    reader.line('{"type":"turn.started"}');
    expect(seen.map((e) => [e.kind, e.text])).toEqual([
      ['message', 'Hello'],
      ['system', 'turn started'],
    ]);
    const summary = reader.finish();
    expect(summary).toMatchObject({ eventCount: 2, unparsedLines: 0 });
    expect(() => reader.line('{}')).toThrow();
  });

  it('flushes items a killed run never completed', () => {
    const t = parseCodexJson([
      '{"type":"thread.started","thread_id":"t1"}',
      '{"type":"item.started","item":{"id":"item_3","type":"agent_message","text":"Half a sen"}}',
    ]);
    expect(t.events.at(-1)).toMatchObject({ kind: 'message', text: 'Half a sen' });
  });
});

describe('registry', () => {
  it('rejects an unknown format and a missing file with a user error', async () => {
    expect(() => parseTrace('yaml' as TraceFormat, [])).toThrow(UserError);
    await expect(parseTraceFile('codex-json', join(tmp, 'nope.txt'))).rejects.toThrow(UserError);
  });

  it('splits files on \\n only, across read chunks and multi-byte characters', async () => {
    const path = join(tmp, 'lines.txt');
    const long = `${'é'.repeat(700_000)}∑`; // > 1 MiB: crosses read-chunk boundaries mid-character
    writeFileSync(path, `first\r\nprogress 10%\rprogress 90%\n${long}\n\nlast without newline`);
    const lines: string[] = [];
    await forEachLine(path, (l) => lines.push(l));
    expect(lines).toEqual(['first\r', 'progress 10%\rprogress 90%', long, '', 'last without newline']);
  });
});

describe('render', () => {
  it('clips long outputs to the limit, keeping head and tail', () => {
    const text = `${'a'.repeat(3000)}${'z'.repeat(3000)}`;
    const out = clip(text, 2000);
    expect(out.startsWith('a'.repeat(1500))).toBe(true);
    expect(out.endsWith('z'.repeat(500))).toBe(true);
    expect(out).toContain('4,000 characters omitted');
    expect(clip('short', 2000)).toBe('short');
  });

  it('shows tool output clipped at 2,000 characters and groups raw lines', () => {
    const output = `${'line of training log\n'.repeat(500)}FINAL LOSS 0.42`;
    const t = parseTrace('gemini-stream-json', [
      'setup line one',
      'setup line two',
      JSON.stringify({
        type: 'tool_use',
        tool_name: 'run_shell_command',
        tool_id: 't1',
        parameters: { command: 'python train.py' },
      }),
      JSON.stringify({ type: 'tool_result', tool_id: 't1', status: 'success', output }),
    ]);
    const text = renderTrajectory(t);
    expect(text).toContain('$ python train.py');
    expect(text).toContain('FINAL LOSS 0.42');
    expect(text).toContain('characters omitted');
    expect(text.length).toBeLessThan(3500);
    expect(text).toContain('── output ──\nsetup line one\nsetup line two\n');
    expect(text).toContain('wall clock: no timestamps');
  });

  it('renderTraceFile streams the same text renderTrajectory builds, written atomically', async () => {
    const fixture = resolve(import.meta.dirname, '../fixtures/traces/codex-json/items.txt');
    const out = join(tmp, 'trial', 'solve_parsed.txt');
    const summary = await renderTraceFile('codex-json', fixture, out);
    const expected = renderTrajectory(await parseTraceFile('codex-json', fixture));
    expect(readFileSync(out, 'utf8')).toBe(expected);
    expect(summary).toMatchObject({
      eventCount: 33,
      firstTs: '2025-11-21T08:00:01Z',
      lastTs: '2025-11-21T18:05:01Z',
    });
    expect(readdirSync(join(tmp, 'trial'))).toEqual(['solve_parsed.txt']);
  });
});
