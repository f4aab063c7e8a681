import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../core/errors.ts';
import type { AgentDefinition, AgentRunContext, ProviderId } from '../types.ts';

/**
 * How an agent authenticates, and where the harness finds the real credential on the host. The real
 * credential goes to the model-call relay only; the sandbox gets the trial's relay token in its place.
 *
 * - `relay`: the CLI sends the relay token as its API key or OAuth token to the relay's URL, and the
 *   relay swaps in the real credential (an API key, or Claude's subscription OAuth token).
 * - `credential-file`: a subscription login file (Codex's ChatGPT `auth.json`) is copied into $HOME and
 *   the CLI talks to its provider directly through the egress proxy; these calls bypass the relay, so
 *   they are visible only in the egress ledger.
 * - `none`: no model access (scripted agents, or a `command` agent that brings its own).
 */
export type AgentAuth =
  | {
      mode: 'relay';
      provider: ProviderId;
      /** Host environment variables holding the real credential; the first one set wins. */
      hostEnv: readonly string[];
      /** Or a file under `PTB_HOME/credentials/` holding it (subscription OAuth tokens). */
      credentialFile?: string;
      /** Further providers relayed when the host has their keys (OpenCode reaches several). */
      alsoProviders?: readonly ProviderId[];
      /** When the agent config picks the provider (`opencode/…`, `anthropic/…`): that provider's key is the required one. */
      providerFor?(agentConfig: string): ProviderId | null;
    }
  | {
      mode: 'credential-file';
      provider: ProviderId;
      /** Files copied from `PTB_HOME/credentials/<from>` to `$HOME/<to>`. */
      files: ReadonlyArray<{ from: string; to: string }>;
      /** Hosts the CLI must reach directly. */
      egressHosts: readonly string[];
    }
  | {
      mode: 'none';
      /** Providers relayed when the host has their keys (a `command` agent may use any). */
      alsoProviders?: readonly ProviderId[];
    };

/** An agent definition with its authentication described (the CLI definitions here all have one). */
export interface AuthenticatedAgentDefinition extends AgentDefinition {
  auth: AgentAuth;
}

/** The `auth` of a definition; definitions without one (scripted agents) use no model. */
export function agentAuth(def: AgentDefinition): AgentAuth {
  return (def as Partial<AuthenticatedAgentDefinition>).auth ?? { mode: 'none' };
}

/** Host variables that hold each provider's API key, in order of preference. */
export const PROVIDER_KEY_ENV: Readonly<Record<ProviderId, readonly string[]>> = {
  anthropic: ['ANTHROPIC_API_KEY'],
  // The reference moves the host's OPENAI_API_KEY to CODEX_API_KEY for Codex.
  openai: ['CODEX_API_KEY', 'OPENAI_API_KEY'],
  gemini: ['GEMINI_API_KEY', 'GOOGLE_API_KEY'],
  opencode: ['OPENCODE_API_KEY'],
};

/** The relay's base URL for a provider inside the sandbox; the harness must have started that route. */
export function relayUrl(ctx: AgentRunContext, provider: ProviderId): string {
  const url = ctx.relayUrls[provider];
  if (!url) {
    throw new UserError(
      `the model relay has no route for provider '${provider}' in this trial`,
      `set the host's ${PROVIDER_KEY_ENV[provider].join(' or ')} so that ptb can relay ${provider} calls`,
    );
  }
  return url.replace(/\/+$/, '');
}

export function relayToken(ctx: AgentRunContext, provider: ProviderId): string {
  const token = ctx.relayTokens[provider];
  if (!token) throw new UserError(`no relay token for provider '${provider}' in this trial`);
  return token;
}

/** Reasoning-effort values the CLIs accept (`xhigh`/`max` only where the CLI knows them). */
export function checkEffort(agentId: string, effort: string | undefined, allowed: readonly string[]): void {
  if (effort !== undefined && !allowed.includes(effort)) {
    throw new UserError(
      `agent '${agentId}' does not know the reasoning effort '${effort}'`,
      `use one of: ${allowed.join(', ')}`,
    );
  }
}

/** A TOML basic string. */
export function tomlString(value: string): string {
  return JSON.stringify(value);
}

function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/**
 * The real credentials the relay holds for an agent's trial, read from the host environment or
 * `<credentialsDir>/<file>`. Throws a UserError when the agent's own credential is missing (the
 * reference's solve scripts exit in that case); further providers are relayed only where a key exists.
 * The values must stay in memory: never write them into the trial, its ledgers or the sandbox.
 */
export function relayCredentials(
  def: AgentDefinition,
  env: NodeJS.ProcessEnv,
  credentialsDir: string,
  agentConfig = '',
): Partial<Record<ProviderId, string>> {
  const auth = agentAuth(def);
  const keys: Partial<Record<ProviderId, string>> = {};
  for (const provider of auth.mode === 'credential-file' ? [] : (auth.alsoProviders ?? [])) {
    const key = firstSet(env, PROVIDER_KEY_ENV[provider]);
    if (key) keys[provider] = key;
  }
  if (auth.mode !== 'relay') return keys;
  const chosen = auth.providerFor?.(agentConfig) ?? null;
  const provider = chosen ?? auth.provider;
  const hostEnv = chosen ? PROVIDER_KEY_ENV[chosen] : auth.hostEnv;
  let key = firstSet(env, hostEnv);
  if (!key && auth.credentialFile) {
    const file = join(credentialsDir, auth.credentialFile);
    if (existsSync(file)) key = readFileSync(file, 'utf8').trim() || undefined;
  }
  if (!key) {
    const where = auth.credentialFile
      ? `${hostEnv.join(' or ')} or the file ${join(credentialsDir, auth.credentialFile)}`
      : hostEnv.join(' or ');
    throw new UserError(
      `agent '${def.id}' needs a ${provider} credential and none was found`,
      `set ${where} on the machine that runs the trial (it stays outside the sandbox)`,
    );
  }
  keys[provider] = key;
  return keys;
}

/** Files a `credential-file` agent needs, with their host sources; a UserError names the missing ones. */
export function credentialFilesFor(
  def: AgentDefinition,
  credentialsDir: string,
): Array<{ source: string; homePath: string }> {
  const auth = agentAuth(def);
  if (auth.mode !== 'credential-file') return [];
  const files = auth.files.map((file) => ({ source: join(credentialsDir, file.from), homePath: file.to }));
  const missing = files.filter((file) => !existsSync(file.source));
  if (missing.length > 0) {
    throw new UserError(
      `agent '${def.id}' needs the subscription login file ${missing.map((f) => f.source).join(', ')}`,
      `log in with the CLI on a trusted machine and copy its ${missing.map((f) => f.homePath).join(', ')} there`,
    );
  }
  return files;
}
