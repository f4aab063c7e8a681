import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import type { ModelSandboxRecord } from '../../src/sandbox/modelSandbox.ts';
import { createTrial, runTrial } from '../../src/trial/runTrial.ts';
import {
  countingListener,
  type HostileAttempt,
  type HostileReport,
  hostileReports,
  hostRootProbes,
  makeHostileCheckpoint,
  removeHostProbes,
} from '../helpers/hostileCheckpoint.ts';
import { tempHome } from '../helpers/runCli.ts';
import { healthBenchResponder, SYNTHETIC_GRADER_PY, startStandInGrader } from '../helpers/standInGrader.ts';
import { ensureTinyModel } from '../helpers/tinyModel.ts';
import { trialFixture } from '../helpers/trialFixtures.ts';

/**
 * A whole HealthBench trial (trust_remote_code, as the reference evaluates it) whose agent submits a
 * checkpoint with hostile custom modelling code, and first runs it through the agent-facing
 * evaluate.py. The harness holds the grader key (a canary) in its environment and in PTB_HOME; the
 * custom code tries to take it and to escape, both inside the agent's sandbox (in-run evaluation) and
 * inside the final evaluation's model sandbox. Every attempt fails, the trial's files say so, no file
 * of the trial holds the key, and both evaluations still complete.
 */

const CANARY_PREFIX = 'sk-canary-';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return [];
    return st.isDirectory() ? filesUnder(path) : st.isFile() ? [path] : [];
  });
}

/** Every directory under `dir`, recursively. */
function dirsUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => [join(dir, entry.name), ...dirsUnder(join(dir, entry.name))]);
}

function failedEverywhere(report: HostileReport, kinds: HostileAttempt['kind'][]): void {
  for (const kind of kinds) {
    const attempts = report.attempts.filter((a) => a.kind === kind);
    expect(attempts.length, kind).toBeGreaterThan(0);
    expect(
      attempts.filter((a) => a.ok),
      `${kind} attempts that worked`,
    ).toEqual([]);
  }
  expect(report.attempts.filter((a) => a.leaked)).toEqual([]);
  // Credential-looking variables: only an engine's own per-run key.
  const credentials = report.attempts.filter(
    (a) => a.kind === 'env' && /(KEY|TOKEN|SECRET|PASSWORD)$/.test(a.target),
  );
  expect(credentials.map((a) => a.target)).toEqual(['VLLM_API_KEY']);
}

describe('a trial whose final_model carries hostile custom code', () => {
  it('contains it in the in-run and the final evaluation, records it, and still scores', async () => {
    const canary = `${CANARY_PREFIX}${randomBytes(16).toString('hex')}`;
    const grader = await startStandInGrader({ responder: healthBenchResponder(), apiKey: canary });
    const listener = await countingListener();
    const home = tempHome();
    // What the harness's PTB_HOME holds: a credentials file and another trial's directory.
    mkdirSync(join(home, 'credentials'), { recursive: true });
    writeFileSync(join(home, 'credentials', 'openai'), canary);
    const otherTrial = join(home, 'trials', 'someone-elses-trial');
    mkdirSync(otherTrial, { recursive: true });
    writeFileSync(join(otherTrial, 'metrics.json'), JSON.stringify({ note: canary }));
    const rootProbes = hostRootProbes();
    const writeTargets = [
      join(home, 'pwned.txt'),
      join(otherTrial, 'pwned.txt'),
      '/opt/model/pwned.txt',
      ...rootProbes,
    ];
    const hostile = makeHostileCheckpoint(await ensureTinyModel(), join(home, 'hostile-base'), {
      read: [
        join(home, 'credentials', 'openai'),
        join(otherTrial, 'metrics.json'),
        join(home, 'ptb.db'),
        join(homedir(), '.ptb', 'credentials', 'openai'),
      ],
      list: [home, join(home, 'trials'), join(homedir(), '.ptb')],
      write: writeTargets,
      tcpPorts: [listener.port],
      dns: ['example.com'],
      // Only the prefix travels in the checkpoint: the value itself is nowhere in the trial's files.
      canaries: [CANARY_PREFIX],
    });
    const dataDir = join(home, 'hb-data');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, 'healthbench.jsonl'),
      `${JSON.stringify({
        prompt: [{ role: 'user', content: 'Is it fine to skip breakfast?' }],
        prompt_id: 'ex-breakfast',
        rubrics: [{ criterion: 'States it depends on the person', points: 5, tags: ['axis:accuracy'] }],
        example_tags: ['theme:hedging'],
      })}\n`,
    );
    writeFileSync(join(dataDir, 'grader.py'), SYNTHETIC_GRADER_PY);

    const f = await trialFixture({
      home,
      env: {
        // The grader key, as a careless operator would hold it: every one of these is the canary.
        PTB_GRADER_BASE_URL: grader.baseUrl,
        PTB_GRADER_API_KEY: canary,
        OPENAI_API_KEY: canary,
        ANTHROPIC_API_KEY: canary,
        HF_TOKEN: canary,
        PTB_RELAY_UPSTREAM_OPENAI: grader.baseUrl.replace(/\/v1$/, ''),
      },
    });
    try {
      const script = [
        'python3 evaluate.py --model-path /opt/base_model --limit 1 --max-tokens 8; echo "inrun-exit=$?"',
        'cat /opt/ptb-home/evals/*/final_eval_*.txt',
        'cp -r /opt/base_model final_model',
      ].join('; ');
      const trial = createTrial(
        f.trialEnv(),
        f.spec({
          benchmark: 'healthbench',
          baseModelPath: hostile,
          evalData: { data: join(dataDir, 'healthbench.jsonl'), 'grader-prompt': join(dataDir, 'grader.py') },
          agent: 'command',
          agentCommand: ['bash', '-c', script],
          evalLimit: 1,
          evalMaxTokens: 8,
          hours: 0.1,
        }),
      );
      const done = await runTrial(f.trialEnv(), trial.id);
      const layout = trialLayout(done.dir);
      const solveOut = readFileSync(layout.solveOut, 'utf8');
      expect(done.status).toBe('completed');

      // In-run: the agent-facing evaluate.py loaded the code inside the agent's own sandbox.
      expect(solveOut).toContain('inrun-exit=0');
      const inRun = hostileReports(solveOut);
      expect(inRun.length, solveOut.slice(-3000)).toBeGreaterThanOrEqual(1);
      failedEverywhere(inRun[0]!, ['read', 'list', 'tcp', 'dns', 'write']);

      // Final evaluation: the code ran in the model sandbox, and the evaluation completed.
      const finalLog = readFileSync(join(layout.root, 'final_eval_1.txt'), 'utf8');
      const final = hostileReports(finalLog);
      expect(final.length, finalLog.slice(-3000)).toBeGreaterThanOrEqual(1);
      failedEverywhere(final[0]!, ['read', 'list', 'tcp', 'dns', 'write']);
      expect(final[0]!.home).toBe('/scratch');
      expect(final[0]!.attempts.filter((a) => a.kind === 'scratch')).toMatchObject([{ ok: true }]);
      const metrics = JSON.parse(readFileSync(layout.metrics, 'utf8')) as { accuracy: number };
      expect(metrics.accuracy).toBeGreaterThanOrEqual(0);

      // The trial's ledger of the evaluation sandbox.
      const records = readFileSync(layout.ledgers.evalSandbox, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as ModelSandboxRecord);
      expect(records.length).toBeGreaterThanOrEqual(1);
      expect(records[0]).toMatchObject({ sandbox: 'bwrap', modelUnchanged: true, label: 'final_eval_1.txt' });
      expect(records[0]!.network).toMatch(/^none/);
      expect(records[0]!.readOnly).toContainEqual({ host: layout.finalModel, sandbox: '/opt/model' });
      expect(records[0]!.envNames.filter((n) => /(KEY|TOKEN)$/.test(n))).toEqual(['VLLM_API_KEY']);
      expect(records[0]!.scratch.sample).toContain('hostile_report.json');

      // Nothing escaped: no connection, no file written outside, no trace of the key in the trial.
      expect(listener.connections()).toBe(0);
      for (const target of writeTargets) expect(existsSync(target), target).toBe(false);
      const holding = filesUnder(done.dir).filter((file) => readFileSync(file).includes(canary));
      expect(holding).toEqual([]);
      // The engine's private directories and the run's compile cache are gone with the finished run.
      expect(
        dirsUnder(done.dir).filter((d) => /\/(engine_cache|final_eval_[^/]*\.sandbox)$/.test(d)),
      ).toEqual([]);
      // The grader was called, by the harness and by the relay, with the real key that stayed outside.
      expect(grader.requests.length).toBeGreaterThan(0);
      expect(grader.requests.every((r) => r.authorization === `Bearer ${canary}`)).toBe(true);
    } finally {
      f.close();
      removeHostProbes(rootProbes);
      await grader.close();
      await listener.close();
    }
  }, 600_000);
});
