import type { AgentRunContext } from '../types.ts';
import { type AuthenticatedAgentDefinition, checkEffort, relayToken, relayUrl } from './common.ts';

/**
 * Claude Code. The reference runs `claude --print --verbose --model <config> --output-format stream-json
 * --dangerously-skip-permissions "<prompt>"` with the bash tool's timeout raised to 10 hours. Variants
 * differ only in authentication and effort:
 * - `claude`: API key; the only variant whose prompt gets the non-interactive line.
 * - `claude_non_api`: a Claude subscription's OAuth token (`CLAUDE_CODE_OAUTH_TOKEN`), `--effort high`.
 * - `claude_non_api_max`: the same token, effort `max` through `CLAUDE_CODE_EFFORT_LEVEL`.
 * Inside the sandbox the key or token is the trial's relay token; the relay holds the real one.
 */

export const CLAUDE_CODE = { npm: '@anthropic-ai/claude-code', version: '2.1.76', bin: 'claude' } as const;

const EFFORTS = ['low', 'medium', 'high', 'max'] as const;

/** Our wording of the reference's note for `claude` (its prompt mentions no non-interactive mode otherwise). */
export const NON_INTERACTIVE_NOTE =
  'You are running non-interactively: make sure every process you start has finished before you write your final message.';

interface ClaudeVariant {
  id: string;
  displayName: string;
  subscription: boolean;
  /** Passed as `--effort`; the run's own effort setting overrides it. */
  effortFlag?: string;
  /** Set as CLAUDE_CODE_EFFORT_LEVEL. */
  effortEnv?: string;
  promptSuffix?: string;
}

function claudeDefinition(variant: ClaudeVariant): AuthenticatedAgentDefinition {
  return {
    id: variant.id,
    displayName: variant.displayName,
    kind: 'cli',
    install: { ...CLAUDE_CODE },
    provider: 'anthropic',
    traceFormat: 'claude-stream-json',
    promptSuffix: variant.promptSuffix,
    auth: variant.subscription
      ? {
          mode: 'relay',
          provider: 'anthropic',
          hostEnv: ['CLAUDE_CODE_OAUTH_TOKEN'],
          credentialFile: 'claude_oauth_token',
        }
      : { mode: 'relay', provider: 'anthropic', hostEnv: ['ANTHROPIC_API_KEY'] },
    env(ctx: AgentRunContext) {
      const token = relayToken(ctx, 'anthropic');
      return {
        ANTHROPIC_BASE_URL: relayUrl(ctx, 'anthropic'),
        // The subscription variants blank the API key so that Claude Code uses the OAuth token.
        ANTHROPIC_API_KEY: variant.subscription ? '' : token,
        ...(variant.subscription ? { CLAUDE_CODE_OAUTH_TOKEN: token } : {}),
        ...(variant.effortEnv ? { CLAUDE_CODE_EFFORT_LEVEL: variant.effortEnv } : {}),
        // The reference's 10-hour ceiling for one bash tool call.
        BASH_MAX_TIMEOUT_MS: '36000000',
        // No update checks, telemetry or error reports: the sandbox's only way out is the relay.
        DISABLE_AUTOUPDATER: '1',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        // Claude Code refuses --dangerously-skip-permissions as root unless told it is sandboxed.
        IS_SANDBOX: '1',
      };
    },
    command(ctx: AgentRunContext) {
      checkEffort(variant.id, ctx.reasoningEffort, EFFORTS);
      const effort = ctx.reasoningEffort ?? variant.effortFlag;
      return [
        CLAUDE_CODE.bin,
        '--print',
        '--verbose',
        '--model',
        ctx.agentConfig,
        '--output-format',
        'stream-json',
        '--dangerously-skip-permissions',
        ...(effort ? ['--effort', effort] : []),
        ctx.prompt,
      ];
    },
  };
}

export const claudeAgent = claudeDefinition({
  id: 'claude',
  displayName: 'Claude Code (API key)',
  subscription: false,
  promptSuffix: NON_INTERACTIVE_NOTE,
});

export const claudeNonApiAgent = claudeDefinition({
  id: 'claude_non_api',
  displayName: 'Claude Code (subscription OAuth token, effort high)',
  subscription: true,
  effortFlag: 'high',
});

export const claudeNonApiMaxAgent = claudeDefinition({
  id: 'claude_non_api_max',
  displayName: 'Claude Code (subscription OAuth token, effort max)',
  subscription: true,
  effortEnv: 'max',
});

export const CLAUDE_AGENTS = [claudeAgent, claudeNonApiAgent, claudeNonApiMaxAgent] as const;
