import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InRunEvalEventSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { createTrial, runTrial } from '../../src/trial/runTrial.ts';
import { trialFixture } from '../helpers/trialFixtures.ts';

/**
 * The agent-facing evaluate.py, for real: inside the sandbox it runs ptb's own evaluation (ptb from the
 * read-only /opt/ptb, the hf engine on the sandbox's loopback) and every call lands in the in-run ledger.
 */
describe('task/evaluate.py inside the sandbox', () => {
  it('scores a model with the reference interface and records the call', async () => {
    const f = await trialFixture();
    try {
      const script =
        'python3 evaluate.py --model-path /opt/base_model --limit 2 --max-tokens 8 --json-output-file scores.json; ' +
        'echo "exit=$?"; bash timer.sh; cp -r /opt/base_model final_model; ' +
        // a greedy final model: v1.1 evaluates it with the first seed only
        "python3 -c \"import json; p='final_model/generation_config.json'; c=json.load(open(p)); c['temperature']=0.0; json.dump(c, open(p, 'w'))\"";
      const trial = createTrial(
        f.trialEnv(),
        f.spec({ agent: 'command', agentCommand: ['bash', '-c', script], protocol: 'v1.1' }),
      );
      const done = await runTrial(f.trialEnv(), trial.id);
      expect(done.agent_outcome).toBe('finished');
      const layout = trialLayout(done.dir);
      const out = readFileSync(layout.solveOut, 'utf8');
      expect(out).toContain('exit=0');
      expect(out).toMatch(/Remaining time \(hours:minutes\):/);
      const scores = JSON.parse(readFileSync(join(layout.taskSnapshot, 'scores.json'), 'utf8')) as {
        accuracy: number;
      };
      expect(scores.accuracy).toBeGreaterThanOrEqual(0);
      expect(scores.accuracy).toBeLessThanOrEqual(1);
      expect(existsSync(layout.ledgers.inRunEvals)).toBe(true);
      const calls = readFileSync(layout.ledgers.inRunEvals, 'utf8')
        .trim()
        .split('\n')
        .map((l) => InRunEvalEventSchema.parse(JSON.parse(l)));
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({ modelPath: '/opt/base_model', limit: 2, maxTokens: 8, exitCode: 0 });
      expect(calls[0]!.accuracy).toBe(scores.accuracy);
      // The agent's evaluate.py is the reference's plain one (v1.0: one unseeded run, inspect's
      // scorers); the trial's final evaluation runs v1.1's seeds and writes their files.
      const inRunEvals = join(layout.work.dir, 'ptb-home', 'evals');
      const inRun = readdirSync(inRunEvals).map((d) =>
        JSON.parse(readFileSync(join(inRunEvals, d, 'eval.json'), 'utf8')),
      );
      expect(inRun.map((e) => e.protocol)).toEqual(['v1.0']);
      expect(done.spec.protocol).toBe('v1.1');
      const files = readdirSync(layout.root);
      expect(files).toEqual(
        expect.arrayContaining(['metrics.json', 'metrics_seed72332.json', 'final_eval_seed72332_1.txt']),
      );
      expect(files.filter((n) => n.startsWith('metrics_seed'))).toEqual(['metrics_seed72332.json']);
      expect(JSON.parse(readFileSync(join(layout.root, 'metrics.json'), 'utf8'))).toMatchObject({
        num_seeds: 1,
      });
    } finally {
      f.close();
    }
  }, 300_000);
});
