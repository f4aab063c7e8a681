import { join } from 'node:path';

/**
 * Files of one trial directory (`PTB_HOME/trials/<id>/`). Upstream's file names are kept where upstream
 * has one, so upstream scripts run on our output and `ptb export` is a copy.
 */
export function trialLayout(root: string) {
  const ledgers = join(root, 'ledgers');
  const work = join(root, 'work');
  return {
    root,
    /** The TrialSpec as JSON. */
    spec: join(root, 'trial.json'),
    /** The trial's durable record: every change, one JSON event per line, appended only (store/trialJournal.ts). */
    journal: join(root, 'journal.jsonl'),
    prompt: join(root, 'prompt.txt'),
    /** Agent stdout+stderr, every line prefixed `[YYYY-MM-DDTHH:MM:SSZ] `. */
    solveOut: join(root, 'solve_out.txt'),
    solveParsed: join(root, 'solve_parsed.txt'),
    trajectory: join(root, 'trajectory.json'),
    timeTaken: join(root, 'time_taken.txt'),
    outputLog: join(root, 'output.log'),
    errorLog: join(root, 'error.log'),
    metrics: join(root, 'metrics.json'),
    systemMonitorLog: join(root, 'system_monitor.log'),
    contaminationJudgement: join(root, 'contamination_judgement.txt'),
    disallowedModelJudgement: join(root, 'disallowed_model_judgement.txt'),
    finalModel: join(root, 'final_model'),
    /** The agent's task directory, copied after the agent phase without model weights. */
    taskSnapshot: join(root, 'task'),
    /** Final evaluation run directory (ptb eval's outputs). */
    evalDir: join(root, 'eval'),
    /** audit/<audit-id>/verdicts.json, one folder per audit run. */
    audits: join(root, 'audit'),
    ledgers: {
      dir: ledgers,
      egress: join(ledgers, 'egress.jsonl'),
      modelCalls: join(ledgers, 'model_calls.jsonl'),
      downloads: join(ledgers, 'downloads.jsonl'),
      inRunEvals: join(ledgers, 'inrun_evals.jsonl'),
      monitor: join(ledgers, 'monitor.jsonl'),
      manifestStart: join(ledgers, 'manifest_start.json'),
      manifestEnd: join(ledgers, 'manifest_end.json'),
      sandbox: join(ledgers, 'sandbox.json'),
      /** The GPU gate's answer and the GPUs (host indices, UUIDs, device nodes) the agent was given. */
      gpus: join(ledgers, 'gpus.json'),
      /** One line per final-evaluation engine attempt run in the model sandbox (what it saw, how it ended). */
      evalSandbox: join(ledgers, 'eval_sandbox.jsonl'),
    },
    /** The live workspace the sandbox sees. */
    work: {
      dir: work,
      /** The agent's $HOME (`/home/agent` inside). */
      home: join(work, 'home'),
      /** `$HOME/task`: the agent's working directory. */
      task: join(work, 'home', 'task'),
      /** The private /tmp. */
      tmp: join(work, 'tmp'),
      /** Writable upper layer over the read-only Hugging Face cache; discarded after the trial. */
      hfUpper: join(work, 'hf_upper'),
    },
  };
}
export type TrialLayout = ReturnType<typeof trialLayout>;

/** Paths as the agent sees them inside the sandbox. */
export const SANDBOX_PATHS = {
  home: '/home/agent',
  task: '/home/agent/task',
  hfCache: '/home/agent/hf_cache',
  tmp: '/tmp',
  /** Read-only ptb installation (the agent-facing evaluate.py runs ptb from here). */
  ptb: '/opt/ptb',
  /** Harness channel: Unix sockets of the egress proxy and the model relay. */
  harness: '/run/ptb',
} as const;
