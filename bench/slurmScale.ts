/**
 * ptb on Slurm at scale, against the real one-node cluster of scripts/slurmLocal.sh (issue 11 targets,
 * on the 2-core machine):
 *   1. submitting a 1,000-trial grid:            `ptb run --scheduler slurm` wall time ≤ 5 s, one sbatch call
 *   2. status of 1,000 trials:                   `ptb run status --json` wall time ≤ 2 s (sacct returns
 *      1,000 finished rows; the 1,000 trial journals hold a finished trial's real events)
 *   3. rebuilding the head's index from 1,000 finished trial directories ≤ 10 s
 *   4. harness start-up per task (job start → agent start, model copy excluded) ≤ 30 s, from real tasks
 *
 * The 1,000 trials are submitted held (`--hold`) and cancelled: running them all would take the
 * machine for an hour. For (2) their journals get the events of one real finished noop trial (new
 * audit ids), and the experiment's submission is pointed at a real array of 1,000 trivial tasks that
 * did finish, so sacct answers with 1,000 rows as it would for the real grid.
 *
 * CLI timings use the prebuilt bundle (built here when missing or stale), as an installed ptb would.
 *
 *   scripts/slurmLocal.sh start && SLURM_CONF=/tmp/ptb-slurm/etc/slurm.conf npx tsx bench/slurmScale.ts
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId } from '../src/core/ids.ts';
import { homeLayout, repoRoot } from '../src/core/paths.ts';
import { experimentFiles, readManifest } from '../src/schedulers/experimentRecord.ts';
import { openDb } from '../src/store/db.ts';
import { journalPath, TrialRepo } from '../src/store/trialRepo.ts';
import { trialRoots } from '../src/trial/trialIndex.ts';
import { testPython } from '../test/helpers/tinyModel.ts';

if (!process.env.SLURM_CONF)
  throw new Error('start the cluster first: scripts/slurmLocal.sh start, and set SLURM_CONF');
const ptb = join(repoRoot, 'bin', 'ptb.js');
if (spawnSync('node', [join(repoRoot, 'scripts', 'buildBundle.mjs')], { stdio: 'inherit' }).status !== 0) {
  throw new Error('building the CLI bundle failed');
}
const home = mkdtempSync(join(tmpdir(), 'ptb-bench-slurm-'));
const python = await testPython();
// The bundle, whatever its age: an installed ptb (the tasks inherit it through sbatch's --export=ALL).
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PTB_HOME: home,
  PTB_PYTHON: python,
  PTB_OFFLINE: '1',
  PTB_BUNDLE: join(repoRoot, 'dist', 'cli', 'ptb.mjs'),
};
const layout = homeLayout(home);

/** Run a command; wall time, and CPU time (user + sys, children included) as GNU time measures it. */
function run(cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const out = spawnSync('/usr/bin/time', ['-f', 'PTB_TIME %e %U %S', cmd, ...args], {
    env: { ...env, ...extra },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const times = /PTB_TIME (\S+) (\S+) (\S+)\s*$/.exec(out.stderr ?? '');
  if (out.status !== 0 || !times)
    throw new Error(`${cmd} ${args.join(' ')} failed (${out.status}): ${out.stderr}`);
  return {
    ms: Number(times[1]) * 1000,
    cpuMs: (Number(times[2]) + Number(times[3])) * 1000,
    stdout: out.stdout,
    stderr: out.stderr,
  };
}

/** One result line, with the 1-minute load average it was measured at (the machine is shared). */
const say = (line: string) => console.log(`${line} [load ${loadavg()[0]!.toFixed(1)}]`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function grid(
  experiment: string,
  o: { seeds: number; benchmarks: string[]; models: string[]; hold: boolean; k: number },
) {
  const path = join(home, `${experiment}.yaml`);
  writeFileSync(
    path,
    JSON.stringify({
      experiment,
      agents: ['noop'],
      models: o.models,
      benchmarks: o.benchmarks,
      seeds: o.seeds,
      hours: 0.05,
      gpus_per_trial: 0,
      engine: 'hf',
      network: 'none',
      scheduler: {
        kind: 'slurm',
        cpus_per_trial: 1,
        mem: '1G',
        max_concurrent: o.k,
        time_slack_minutes: 5,
        node_home: join(home, 'node-home'),
        extra_args: o.hold ? ['--hold'] : [],
      },
    }),
  );
  return path;
}

async function waitAllDone(job: string, n: number): Promise<void> {
  for (;;) {
    const rows = run('sacct', ['--parsable2', '--noheader', '-X', `--jobs=${job}`, '--format=JobID,State'])
      .stdout.trim()
      .split('\n')
      .filter(Boolean);
    const done = rows.filter((r) => /\|(COMPLETED|FAILED|CANCELLED)/.test(r) && !r.includes('['));
    if (done.length >= n) return;
    await sleep(2000);
  }
}

say(
  `machine: ${cpus().length} CPUs (${cpus()[0]?.model}), load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);

// ---- 4 first (a quiet machine): harness start-up of real tasks ----
const startGrid = grid('startup', {
  seeds: 4,
  benchmarks: ['gsm8k'],
  models: ['acme/tiny-base'],
  hold: false,
  k: 2,
});
const startJob = run('node', [ptb, 'run', '--config', startGrid]).stdout.trim();
await waitAllDone(startJob, 4);
const startups: number[] = [];
for (const e of readManifest(experimentFiles(join(layout.experiments, 'startup')).manifest)) {
  const log = readFileSync(join(layout.experiments, 'startup', 'logs', `task-${e.index}.log`), 'utf8');
  const jobStart = Date.parse(/ at (\S+Z)$/m.exec(log)![1]!);
  const agent = readFileSync(journalPath(e.dir), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((ev) => ev.event === 'phase' && ev.phase === 'agent' && ev.status === 'started');
  startups.push(Date.parse(agent.ts) - jobStart);
}
say(
  `harness start-up per task (batch script start → agent phase start; warm node home, no base model to copy): ` +
    `median ${fmt(median(startups))}, max ${fmt(Math.max(...startups))} over ${startups.length} tasks (target ≤ 30 s)`,
);
const template = readFileSync(
  journalPath(readManifest(experimentFiles(join(layout.experiments, 'startup')).manifest)[0]!.dir),
  'utf8',
)
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l))
  .slice(1);

// ---- 1: submit 1,000 trials ----
const big = grid('thousand', {
  seeds: 50,
  benchmarks: ['gsm8k', 'aime2025', 'humaneval', 'gpqamain', 'bfcl'],
  models: [
    'Qwen/Qwen3-1.7B-Base',
    'Qwen/Qwen3-4B-Base',
    'google/gemma-3-4b-pt',
    'HuggingFaceTB/SmolLM3-3B-Base',
  ],
  hold: true,
  k: 8,
});
const submitted = run('node', [ptb, 'run', '--config', big]);
const job = submitted.stdout.trim();
const files = experimentFiles(join(layout.experiments, 'thousand'));
const subs = readFileSync(files.submissions, 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l))
  .filter((s) => s.job);
const queued = run('squeue', ['--noheader', '--array', `--jobs=${job}`, '--format=%i'])
  .stdout.trim()
  .split('\n').length;
say(
  `submit 1,000 trials (\`ptb run --scheduler slurm\`, whole CLI process): ${fmt(submitted.ms)} wall, ${fmt(submitted.cpuMs)} CPU; ` +
    `${subs.length} sbatch submission, ${subs[0].indices.length} indices, ${queued} array tasks queued (target ≤ 5 s)`,
);
run('scancel', [job]);

// ---- 2: status of 1,000 finished trials ----
const manifest = readManifest(files.manifest);
for (const e of manifest) {
  const lines = template.map((ev) =>
    JSON.stringify(ev.event === 'audit' ? { ...ev, id: newId('audit') } : ev),
  );
  appendFileSync(journalPath(e.dir), `${lines.join('\n')}\n`);
}
const trivial = run('sbatch', [
  '--parsable',
  '--array=0-999%100',
  '--output=/dev/null',
  '--wrap=true',
]).stdout.trim();
await waitAllDone(trivial, 1000);
writeFileSync(
  files.submissions,
  `${JSON.stringify({ ts: new Date().toISOString(), executor: 'slurm', job: trivial, indices: manifest.map((e) => e.index), command: ['sbatch'] })}\n`,
);
const firstStatus = run('node', [ptb, 'run', 'status', 'thousand', '--json']);
const counts = JSON.parse(firstStatus.stdout).counts;
const statusRuns = [0, 1, 2, 3, 4].map(() => run('node', [ptb, 'run', 'status', 'thousand', '--json']));
const sacctMs = median(
  [0, 1, 2].map(
    () =>
      run('sacct', [
        '--parsable2',
        '--noheader',
        '-X',
        `--jobs=${trivial}`,
        '--format=JobID,State,ExitCode,NodeList,Start,End,Reason',
      ]).ms,
  ),
);
say(
  `status of 1,000 trials (\`ptb run status --json\`, whole CLI process): ${fmt(median(statusRuns.map((r) => r.ms)))} wall, ` +
    `${fmt(median(statusRuns.map((r) => r.cpuMs)))} CPU, median of 5 ` +
    `(${fmt(firstStatus.ms)} the first time, indexing 1,000 grown journals); counts ${JSON.stringify(counts)}; ` +
    `of which sacct alone ${fmt(sacctMs)} (target ≤ 2 s)`,
);

// ---- 3: rebuild the head's index from 1,000 finished trial directories ----
const rebuilds: number[] = [];
for (let i = 0; i < 3; i++) {
  const dbPath = join(home, `rebuild-${i}.db`);
  const started = process.hrtime.bigint();
  const repo = new TrialRepo(openDb(dbPath));
  const sync = repo.syncDirs(trialRoots(layout), { rebuild: true });
  rebuilds.push(Number(process.hrtime.bigint() - started) / 1e6);
  if (sync.trials < 1000) throw new Error(`only ${sync.trials} trial journals found`);
}
for (const f of ['ptb.db', 'ptb.db-wal', 'ptb.db-shm']) rmSync(join(home, f), { force: true });
const report = run('node', [ptb, 'report', '--experiments', 'thousand*', '--format', 'json']);
say(
  `rebuild the index from ${manifest.length + 4} trial directories (fresh database, in process): median ${fmt(median(rebuilds))} of 3; ` +
    `\`ptb report\` with no database at all (rebuild + report, whole CLI process): ${fmt(report.ms)} wall, ${fmt(report.cpuMs)} CPU (target ≤ 10 s)`,
);
rmSync(home, { recursive: true, force: true });
