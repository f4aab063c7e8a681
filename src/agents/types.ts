import type { BenchmarkId } from '../core/schemas.ts';

/** Trace formats the parsers in src/agents/traces understand. */
export type TraceFormat =
  | 'claude-stream-json'
  | 'codex-json'
  | 'gemini-stream-json'
  | 'opencode-json'
  | 'text';

/** Providers the model-call relay forwards to. */
export type ProviderId = 'anthropic' | 'openai' | 'gemini' | 'opencode';

/** What the harness knows when it builds an agent's command (all paths are sandbox paths). */
export interface AgentRunContext {
  /** The rendered prompt. */
  prompt: string;
  /** The agent's model / config string (`claude-opus-4-6`, `gpt-5.3-codex`, ...). */
  agentConfig: string;
  benchmark: BenchmarkId;
  baseModel: string;
  hours: number;
  gpus: number;
  /** $HOME and the task directory inside the sandbox. */
  home: string;
  taskDir: string;
  /** Base URLs (inside the sandbox) of the harness relay, one per provider. */
  relayUrls: Partial<Record<ProviderId, string>>;
  /**
   * Per-trial relay tokens: what the CLI sends as its API key. The relay swaps them for the real keys,
   * which never enter the sandbox.
   */
  relayTokens: Partial<Record<ProviderId, string>>;
  /** Subscription credential files mounted into $HOME (e.g. `.codex/auth.json`), when the user gave them. */
  credentialFiles: string[];
  /** Reasoning effort setting when the definition supports one. */
  reasoningEffort?: string;
  /** For the `command` agent. */
  agentCommand?: string[];
}

/** A file the harness writes into the agent's home before it starts (config files of the CLI). */
export interface AgentFile {
  /** Path relative to $HOME. */
  path: string;
  content: string;
}

/**
 * A scaffold as data: how to install it, which provider it talks to, what to write, what to run.
 * Adding an agent = adding one definition file and one registry line.
 */
export interface AgentDefinition {
  id: string;
  displayName: string;
  kind: 'cli' | 'scripted' | 'command';
  /** Pinned npm package providing the CLI. */
  install?: { npm: string; version: string; bin: string };
  provider?: ProviderId;
  traceFormat: TraceFormat;
  /** Appended to the prompt (the reference adds the non-interactive line for Claude Code only). */
  promptSuffix?: string;
  /** Environment inside the sandbox (added to the harness's base environment). */
  env(ctx: AgentRunContext): Record<string, string>;
  /** Files written into $HOME before the agent starts. */
  files?(ctx: AgentRunContext): AgentFile[];
  /** argv run in the task directory. */
  command(ctx: AgentRunContext): string[];
  /**
   * Reprompt variant: after the CLI exits, while at least `minRemainingMinutes` remain on the timer,
   * resume the session with this command (`remaining` is the timer's `H:MM`).
   */
  reprompt?: {
    minRemainingMinutes: number;
    command(ctx: AgentRunContext, hours: number, minutes: number): string[];
  };
}
