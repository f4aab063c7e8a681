/**
 * The sft agent's data-parallel path in a real trial: torchrun starts two gloo processes inside the
 * bwrap sandbox (their rendezvous on the sandbox's own loopback), rank 0 submits final_model, and the
 * agent's training lines reach the caller while it runs (what `ptb demo` prints instead of a silent
 * agent phase).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { createTrial, runTrial } from '../../src/trial/runTrial.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import { type TrialFixture, trialFixture } from '../helpers/trialFixtures.ts';

let fx: TrialFixture;

beforeAll(async () => {
  fx = await trialFixture();
}, tinyModelTimeoutMs);

afterAll(() => fx?.close());

describe('the sft agent under torchrun in the sandbox', () => {
  it('trains on two gloo processes, submits one final_model, and streams its lines', async () => {
    const data = join(fx.home.root, 'train_data.jsonl');
    const rows = Array.from({ length: 8 }, (_, i) => ({
      messages: [
        { role: 'user', content: `How many apples are ${i} apples?` },
        { role: 'assistant', content: `${i} apples.\n\nANSWER: ${i}` },
      ],
    }));
    writeFileSync(data, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const env = fx.trialEnv();
    const trial = createTrial(
      env,
      fx.spec({
        agent: 'sft',
        agentConfig:
          '--nproc-per-node 2 --device cpu --steps 3 --batch-size 4 --threads 1 --max-minutes 5 --chat-template templates/tiny_chatml.jinja',
        taskFiles: { 'train_data.jsonl': data },
        hours: 0.2,
      }),
    );
    const streamed: string[] = [];
    const done = await runTrial({ ...env, onAgentLine: (line) => streamed.push(line) }, trial.id);
    const solveOut = readFileSync(trialLayout(done.dir).solveOut, 'utf8');
    expect(done.agent_outcome, solveOut.slice(-3000)).toBe('finished');
    expect(done.status).toBe('completed');
    expect(solveOut).toMatch(/\[sft\] base \S+ on 2 processes \(gloo\), rank 0 cpu/);
    expect(solveOut.match(/\[sft\] saved final_model/g)).toHaveLength(1);
    expect(solveOut).toMatch(/"processes": 2/);
    // The caller saw the same lines as they came, redacted and without the time stamps.
    expect(streamed.some((l) => /^\[sft\] step 3\/3 loss \d/.test(l))).toBe(true);
    expect(streamed.some((l) => l.startsWith('[sft] saved final_model'))).toBe(true);
    expect(streamed.every((l) => !/^\[\d{4}-/.test(l))).toBe(true);
    expect(typeof done.accuracy).toBe('number');
  }, 600_000);
});
