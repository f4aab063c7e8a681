import type { AgentFile, AgentRunContext } from '../types.ts';
import {
  type AuthenticatedAgentDefinition,
  checkEffort,
  relayToken,
  relayUrl,
  tomlString,
} from './common.ts';

/**
 * Codex CLI. The reference runs `codex --search exec --json -c model_reasoning_summary=detailed
 * --skip-git-repo-check --yolo --model <config> "<prompt>"`. Variants, as data:
 * - effort (`codexhigh`, `codexlow`, `*_high`, `*_xhigh`): `model_reasoning_effort` first in config.toml;
 *   `codexhigh`/`codexlow` also drop `--json` and the reasoning summary, so their trace is plain text;
 * - authentication: API key through the relay (Codex's built-in `openai` provider with OPENAI_BASE_URL
 *   pointing at the relay and CODEX_API_KEY = the relay token), or a ChatGPT subscription
 *   (`*_non_api*`: the user's `auth.json`, `forced_login_method = "chatgpt"`, direct egress);
 * - `*_reprompt`: when the CLI exits with at least 30 minutes left on the timer, resume the last
 *   session (`codex exec resume --last`) with a note of the time remaining, and repeat.
 */

export const CODEX_CLI = { npm: '@openai/codex', version: '0.98.0', bin: 'codex' } as const;

const EFFORTS = ['minimal', 'low', 'medium', 'high', 'xhigh'] as const;

/** Minutes that must remain on the timer for a reprompt variant to resume the session. */
export const REPROMPT_MIN_MINUTES = 30;

/** Our wording of the reference's resume message. */
export function repromptMessage(hours: number, minutes: number): string {
  return `You still have ${hours}h ${minutes}m left. Keep improving your result and push its score as high as you can.`;
}

interface CodexVariant {
  id: string;
  displayName: string;
  subscription: boolean;
  effort?: string;
  /** `--json` and the detailed reasoning summary (all but codexhigh/codexlow). */
  json: boolean;
  reprompt: boolean;
}

/** ~/.codex/config.toml: top-level keys first (TOML puts everything after a table header into it). */
function codexConfig(ctx: AgentRunContext, variant: CodexVariant): string {
  const effort = ctx.reasoningEffort ?? variant.effort;
  const lines = ['# Written by ptb for this trial.'];
  if (effort) lines.push(`model_reasoning_effort = ${tomlString(effort)}`);
  if (variant.subscription) lines.push('forced_login_method = "chatgpt"');
  lines.push(
    // No update check: the sandbox's only way out is the relay (or the egress proxy).
    'check_for_update_on_startup = false',
    '',
    `[projects.${tomlString(ctx.taskDir)}]`,
    'trust_level = "trusted"',
    '',
    // Commands the agent runs see the sandbox's environment, as in the reference (`inherit = "all"`).
    '[shell_environment_policy]',
    'inherit = "all"',
    '',
    '[shell_environment_policy.set]',
    'CI = "1"',
    '',
  );
  return lines.join('\n');
}

function codexFlags(ctx: AgentRunContext, variant: CodexVariant): string[] {
  return [
    ...(variant.json ? ['--json', '-c', 'model_reasoning_summary=detailed'] : []),
    '--skip-git-repo-check',
    '--yolo',
    '--model',
    ctx.agentConfig,
  ];
}

function codexDefinition(variant: CodexVariant): AuthenticatedAgentDefinition {
  return {
    id: variant.id,
    displayName: variant.displayName,
    kind: 'cli',
    install: { ...CODEX_CLI },
    provider: 'openai',
    traceFormat: variant.json ? 'codex-json' : 'text',
    auth: variant.subscription
      ? {
          mode: 'credential-file',
          provider: 'openai',
          files: [{ from: 'codex/auth.json', to: '.codex/auth.json' }],
          egressHosts: ['chatgpt.com', 'auth.openai.com'],
        }
      : { mode: 'relay', provider: 'openai', hostEnv: ['CODEX_API_KEY', 'OPENAI_API_KEY'] },
    env(ctx: AgentRunContext): Record<string, string> {
      if (variant.subscription) return { CODEX_API_KEY: '', OPENAI_API_KEY: '' };
      return {
        OPENAI_BASE_URL: `${relayUrl(ctx, 'openai')}/v1`,
        CODEX_API_KEY: relayToken(ctx, 'openai'),
        OPENAI_API_KEY: '',
      };
    },
    files(ctx: AgentRunContext): AgentFile[] {
      checkEffort(variant.id, ctx.reasoningEffort, EFFORTS);
      return [{ path: '.codex/config.toml', content: codexConfig(ctx, variant) }];
    },
    command(ctx: AgentRunContext) {
      return [CODEX_CLI.bin, '--search', 'exec', ...codexFlags(ctx, variant), ctx.prompt];
    },
    reprompt: variant.reprompt
      ? {
          minRemainingMinutes: REPROMPT_MIN_MINUTES,
          command: (ctx: AgentRunContext, hours: number, minutes: number) => [
            CODEX_CLI.bin,
            '--search',
            'exec',
            'resume',
            '--last',
            ...codexFlags(ctx, variant),
            repromptMessage(hours, minutes),
          ],
        }
      : undefined,
  };
}

const variants: CodexVariant[] = [
  { id: 'codex', displayName: 'Codex CLI (API key)', subscription: false, json: true, reprompt: false },
  {
    id: 'codexhigh',
    displayName: 'Codex CLI (API key, effort high, text trace)',
    subscription: false,
    effort: 'high',
    json: false,
    reprompt: false,
  },
  {
    id: 'codexlow',
    displayName: 'Codex CLI (API key, effort low, text trace)',
    subscription: false,
    effort: 'low',
    json: false,
    reprompt: false,
  },
  {
    id: 'codex_reprompt',
    displayName: 'Codex CLI (API key, resumed while 30+ minutes remain)',
    subscription: false,
    json: true,
    reprompt: true,
  },
  {
    id: 'codex_non_api',
    displayName: 'Codex CLI (ChatGPT subscription)',
    subscription: true,
    json: true,
    reprompt: false,
  },
  {
    id: 'codex_non_api_high',
    displayName: 'Codex CLI (ChatGPT subscription, effort high)',
    subscription: true,
    effort: 'high',
    json: true,
    reprompt: false,
  },
  {
    id: 'codex_non_api_xhigh',
    displayName: 'Codex CLI (ChatGPT subscription, effort xhigh)',
    subscription: true,
    effort: 'xhigh',
    json: true,
    reprompt: false,
  },
  {
    id: 'codex_non_api_reprompt',
    displayName: 'Codex CLI (ChatGPT subscription, resumed while 30+ minutes remain)',
    subscription: true,
    json: true,
    reprompt: true,
  },
  {
    id: 'codex_non_api_high_reprompt',
    displayName: 'Codex CLI (ChatGPT subscription, effort high, resumed while 30+ minutes remain)',
    subscription: true,
    effort: 'high',
    json: true,
    reprompt: true,
  },
  {
    id: 'codex_non_api_xhigh_reprompt',
    displayName: 'Codex CLI (ChatGPT subscription, effort xhigh, resumed while 30+ minutes remain)',
    subscription: true,
    effort: 'xhigh',
    json: true,
    reprompt: true,
  },
];

export const CODEX_AGENTS: readonly AuthenticatedAgentDefinition[] = variants.map(codexDefinition);
