import { z } from 'zod';
import type { SlurmResources } from './slurm/batchScript.ts';

/**
 * The grid's `scheduler:` block: where the trials run and what each one asks for. Unknown keys are
 * errors (a misspelt `partiton` must not silently submit to the default partition). Defaults follow the
 * reference's HTCondor job: 16 CPUs, 128 GiB, the grid's GPUs per trial.
 */
export const SchedulerBlockSchema = z
  .object({
    kind: z.enum(['local', 'slurm']).default('local'),
    partition: z.string().min(1).optional(),
    account: z.string().min(1).optional(),
    qos: z.string().min(1).optional(),
    constraint: z.string().min(1).optional(),
    cpus_per_trial: z.number().int().positive().default(16),
    /** Memory per trial in Slurm's syntax (`128G`, `64000M`). */
    mem: z
      .string()
      .regex(/^\d+[KMGT]?$/i, 'memory in Slurm syntax, e.g. 128G or 64000M')
      .default('128G'),
    /** Minutes on top of the agent's hours×60+5 for prepare, collect, audit and the final evaluation. */
    time_slack_minutes: z.number().int().min(0).default(120),
    /** At most this many trials at once (`--array=…%K`). */
    max_concurrent: z.number().int().positive().optional(),
    /** More sbatch options, each as sbatch takes it (`--reservation=x`, `--exclude=node3`). */
    extra_args: z
      .array(z.string().regex(/^--?[A-Za-z]/, 'an sbatch option such as --reservation=name'))
      .default([]),
    /** Slurm sends USR1 this long before the time limit: ptb stops the trial cleanly and requeues it. */
    signal_seconds: z.number().int().min(10).default(300),
    /** Trial directories, manifest and task logs; must be on a filesystem every compute node sees. */
    results_dir: z.string().min(1).optional(),
    /** PTB_HOME on the compute nodes (Python environment, caches); `$USER` is expanded on the node. */
    node_home: z.string().min(1).default('/tmp/ptb-$USER'),
    /** How compute nodes start ptb (default: this node and this ptb, which must be at the same paths there). */
    ptb_command: z.array(z.string().min(1)).min(1).optional(),
    /** A task preempted this many times is not requeued again (`ptb run resume` still can). */
    max_requeues: z.number().int().min(0).default(5),
  })
  .strict();
export type SchedulerBlock = z.infer<typeof SchedulerBlockSchema>;

/** Slurm's time limit for a grid whose longest agent budget is `hours`. */
export function slurmTimeMinutes(hours: number, block: SchedulerBlock): number {
  return Math.ceil(hours * 60) + 5 + block.time_slack_minutes;
}

export function slurmResources(block: SchedulerBlock, grid: { hours: number; gpus: number }): SlurmResources {
  const timeMinutes = slurmTimeMinutes(grid.hours, block);
  return {
    partition: block.partition ?? null,
    account: block.account ?? null,
    qos: block.qos ?? null,
    constraint: block.constraint ?? null,
    gpusPerTask: grid.gpus,
    cpusPerTask: block.cpus_per_trial,
    mem: block.mem.toUpperCase(),
    timeMinutes,
    // A warning longer than half the job would stop short trials for nothing.
    signalSeconds: Math.min(block.signal_seconds, Math.floor((timeMinutes * 60) / 2)),
    extraArgs: block.extra_args,
  };
}
