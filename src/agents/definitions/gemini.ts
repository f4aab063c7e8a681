import type { AgentFile, AgentRunContext } from '../types.ts';
import { type AuthenticatedAgentDefinition, relayToken, relayUrl } from './common.ts';

/**
 * Gemini CLI: `gemini --yolo --model <config> --output-format stream-json -p "<prompt>"` with
 * GEMINI_SANDBOX=false, as in the reference. The Gemini API client of the pinned version reads its base
 * URL from GOOGLE_GEMINI_BASE_URL, so the CLI reaches the provider through the relay with the relay token
 * as GEMINI_API_KEY.
 */

export const GEMINI_CLI = { npm: '@google/gemini-cli', version: '0.29.0', bin: 'gemini' } as const;

/** ~/.gemini/settings.json: no update checks or usage statistics (they would try to leave the sandbox). */
function geminiSettings(): string {
  return `${JSON.stringify(
    {
      general: { enableAutoUpdate: false, enableAutoUpdateNotification: false },
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
    },
    null,
    2,
  )}\n`;
}

export const geminiAgent: AuthenticatedAgentDefinition = {
  id: 'gemini',
  displayName: 'Gemini CLI (API key)',
  kind: 'cli',
  install: { ...GEMINI_CLI },
  provider: 'gemini',
  traceFormat: 'gemini-stream-json',
  auth: { mode: 'relay', provider: 'gemini', hostEnv: ['GEMINI_API_KEY', 'GOOGLE_API_KEY'] },
  env(ctx: AgentRunContext) {
    return {
      GOOGLE_GEMINI_BASE_URL: relayUrl(ctx, 'gemini'),
      GEMINI_API_KEY: relayToken(ctx, 'gemini'),
      GEMINI_SANDBOX: 'false',
    };
  },
  files(): AgentFile[] {
    return [{ path: '.gemini/settings.json', content: geminiSettings() }];
  },
  command(ctx: AgentRunContext) {
    return [
      GEMINI_CLI.bin,
      '--yolo',
      '--model',
      ctx.agentConfig,
      '--output-format',
      'stream-json',
      '-p',
      ctx.prompt,
    ];
  },
};

export const GEMINI_AGENTS = [geminiAgent] as const;
