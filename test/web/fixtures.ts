import { closeSync, mkdirSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { homeLayout } from '../../src/core/paths.ts';
import {
  PHASES,
  type Phase,
  type TrialSpec,
  type TrialSpecInput,
  TrialSpecSchema,
} from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { type Db, openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';

/** Hostile text: if any of it runs, `window.__xss` is set. */
export const XSS = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><svg onload="window.__xss=3">`;
export const PLANTED = 'NEEDLE-planted-7f3a9c';
/** 0-based line of the planted line in the small trace. */
export const PLANTED_LINE = 1234;
export const SMALL_TRACE_LINES = 3000;

export interface SyntheticStore {
  home: string;
  db: Db;
  repo: TrialRepo;
  ids: {
    running: string;
    doneA: string;
    doneB: string;
    failed: string;
    pending: string;
    big: string | null;
  };
  /** 0-based line number of the planted line in the big trace. */
  bigPlantedLine: number;
  bigLines: number;
}

function spec(over: Partial<TrialSpecInput>): TrialSpec {
  return TrialSpecSchema.parse({
    experiment: 'exp-alpha',
    agent: 'claude',
    agentConfig: 'claude-opus-4-6',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    hours: 10,
    ...over,
  });
}

function jsonl(path: string, rows: unknown[]): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
}

function runPhases(repo: TrialRepo, id: string, upTo: Phase, failAt?: Phase): void {
  for (const p of PHASES) {
    repo.startPhase(id, p);
    if (p === failAt) {
      repo.failPhase(id, p, 'evaluation engine crashed');
      return;
    }
    if (p === upTo) return;
    repo.completePhase(id, p, p === 'evaluate' ? { accuracy: 0.6 } : {});
  }
}

function ts(i: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString().replace('.000Z', 'Z');
}

/** A trace of `lines` lines with the XSS payload at line 5 and PLANTED at PLANTED_LINE. */
function smallTrace(path: string): void {
  const out: string[] = [];
  for (let i = 0; i < SMALL_TRACE_LINES; i++) {
    let text = JSON.stringify({ type: 'assistant', step: i, text: `thinking about step ${i}` });
    if (i === 5) text = `tool output: ${XSS}`;
    if (i === PLANTED_LINE) text = `training loss went down ${PLANTED} at last`;
    out.push(`[${ts(i)}] ${text}`);
  }
  writeFileSync(path, out.join('\n') + '\n');
}

/** ~100 MB solve_out.txt: 10,000-line blocks of ~100-byte lines, the planted line near the end. */
function bigTrace(path: string): { lines: number; planted: number } {
  const blockLines: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    blockLines.push(
      `[${ts(i % 86_400)}] {"type":"tool_result","step":${i},"output":"epoch ${i % 7} loss ${(1 / (i + 1)).toFixed(6)} ok"}`,
    );
  }
  const block = Buffer.from(blockLines.join('\n') + '\n');
  const blocks = Math.ceil((100 * 1024 * 1024) / block.length);
  const fd = openSync(path, 'w');
  let lines = 0;
  let planted = -1;
  try {
    for (let b = 0; b < blocks; b++) {
      if (b === blocks - 2) {
        writeSync(fd, `[${ts(1)}] big trace ${PLANTED} deep inside\n`);
        planted = lines;
        lines++;
      }
      writeSync(fd, block);
      lines += 10_000;
    }
  } finally {
    closeSync(fd);
  }
  return { lines, planted };
}

/** Store with every kind of trial the dashboard shows; `big` adds the ~100 MB trace. */
export function buildStore(opts: { big: boolean }): SyntheticStore {
  const home = mkdtempSync(join(tmpdir(), 'ptb-web-'));
  const layout = homeLayout(home);
  const db = openDb(layout.db);
  const repo = new TrialRepo(db);
  const dirOf = (id: string) => join(layout.trials, id);

  // Running: agent phase started two hours ago, GPU monitor, in-run evals, ledgers with hostile fields.
  const running = repo.create(spec({ experiment: 'exp-alpha', seed: 1 }), dirOf, {
    id: 'trial-running-1',
  }).id;
  runPhases(repo, running, 'agent');
  const started = new Date(Date.now() - 2 * 3600 * 1000).toISOString();
  db.prepare(`UPDATE trial_phases SET started_at = ? WHERE trial_id = ? AND phase = 'agent'`).run(
    started,
    running,
  );
  const rl = trialLayout(dirOf(running));
  mkdirSync(rl.ledgers.dir, { recursive: true });
  writeFileSync(rl.prompt, `Post-train Qwen/Qwen3-1.7B-Base for GSM8K.\n${XSS}\n`);
  smallTrace(rl.solveOut);
  const gpu = (util: number, used: number) => ({
    ts: new Date().toISOString(),
    cpuPercent: 50,
    memoryBytes: 1e9,
    diskBytes: 1e10,
    gpus: [
      {
        index: 0,
        utilPercent: util,
        memoryUsedMiB: used,
        memoryTotalMiB: 81920,
        temperatureC: 60,
        powerW: 500,
      },
    ],
  });
  jsonl(rl.ledgers.monitor, [gpu(12, 1024), gpu(55, 20000), gpu(87, 40960)]);
  jsonl(rl.ledgers.inRunEvals, [
    {
      ts: ts(10),
      modelPath: 'ckpt-1',
      limit: 50,
      maxTokens: 1024,
      accuracy: 0.31,
      exitCode: 0,
      durationMs: 1000,
    },
    {
      ts: ts(20),
      modelPath: 'ckpt-2',
      limit: 50,
      maxTokens: 1024,
      accuracy: 0.42,
      exitCode: 0,
      durationMs: 1000,
    },
    {
      ts: ts(30),
      modelPath: 'ckpt-3',
      limit: 50,
      maxTokens: 1024,
      accuracy: null,
      exitCode: 1,
      durationMs: 10,
    },
  ]);
  jsonl(rl.ledgers.egress, [
    {
      ts: ts(1),
      host: 'huggingface.co',
      port: 443,
      kind: 'connect',
      allowed: true,
      rule: 'open',
      bytesUp: 10,
      bytesDown: 2000,
      durationMs: 30,
    },
    {
      ts: ts(2),
      host: 'api.anthropic.com',
      port: 443,
      kind: 'connect',
      allowed: false,
      rule: 'provider-host-denied',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 1,
      error: XSS,
    },
    'this line is not json',
  ]);
  jsonl(rl.ledgers.modelCalls, [
    {
      ts: ts(3),
      provider: 'anthropic',
      model: 'claude-opus-4-6',
      method: 'POST',
      path: '/v1/messages',
      status: 200,
      inputTokens: 1200,
      outputTokens: 300,
      costUsd: 0.0405,
      durationMs: 900,
    },
    {
      ts: ts(4),
      provider: 'anthropic',
      model: 'claude-opus-4-6',
      method: 'POST',
      path: '/v1/messages',
      status: 200,
      inputTokens: 800,
      outputTokens: 200,
      costUsd: 0.027,
      durationMs: 700,
    },
  ]);
  jsonl(rl.ledgers.downloads, [
    {
      ts: ts(5),
      kind: 'dataset',
      repo: 'openai/gsm8k',
      revision: 'main',
      file: 'train.parquet',
      method: 'GET',
      url: 'https://huggingface.co/x',
      status: 200,
      bytes: 123456,
    },
  ]);
  repo.update(running, { input_tokens: 2000, output_tokens: 500, cost_usd: 0.0675 });

  // Two completed gsm8k trials with per-sample results that differ.
  const doneA = repo.create(spec({ experiment: 'exp-alpha', seed: 0 }), dirOf, { id: 'trial-done-a' }).id;
  const doneB = repo.create(
    spec({ experiment: 'exp-beta', agent: 'codex', agentConfig: 'gpt-5.3-codex' }),
    dirOf,
    {
      id: 'trial-done-b',
    },
  ).id;
  for (const [id, scores, final] of [
    [doneA, [1, 1, 0, 1, 0, 1], 0.6],
    [doneB, [1, 0, 1, 0, 0, 1], 0.3],
  ] as const) {
    runPhases(repo, id, 'finalize');
    repo.completePhase(id, 'finalize', {});
    const l = trialLayout(dirOf(id));
    mkdirSync(join(l.evalDir, 'run-1'), { recursive: true });
    jsonl(
      join(l.evalDir, 'run-1', 'samples.jsonl'),
      scores.map((s, i) => ({
        id: `gsm8k-${i}`,
        score: s,
        answer: String(40 + i + (s ? 0 : 1)),
        response: `The answer is ${40 + i}. ${i === 2 ? XSS : ''}`,
        finish_reason: 'stop',
      })),
    );
    writeFileSync(l.metrics, JSON.stringify({ accuracy: final, stderr: 0.02 }));
    writeFileSync(l.prompt, 'Post-train the model.\n');
    writeFileSync(l.solveOut, `[${ts(0)}] started\n[${ts(1)}] done\n`);
    repo.update(id, {
      status: 'completed',
      phase: 'finalize',
      agent_outcome: 'finished',
      agent_seconds: 5400,
      accuracy: final,
      final_score: final,
      substituted: false,
      audit_verdict: id === doneA ? 'clean' : 'flagged',
      cost_usd: 1.25,
      finished_at: new Date().toISOString(),
    });
  }
  writeFileSync(
    trialLayout(dirOf(doneA)).trajectory,
    JSON.stringify({
      format: 'claude-stream-json',
      sessionId: 's1',
      model: 'claude-opus-4-6',
      events: [
        { index: 0, ts: ts(0), kind: 'system', text: 'session started' },
        { index: 1, ts: ts(1), kind: 'message', role: 'assistant', text: `I will read the data. ${XSS}` },
        {
          index: 2,
          ts: ts(2),
          kind: 'tool_call',
          role: 'assistant',
          tool: { id: 't1', name: 'Bash', input: { command: 'ls -la' } },
        },
        {
          index: 3,
          ts: ts(3),
          kind: 'tool_result',
          role: 'tool',
          tool: { id: 't1' },
          text: `total 0 ${PLANTED}`,
        },
      ],
      totals: {
        inputTokens: 10,
        outputTokens: 5,
        cacheReadTokens: 0,
        reasoningTokens: 0,
        costUsd: 0.01,
        toolCalls: 1,
        messages: 1,
      },
      unparsedLines: 0,
    }),
  );
  repo.recordAudit(doneA, 'clean', 'base-score', 'all detectors clean', [
    {
      detector: 'egress-rules',
      version: '1',
      verdict: 'clean',
      summary: 'no denied provider calls',
      evidence: [],
    },
  ]);
  repo.recordAudit(doneB, 'flagged', 'base-score', 'contamination found', [
    {
      detector: 'contamination',
      version: '2',
      verdict: 'flagged',
      rule: 'trained on test data',
      summary: 'test questions found in train.jsonl',
      evidence: [{ source: 'task/data/train.jsonl:17', detail: `verbatim test item ${XSS}`, overlap: 0.97 }],
    },
    {
      detector: 'weights-provenance',
      version: '1',
      verdict: 'clean',
      summary: 'weights derive from the base model',
      evidence: [],
    },
  ]);

  const failed = repo.create(
    spec({ experiment: 'exp-beta', agent: 'codex', benchmark: 'humaneval' }),
    dirOf,
    {
      id: 'trial-failed-1',
    },
  ).id;
  runPhases(repo, failed, 'finalize', 'evaluate');
  repo.update(failed, { status: 'failed', agent_outcome: 'timeout', error: `engine crashed: ${XSS}` });

  const pending = repo.create(
    spec({ experiment: 'exp-beta', agent: 'codex', benchmark: 'aime2025' }),
    dirOf,
    {
      id: 'trial-pending-1',
    },
  ).id;

  repo.addBaseline({
    model: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy: 0.12,
    source: 'test',
  });

  let big: string | null = null;
  let bigPlantedLine = -1;
  let bigLines = 0;
  if (opts.big) {
    big = repo.create(spec({ experiment: 'exp-big' }), dirOf, { id: 'trial-big-trace' }).id;
    runPhases(repo, big, 'finalize');
    repo.completePhase(big, 'finalize', {});
    repo.update(big, { status: 'completed', final_score: 0.5, accuracy: 0.5 });
    const l = trialLayout(dirOf(big));
    mkdirSync(l.root, { recursive: true });
    const r = bigTrace(l.solveOut);
    bigPlantedLine = r.planted;
    bigLines = r.lines;
  }
  return { home, db, repo, ids: { running, doneA, doneB, failed, pending, big }, bigPlantedLine, bigLines };
}
