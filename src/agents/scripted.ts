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

/** `sft`: python/agents/sft.py on `train_data.jsonl` in the task dir; the agent config adds flags. */
export const sftAgent: AgentDefinition = {
  id: 'sft',
  displayName: 'Supervised fine-tuning script (transformers)',
  kind: 'scripted',
  traceFormat: 'text',
  env: () => ({}),
  command: (ctx: AgentRunContext) => [
    'python3',
    `${SANDBOX_PATHS.ptb}/python/agents/sft.py`,
    '--data',
    'train_data.jsonl',
    ...splitConfig(ctx.agentConfig),
  ],
};

export const SCRIPTED_AGENTS: readonly AgentDefinition[] = [noopAgent, copyBaseAgent, sftAgent];
