import { UserError } from '../core/errors.ts';
import { SANDBOX_PATHS } from '../core/trialLayout.ts';
import type { AgentDefinition, AgentRunContext } from './types.ts';

/**
 * Scripted baseline agents: real programs, no model API. They show what the harness scores when an
 * agent does nothing, submits the base model, or does a plain supervised fine-tune on allowed data.
 */

function splitConfig(config: string): string[] {
  return config.trim() === '' ? [] : config.trim().split(/\s+/);
}

export const noopAgent: AgentDefinition = {
  id: 'noop',
  displayName: 'No-op (submits nothing)',
  kind: 'scripted',
  traceFormat: 'text',
  env: () => ({}),
  command: () => ['bash', '-c', 'echo "noop agent: looked around, submitting nothing"; ls -la'],
};

export const copyBaseAgent: AgentDefinition = {
  id: 'copy-base',
  displayName: 'Copy base (submits the base model unchanged)',
  kind: 'scripted',
  traceFormat: 'text',
  env: () => ({}),
  command: () => [
    'bash',
    '-c',
    'set -e; cp -rL "$PTB_BASE_MODEL_PATH" final_model; echo "copy-base agent: copied $(ls final_model | wc -l) files"',
  ],
};

/**
 * How many training processes the sft agent starts, and whether under torchrun: `--nproc-per-node N`
 * in its config (taken out of the script's own flags) always means torchrun, even with one process;
 * otherwise one process per GPU of the trial, under torchrun when there are several.
 */
export function sftProcesses(ctx: Pick<AgentRunContext, 'agentConfig' | 'gpus'>): {
  processes: number;
  torchrun: boolean;
  flags: string[];
} {
  const flags = splitConfig(ctx.agentConfig);
  const at = flags.findIndex((f) => f === '--nproc-per-node' || f.startsWith('--nproc-per-node='));
  if (at < 0) return { processes: Math.max(1, ctx.gpus), torchrun: ctx.gpus > 1, flags };
  const inline = flags[at]!.includes('=');
  const value = inline ? flags[at]!.split('=')[1] : flags[at + 1];
  const processes = Number(value);
  if (!Number.isInteger(processes) || processes < 1)
    throw new UserError(
      `the sft agent's --nproc-per-node needs a whole number of processes, got ${value ?? 'nothing'}`,
      'e.g. --agent-config "--nproc-per-node 2"',
    );
  flags.splice(at, inline ? 1 : 2);
  return { processes, torchrun: true, flags };
}

/**
 * `sft`: python/agents/sft.py on `train_data.jsonl` in the task dir; the agent config adds flags.
 * With several GPUs (or `--nproc-per-node N`) it runs under torchrun, one data-parallel process per
 * GPU on this node (`--standalone`: a rendezvous on the sandbox's own loopback).
 */
export const sftAgent: AgentDefinition = {
  id: 'sft',
  displayName: 'Supervised fine-tuning script (transformers)',
  kind: 'scripted',
  traceFormat: 'text',
  env: () => ({}),
  command: (ctx: AgentRunContext) => {
    const { processes, torchrun, flags } = sftProcesses(ctx);
    const launcher = torchrun
      ? ['python3', '-m', 'torch.distributed.run', '--standalone', `--nproc-per-node=${processes}`]
      : ['python3'];
    return [...launcher, `${SANDBOX_PATHS.ptb}/python/agents/sft.py`, '--data', 'train_data.jsonl', ...flags];
  },
};

export const SCRIPTED_AGENTS: readonly AgentDefinition[] = [noopAgent, copyBaseAgent, sftAgent];
