import { UserError } from '../core/errors.ts';
import { AGENTS } from './registry.ts';
import { SCRIPTED_AGENTS } from './scripted.ts';
import type { AgentDefinition } from './types.ts';

/** Every agent ptb can run: the scaffolds of the registry and the scripted baselines. */
export function allAgents(): AgentDefinition[] {
  const seen = new Set<string>();
  return [...AGENTS, ...SCRIPTED_AGENTS].filter((a) => !seen.has(a.id) && seen.add(a.id));
}

export function findAgent(id: string): AgentDefinition {
  const agent = allAgents().find((a) => a.id === id);
  if (!agent) {
    throw new UserError(
      `unknown agent ${id}`,
      `choose one of: ${allAgents()
        .map((a) => a.id)
        .join(', ')}`,
    );
  }
  return agent;
}
