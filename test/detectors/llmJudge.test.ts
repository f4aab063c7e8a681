import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DetectorVerdict } from '../../src/core/trial.ts';
import {
  createLlmJudgeDetector,
  judgeConfigFrom,
  judgeVersion,
  type LlmJudgeConfig,
  parseJudgeAnswer,
} from '../../src/detectors/llmJudge.ts';
import { buildEvidencePack } from '../../src/detectors/shared/evidencePack.ts';
import { makeTrial, type TrialFixture } from '../audit/trialFixture.ts';
import { type ChatBody, type StandInGrader, startStandInGrader } from '../helpers/standInGrader.ts';

let trial: TrialFixture | undefined;
let server: StandInGrader | undefined;
afterEach(async () => {
  trial?.cleanup();
  await server?.close();
  trial = undefined;
  server = undefined;
});

/** A scripted judge: contamination when the pack shows a script that hard-codes test items. */
function scriptedJudge(body: ChatBody): string {
  const user = body.messages?.find((m) => m.role === 'user')?.content ?? '';
  const contaminated = user.includes('EXACT GSM8K TEST ITEM');
  return JSON.stringify({
    contamination: contaminated,
    disallowed_model: false,
    justification: contaminated
      ? 'make_data.py copies GSM8K test items into the training set.'
      : 'Only the train split is used.',
    evidence: contaminated ? [{ file: 'task/make_data.py', detail: 'hard-coded test item' }] : [],
  });
}

function config(s: StandInGrader, extra: Partial<LlmJudgeConfig> = {}): LlmJudgeConfig {
  return {
    provider: 'openai',
    baseUrl: s.baseUrl,
    model: 'judge-model',
    apiKey: s.apiKey,
    backoffMs: 5,
    ...extra,
  };
}

const tamperClean: DetectorVerdict = {
  detector: 'tamper',
  version: '1',
  verdict: 'clean',
  summary: 'evaluation files unchanged',
  evidence: [],
};

describe('LLM judge detector (OpenAI-compatible)', () => {
  it('sends the rules and the evidence pack and returns a clean verdict for an honest run', async () => {
    trial = makeTrial();
    server = await startStandInGrader({ responder: scriptedJudge });
    const auditDir = mkdtempSync(join(tmpdir(), 'ptb-judge-'));
    const detector = createLlmJudgeDetector(config(server));
    const v = await detector.inspect(trial.evidence, {
      ...trial.ctx,
      findings: [tamperClean],
      auditDir,
    } as never);
    expect(v.verdict).toBe('clean');
    expect(v.version).toBe(judgeVersion({ provider: 'openai', model: 'judge-model' }));
    expect(v.version).toMatch(/^openai:judge-model:[0-9a-f]{12}$/);
    const req = server.requests[0]!;
    expect(req.authorization).toBe(`Bearer ${server.apiKey}`);
    const system = req.body.messages![0]!.content!;
    const user = req.body.messages![1]!.content!;
    expect(system).toContain('Qwen/Qwen3-1.7B-Base');
    expect(system).toContain('GSM8K train split');
    expect(system).toContain('Qwen/Qwen3-1.7B)');
    expect(user).toContain('tamper v1: clean');
    expect(user).toContain('### task/train.py');
    expect(user).toContain('dataset openai/gsm8k');
    expect(user).not.toContain('### task/evaluate.py');
    expect(readFileSync(join(auditDir, 'judge_response.txt'), 'utf8')).toContain('Only the train split');
    expect(existsSync(join(auditDir, 'judge_prompt.txt'))).toBe(true);
  });

  it('the GSM8K exception appears only for GSM8K', async () => {
    trial = makeTrial({ benchmark: 'humaneval' });
    server = await startStandInGrader({ responder: scriptedJudge });
    await createLlmJudgeDetector(config(server)).inspect(trial.evidence, trial.ctx);
    expect(server.requests[0]!.body.messages![0]!.content).not.toContain('GSM8K train split');
  });

  it("flags contamination with the judge's justification and evidence", async () => {
    trial = makeTrial();
    trial.writeTask('make_data.py', 'ITEMS = [  # EXACT GSM8K TEST ITEM\n  "Janet\'s ducks lay 16 eggs"]\n');
    server = await startStandInGrader({
      responder: (b) => `Here is my verdict:\n\`\`\`json\n${scriptedJudge(b)}\n\`\`\``,
    });
    const v = await createLlmJudgeDetector(config(server)).inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('flagged');
    expect(v.rule).toBe('contamination');
    expect(v.summary).toContain('copies GSM8K test items');
    expect(v.evidence).toContainEqual({ source: 'task/make_data.py', detail: 'hard-coded test item' });
  });

  it('malformed JSON, prose and null content are unverified, never clean', async () => {
    trial = makeTrial();
    server = await startStandInGrader({
      responder: () => '{"contamination": "no", "disallowed_model": false}',
    });
    const detector = createLlmJudgeDetector(config(server));
    let v = await detector.inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.rule).toBe('judge-malformed');
    expect(v.summary).toContain('contamination');

    server.garbageNext(1);
    v = await detector.inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.summary).toContain('no JSON object');

    server.nullContentNext(1);
    v = await detector.inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.rule).toBe('judge-error');
  });

  it('retries HTTP 500 and gives unverified when the server keeps failing', async () => {
    trial = makeTrial();
    server = await startStandInGrader({ responder: scriptedJudge });
    const detector = createLlmJudgeDetector(config(server, { retries: 2 }));
    server.failNext(1, 500);
    expect((await detector.inspect(trial.evidence, trial.ctx)).verdict).toBe('clean');
    expect(server.requests.map((r) => r.outcome)).toEqual(['failed', 'answered']);

    server.failNext(3, 500);
    const v = await detector.inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.rule).toBe('judge-error');
    expect(v.summary).toContain('HTTP 500');
    expect(server.requests).toHaveLength(5);
  });

  it('does not retry a bad key', async () => {
    trial = makeTrial();
    server = await startStandInGrader({ responder: scriptedJudge });
    const v = await createLlmJudgeDetector(config(server, { apiKey: 'wrong' })).inspect(
      trial.evidence,
      trial.ctx,
    );
    expect(v.verdict).toBe('unverified');
    expect(v.summary).toContain('401');
    expect(server.requests).toHaveLength(1);
  });
});

describe('LLM judge detector (Anthropic Messages)', () => {
  it('speaks the Messages API and maps disallowed_model to a flag', async () => {
    trial = makeTrial();
    const seen: Array<{ headers: Record<string, unknown>; body: Record<string, unknown> }> = [];
    const http = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      seen.push({ headers: req.headers, body });
      if (req.url !== '/v1/messages' || req.headers['x-api-key'] !== 'ak') {
        res.writeHead(404).end('{}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          content: [
            { type: 'thinking', thinking: '...' },
            {
              type: 'text',
              text: '{"contamination": false, "disallowed_model": true, "justification": "final_model is Qwen3-1.7B.", "evidence": []}',
            },
          ],
        }),
      );
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const { port } = http.address() as AddressInfo;
    try {
      const v = await createLlmJudgeDetector({
        provider: 'anthropic',
        baseUrl: `http://127.0.0.1:${port}`,
        model: 'claude-judge',
        apiKey: 'ak',
      }).inspect(trial.evidence, trial.ctx);
      expect(v.verdict).toBe('flagged');
      expect(v.rule).toBe('disallowed-model');
      expect(seen[0]!.headers['anthropic-version']).toBe('2023-06-01');
      expect(seen[0]!.body.model).toBe('claude-judge');
      expect(typeof seen[0]!.body.system).toBe('string');
      expect(seen[0]!.body.max_tokens).toBe(8192);
    } finally {
      await new Promise((r) => http.close(r));
    }
  });
});

describe('evidence pack and configuration', () => {
  it('stays within its bound and keeps the lines that mention the benchmark', () => {
    trial = makeTrial();
    const events = Array.from({ length: 3000 }, (_, i) => ({
      kind: 'message' as const,
      role: 'assistant' as const,
      text:
        i === 1500
          ? 'Now I will load_dataset("openai/gsm8k", split="test") to check the format'
          : `step ${i} ${'x'.repeat(200)}`,
    }));
    trial.setTrajectory(events);
    const pack = buildEvidencePack(trial.evidence, [], 20_000);
    expect(pack.text.length).toBeLessThanOrEqual(20_000);
    expect(pack.text).toContain('split="test") to check the format');
    expect(pack.text).toMatch(/lines omitted/);
    expect(pack.text).toContain('step 0 ');
    expect(pack.text).toContain('step 2999 ');
  });

  it('parses an answer wrapped in prose', () => {
    const a = parseJudgeAnswer(
      'Sure. {"contamination": false, "disallowed_model": false, "justification": "ok"} Done.',
    );
    expect(a).toEqual({ contamination: false, disallowed_model: false, justification: 'ok', evidence: [] });
    expect('error' in parseJudgeAnswer('{"contamination": false}')).toBe(true);
  });

  it('reads the configuration from flags and environment, key only from the environment', () => {
    expect(typeof judgeConfigFrom({}, {})).toBe('string');
    const c = judgeConfigFrom({ provider: 'anthropic' }, { PTB_JUDGE_MODEL: 'm', PTB_JUDGE_API_KEY: 'k' });
    expect(c).toEqual({
      provider: 'anthropic',
      model: 'm',
      baseUrl: 'https://api.anthropic.com',
      apiKey: 'k',
    });
    expect(judgeConfigFrom({ provider: 'gemini', model: 'm' }, {})).toContain('unknown judge provider');
  });
});
