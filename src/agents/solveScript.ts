/**
 * `agent_solve.sh`: the bash script the sandbox runs for a CLI or command agent (the reference's
 * solve.sh per agent, generated from the definition). It exports the definition's environment, enters
 * the task directory, runs the command and, for reprompt variants, resumes the session while enough time
 * remains on `timer.sh`. Config files are not written by the script: the harness writes them into $HOME
 * before the sandbox starts (`writeAgentHome`).
 *
 * Every value is single-quoted, so prompts with quotes, backticks, `$`, backslashes and newlines reach
 * the CLI byte for byte.
 */
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { AgentDefinition, AgentFile, AgentRunContext } from './types.ts';

export const SOLVE_SCRIPT_NAME = 'agent_solve.sh';

/** Resumed runs that fail this many times in a row end the loop (a CLI that cannot start would spin). */
export const MAX_CONSECUTIVE_REPROMPT_FAILURES = 3;

/** Quote one word for bash: `'…'` with embedded single quotes as `'\''`. */
export function shellQuote(value: string): string {
  if (value !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Stand-ins for the timer's hours and minutes while a reprompt command is rendered; after quoting they
// are replaced by the shell variables, so the definition's function stays a plain (ctx, h, m) => argv.
const HOURS_SENTINEL = 987_654_321;
const MINUTES_SENTINEL = 987_654_322;

function repromptCommandLine(def: AgentDefinition, ctx: AgentRunContext): string {
  const argv = def.reprompt!.command(ctx, HOURS_SENTINEL, MINUTES_SENTINEL);
  return argv
    .map((word) => {
      const quoted = shellQuote(word);
      const spliced = quoted
        .replaceAll(String(HOURS_SENTINEL), `'"$ptb_hours"'`)
        .replaceAll(String(MINUTES_SENTINEL), `'"$ptb_minutes"'`);
      // An unquoted word (no special characters) needs quotes around the splice too.
      return spliced === quoted || quoted.startsWith("'") ? spliced : `'${spliced}'`;
    })
    .join(' ');
}

export interface SolveScriptOptions {
  def: AgentDefinition;
  ctx: AgentRunContext;
  /** Directories put in front of PATH (the CLI's bin directory inside the sandbox). */
  pathPrepend?: readonly string[];
  /** timer.sh inside the sandbox (default `<taskDir>/timer.sh`). */
  timerPath?: string;
}

export function buildSolveScript(options: SolveScriptOptions): string {
  const { def, ctx } = options;
  const env = def.env(ctx);
  const command = def.command(ctx);
  const lines = ['#!/bin/bash', `# Written by ptb: runs agent '${def.id}' in the task directory.`, ''];
  if (options.pathPrepend && options.pathPrepend.length > 0) {
    lines.push(`export PATH=${options.pathPrepend.map(shellQuote).join(':')}:"$PATH"`);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name))
      throw new Error(`agent '${def.id}' sets an invalid environment variable name: ${name}`);
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  lines.push(`cd ${shellQuote(ctx.taskDir)} || exit 1`, '', shellCommand(command), 'ptb_status=$?');
  if (def.reprompt) {
    const timer = options.timerPath ?? `${ctx.taskDir.replace(/\/+$/, '')}/timer.sh`;
    lines.push(
      '',
      `# Resume the session while at least ${def.reprompt.minRemainingMinutes} minutes remain on the timer.`,
      `ptb_timer_pattern='Remaining time \\(hours:minutes\\):[[:space:]]*([0-9]+):([0-9]+)'`,
      'ptb_failures=0',
      'while :; do',
      `  ptb_timer_out=$(bash ${shellQuote(timer)} 2>&1)`,
      `  if [[ $ptb_timer_out == *'Timer expired!'* ]]; then`,
      `    echo 'ptb: the timer has expired; not resuming' >&2`,
      '    break',
      '  fi',
      '  if [[ $ptb_timer_out =~ $ptb_timer_pattern ]]; then',
      `    ptb_hours=$((10#\${BASH_REMATCH[1]}))`,
      `    ptb_minutes=$((10#\${BASH_REMATCH[2]}))`,
      '  else',
      `    echo 'ptb: could not read the time left from timer.sh; not resuming' >&2`,
      '    break',
      '  fi',
      `  if (( ptb_hours * 60 + ptb_minutes < ${def.reprompt.minRemainingMinutes} )); then`,
      `    echo "ptb: \${ptb_hours}h \${ptb_minutes}m left, under ${def.reprompt.minRemainingMinutes} minutes; not resuming" >&2`,
      '    break',
      '  fi',
      `  echo "ptb: \${ptb_hours}h \${ptb_minutes}m left; resuming the session" >&2`,
      `  ${repromptCommandLine(def, ctx)}`,
      '  ptb_status=$?',
      '  if (( ptb_status != 0 )); then ptb_failures=$((ptb_failures + 1)); else ptb_failures=0; fi',
      `  if (( ptb_failures >= ${MAX_CONSECUTIVE_REPROMPT_FAILURES} )); then`,
      `    echo "ptb: the resumed session failed ${MAX_CONSECUTIVE_REPROMPT_FAILURES} times in a row; stopping" >&2`,
      '    break',
      '  fi',
      'done',
    );
  }
  lines.push('exit $ptb_status', '');
  return lines.join('\n');
}

/** A definition's file path, checked to stay inside $HOME. */
function homeRelative(file: AgentFile, agentId: string): string {
  const path = normalize(file.path);
  if (isAbsolute(path) || path === '..' || path.startsWith('../')) {
    throw new Error(`agent '${agentId}' writes a file outside its home: ${file.path}`);
  }
  return path;
}

export interface AgentHomeFiles {
  /** Host path of agent_solve.sh. */
  scriptPath: string;
  /** Host paths of the config files written. */
  files: string[];
}

/**
 * Write the definition's config files and agent_solve.sh into the agent's home directory on the host
 * (mode 0600/0700: they hold the relay token). `owner` is the host user the sandbox runs as
 * (`sandboxHostIds()`), which must be able to read and change them; directories created on the way
 * are given to it too.
 */
export function writeAgentHome(
  options: SolveScriptOptions & { hostHome: string; owner?: { uid: number; gid: number } },
): AgentHomeFiles {
  const { hostHome, owner } = options;
  const give = (path: string) => {
    if (owner) chownSync(path, owner.uid, owner.gid);
  };
  const makeDirs = (dir: string) => {
    const created = mkdirSync(dir, { recursive: true });
    if (!created || !owner) return;
    // mkdirSync returns the first directory it created; hand every new level to the owner.
    for (let path = dir; path.length >= created.length; path = dirname(path)) give(path);
  };
  makeDirs(hostHome);
  const written: string[] = [];
  for (const file of options.def.files?.(options.ctx) ?? []) {
    const target = join(hostHome, homeRelative(file, options.def.id));
    makeDirs(dirname(target));
    writeFileSync(target, file.content, { mode: 0o600 });
    chmodSync(target, 0o600);
    give(target);
    written.push(target);
  }
  const scriptPath = join(hostHome, SOLVE_SCRIPT_NAME);
  writeFileSync(scriptPath, buildSolveScript(options), { mode: 0o700 });
  chmodSync(scriptPath, 0o700);
  give(scriptPath);
  return { scriptPath, files: written };
}
