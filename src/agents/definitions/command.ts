import { UserError } from '../../core/errors.ts';
import type { AgentRunContext, ProviderId } from '../types.ts';
import type { AuthenticatedAgentDefinition } from './common.ts';

/**
 * `command`: any executable as the agent, which is how users plug in their own scaffolds. It runs in the
 * task directory with the prompt in $PROMPT (as the reference's solve scripts receive it) and, for every
 * provider the relay serves in this trial, the variables the providers' own SDKs read: base URL and key
 * (the relay token). The trace is the command's output as text.
 */

/** The SDK variables per provider: base-URL variable (with the API path it expects) and key variable. */
const SDK_ENV: Record<ProviderId, { baseUrl: string; apiPath: string; key: string }> = {
  anthropic: { baseUrl: 'ANTHROPIC_BASE_URL', apiPath: '', key: 'ANTHROPIC_API_KEY' },
  openai: { baseUrl: 'OPENAI_BASE_URL', apiPath: '/v1', key: 'OPENAI_API_KEY' },
  gemini: { baseUrl: 'GOOGLE_GEMINI_BASE_URL', apiPath: '', key: 'GEMINI_API_KEY' },
  opencode: { baseUrl: 'OPENCODE_BASE_URL', apiPath: '/v1', key: 'OPENCODE_API_KEY' },
};

export const commandAgent: AuthenticatedAgentDefinition = {
  id: 'command',
  displayName: 'Any command (your own scaffold)',
  kind: 'command',
  traceFormat: 'text',
  auth: { mode: 'none', alsoProviders: ['anthropic', 'openai', 'gemini', 'opencode'] },
  env(ctx: AgentRunContext) {
    const env: Record<string, string> = {
      PROMPT: ctx.prompt,
      AGENT_CONFIG: ctx.agentConfig,
    };
    for (const provider of Object.keys(ctx.relayUrls) as ProviderId[]) {
      const url = ctx.relayUrls[provider];
      const token = ctx.relayTokens[provider];
      if (!url || !token) continue;
      const names = SDK_ENV[provider];
      env[names.baseUrl] = `${url.replace(/\/+$/, '')}${names.apiPath}`;
      env[names.key] = token;
    }
    return env;
  },
  command(ctx: AgentRunContext) {
    if (!ctx.agentCommand || ctx.agentCommand.length === 0) {
      throw new UserError(
        "the 'command' agent needs a command to run",
        'set the trial\'s agentCommand to the executable and its arguments (e.g. ["python3", "my_agent.py"])',
      );
    }
    return [...ctx.agentCommand];
  },
};
