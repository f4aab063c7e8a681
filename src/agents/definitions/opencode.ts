import type { AgentFile, AgentRunContext, ProviderId } from '../types.ts';
import { type AuthenticatedAgentDefinition, relayToken } from './common.ts';

/**
 * OpenCode: `opencode run --model <provider/model> --format json "<prompt>"` with every tool allowed, as
 * in the reference. Which provider it calls depends on the config's prefix (`opencode/kimi-k2.5` is
 * OpenCode Zen, `anthropic/claude-opus-4-5`, `openai/gpt-5.1-codex-max`, `google/gemini-3-pro`), so
 * opencode.json points every provider the relay serves in this trial at the relay, with the relay token
 * as its key.
 */

export const OPENCODE_CLI = { npm: 'opencode-ai', version: '1.1.58', bin: 'opencode' } as const;

/** OpenCode's provider ids for the relay's providers, the path of their API and the key variable. */
const OPENCODE_PROVIDERS: Record<ProviderId, { id: string; apiPath: string; keyEnv: string }> = {
  anthropic: { id: 'anthropic', apiPath: '/v1', keyEnv: 'ANTHROPIC_API_KEY' },
  openai: { id: 'openai', apiPath: '/v1', keyEnv: 'OPENAI_API_KEY' },
  gemini: { id: 'google', apiPath: '/v1beta', keyEnv: 'GOOGLE_GENERATIVE_AI_API_KEY' },
  opencode: { id: 'opencode', apiPath: '/v1', keyEnv: 'OPENCODE_API_KEY' },
};

/** The provider a config string names (`opencode/kimi-k2.5` → opencode). */
export function opencodeProvider(agentConfig: string): ProviderId | null {
  const prefix = agentConfig.split('/')[0] ?? '';
  for (const [provider, info] of Object.entries(OPENCODE_PROVIDERS)) {
    if (info.id === prefix) return provider as ProviderId;
  }
  return null;
}

function relayedProviders(ctx: AgentRunContext): ProviderId[] {
  return (Object.keys(ctx.relayUrls) as ProviderId[]).filter((p) => ctx.relayUrls[p] && ctx.relayTokens[p]);
}

function opencodeConfig(ctx: AgentRunContext): string {
  const provider: Record<string, unknown> = {};
  for (const p of relayedProviders(ctx)) {
    const info = OPENCODE_PROVIDERS[p];
    provider[info.id] = {
      options: {
        baseURL: `${ctx.relayUrls[p]!.replace(/\/+$/, '')}${info.apiPath}`,
        apiKey: `{env:${info.keyEnv}}`,
      },
    };
  }
  return `${JSON.stringify(
    {
      $schema: 'https://opencode.ai/config.json',
      permission: 'allow',
      autoupdate: false,
      share: 'disabled',
      provider,
    },
    null,
    2,
  )}\n`;
}

export const opencodeAgent: AuthenticatedAgentDefinition = {
  id: 'opencode',
  displayName: 'OpenCode',
  kind: 'cli',
  install: { ...OPENCODE_CLI },
  provider: 'opencode',
  traceFormat: 'opencode-json',
  auth: {
    mode: 'relay',
    provider: 'opencode',
    hostEnv: ['OPENCODE_API_KEY'],
    alsoProviders: ['anthropic', 'openai', 'gemini'],
    providerFor: opencodeProvider,
  },
  env(ctx: AgentRunContext) {
    const env: Record<string, string> = {};
    for (const p of relayedProviders(ctx)) env[OPENCODE_PROVIDERS[p].keyEnv] = relayToken(ctx, p);
    return env;
  },
  files(ctx: AgentRunContext): AgentFile[] {
    return [{ path: '.config/opencode/opencode.json', content: opencodeConfig(ctx) }];
  },
  command(ctx: AgentRunContext) {
    return [OPENCODE_CLI.bin, 'run', '--model', ctx.agentConfig, '--format', 'json', ctx.prompt];
  },
};

export const OPENCODE_AGENTS = [opencodeAgent] as const;
