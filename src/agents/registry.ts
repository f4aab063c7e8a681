import { UserError } from '../core/errors.ts';
import { CLAUDE_AGENTS } from './definitions/claude.ts';
import { CODEX_AGENTS } from './definitions/codex.ts';
import { commandAgent } from './definitions/command.ts';
import { GEMINI_AGENTS } from './definitions/gemini.ts';
import { OPENCODE_AGENTS } from './definitions/opencode.ts';
import type { AgentDefinition } from './types.ts';

/**
 * Every agent ptb can run, in listing order. Adding an agent is one definition and one line here.
 */
export const AGENTS: readonly AgentDefinition[] = [
  ...CLAUDE_AGENTS,
  ...CODEX_AGENTS,
  ...GEMINI_AGENTS,
  ...OPENCODE_AGENTS,
  commandAgent,
];

const BY_ID = new Map(AGENTS.map((agent) => [agent.id, agent]));
if (BY_ID.size !== AGENTS.length) throw new Error('two agent definitions share an id');

export function getAgent(id: string): AgentDefinition {
  const agent = BY_ID.get(id);
  if (!agent) {
    throw new UserError(`unknown agent '${id}'`, `use one of: ${AGENTS.map((a) => a.id).join(', ')}`);
  }
  return agent;
}
