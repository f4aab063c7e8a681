import { existsSync, readFileSync } from 'node:fs';
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
        'echo "exit=$?"; bash timer.sh';
      const trial = createTrial(
        f.trialEnv(),
        f.spec({ agent: 'command', agentCommand: ['bash', '-c', script] }),
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
    } finally {
      f.close();
    }
  }, 300_000);
});
