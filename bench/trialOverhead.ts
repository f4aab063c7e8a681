/**
 * Harness overhead of one trial for a full-size model: everything a trial costs except the agent's own
 * work and the final evaluation. The base model is a Qwen3-1.7B-shaped checkpoint of random bf16
 * weights (about 4.1 GB, bench/trialOverheadCheckpoint.py); the agent does what `copy-base` does (copy
 * the base model to final_model, inside the bwrap sandbox) and stamps its own start and end, so its
 * time is known to the nanosecond. The evaluation phase is marked done beforehand (this measures the
 * harness, not the engine). Per phase: wall time from the phase rows; the agent phase's overhead is
 * its wall time minus the agent's own. Side by side, the reference ratio: overhead / `cp -r` of the
 * same model. Target (issue #3): overhead under a minute for a 4 GB model.
 *
 *   npx tsx bench/trialOverhead.ts [--preset qwen3-1.7b|qwen3-0.6b] [--dir DIR] [--keep]
 */

import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectDetectors } from '../src/audit/detectorRegistry.ts';
import { trialEvidence } from '../src/audit/trialEvidence.ts';
import { repoRoot } from '../src/core/paths.ts';
import { PHASES } from '../src/core/trial.ts';
import { trialLayout } from '../src/core/trialLayout.ts';
import { createTrial, runTrial } from '../src/trial/runTrial.ts';
import { ensureTinyModel, testPython } from '../test/helpers/tinyModel.ts';
import { trialFixture } from '../test/helpers/trialFixtures.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const preset = flag('--preset') ?? 'qwen3-1.7b';
const keep = args.includes('--keep');
const root = flag('--dir') ?? mkdtempSync(join(tmpdir(), 'ptb-bench-trial-'));
mkdirSync(root, { recursive: true });

const seconds = (ms: number) => (ms / 1000).toFixed(2);

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : entry.isFile() ? statSync(path).size : 0;
  }
  return total;
}

/** `cp -r` of the model, timed (the side-by-side reference), removed afterwards. */
function timedCopy(source: string): number {
  const dest = join(root, 'cp-reference');
  rmSync(dest, { recursive: true, force: true });
  const t0 = performance.now();
  const run = spawnSync('cp', ['-r', source, dest]);
  spawnSync('sync');
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`cp failed: ${run.stderr}`);
  rmSync(dest, { recursive: true, force: true });
  return ms;
}

async function buildBase(python: string): Promise<string> {
  const dir = join(root, `base-${preset}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`building a ${preset} checkpoint of random bf16 weights in ${tmp}\n`);
  const run = spawnSync(
    python,
    [join(repoRoot, 'bench', 'trialOverheadCheckpoint.py'), tmp, '--preset', preset],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (run.status !== 0) throw new Error('trialOverheadCheckpoint.py failed');
  process.stderr.write(run.stdout);
  // A real tokenizer next to the weights (the tiny model's: the tokenizer is not what is measured).
  const tiny = await ensureTinyModel();
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
    if (existsSync(join(tiny, name))) copyFileSync(join(tiny, name), join(tmp, name));
  }
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mv', [tmp, dir]);
  spawnSync('sync');
  return dir;
}

const python = await testPython();
const base = await buildBase(python);
const modelBytes = dirBytes(base);
const cpBefore = timedCopy(base);

const fixture = await trialFixture({ home: join(root, 'home') });
const env = fixture.trialEnv();
const trial = createTrial(
  env,
  fixture.spec({
    experiment: 'bench',
    agent: 'command',
    agentCommand: [
      'bash',
      '-c',
      // copy-base's command between two clock reads (the agent's own time).
      's=$(date +%s%N); cp -rL "$PTB_BASE_MODEL_PATH" final_model; e=$(date +%s%N); echo "$s $e" > /home/agent/agent_clock.txt',
    ],
    baseModel: `bench/${preset}-random`,
    baseModelPath: base,
    hours: 1,
  }),
);
// The evaluation is not harness overhead: mark it done so the trial goes from audit to finalize.
fixture.trials.startPhase(trial.id, 'evaluate');
fixture.trials.completePhase(trial.id, 'evaluate', {
  metrics: null,
  runId: null,
  maxTokens: null,
  attempts: 0,
  error: 'skipped by bench/trialOverhead.ts',
});

const t0 = performance.now();
const done = await runTrial(env, trial.id);
const totalMs = performance.now() - t0;
if (done.status !== 'completed') throw new Error(`trial ended ${done.status}: ${done.error}`);
const layout = trialLayout(done.dir);
const [agentStartNs, agentEndNs] = readFileSync(join(layout.work.home, 'agent_clock.txt'), 'utf8')
  .trim()
  .split(' ')
  .map(BigInt);
const agentOwnMs = Number((agentEndNs! - agentStartNs!) / 1_000_000n);
const rows = new Map(fixture.trials.phases(trial.id).map((r) => [r.phase, r]));
const phaseMs = (phase: string) => {
  const row = rows.get(phase)!;
  return Date.parse(row.finished_at!) - Date.parse(row.started_at);
};
const measured = PHASES.filter((p) => p !== 'evaluate');
const perPhase = Object.fromEntries(measured.map((p) => [p, phaseMs(p)]));
const inPhases = measured.reduce((sum, p) => sum + perPhase[p]!, 0);
const overheadMs = totalMs - agentOwnMs;
// Where the audit's time goes: each detector again over the same evidence (as `ptb audit` re-runs them).
const evidence = trialEvidence(done, { baseModelPath: base, referenceModelPaths: [] });
const detectorMs: Record<string, number> = {};
for (const detector of selectDetectors({ env: fixture.env })) {
  const t = performance.now();
  await detector.inspect(evidence, { home: fixture.home.root, env: fixture.env });
  detectorMs[detector.id] = Math.round(performance.now() - t);
}
const cpAfter = timedCopy(base);
const cpMs = Math.min(cpBefore, cpAfter);

const out = process.stdout;
out.write(
  `model: ${preset}-shaped random bf16, ${(modelBytes / 1e9).toFixed(2)} GB; final_model copied: ${existsSync(join(layout.finalModel, 'config.json'))}\n`,
);
out.write(`phase       wall s\n`);
for (const p of measured) {
  const extra =
    p === 'agent'
      ? `  (agent's own ${seconds(agentOwnMs)} s, sandbox + services ${seconds(perPhase[p]! - agentOwnMs)} s)`
      : '';
  out.write(`${p.padEnd(10)} ${seconds(perPhase[p]!).padStart(7)}${extra}\n`);
}
out.write(
  `  audit by detector (re-run): ${Object.entries(detectorMs)
    .map(([id, ms]) => `${id} ${seconds(ms)} s`)
    .join(', ')}\n`,
);
out.write(`between phases (python env check, spec, locks): ${seconds(totalMs - inPhases)} s\n`);
out.write(
  `harness overhead (total ${seconds(totalMs)} s - agent's own ${seconds(agentOwnMs)} s): ${seconds(overheadMs)} s\n`,
);
out.write(`cp -r of the same model: ${seconds(cpBefore)} s before, ${seconds(cpAfter)} s after\n`);
out.write(`ratio overhead / cp -r: ${(overheadMs / cpMs).toFixed(2)}\n`);
out.write(
  `${JSON.stringify({
    preset,
    modelBytes,
    totalMs: Math.round(totalMs),
    agentOwnMs,
    overheadMs: Math.round(overheadMs),
    phases: perPhase,
    detectorMs,
    cpMs: Math.round(cpMs),
    ratio: Number((overheadMs / cpMs).toFixed(3)),
  })}\n`,
);
fixture.close();
if (!keep) rmSync(root, { recursive: true, force: true });
