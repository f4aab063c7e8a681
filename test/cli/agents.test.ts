import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempHome } from '../helpers/runCli.ts';

interface Row {
  id: string;
  cli: string | null;
  pinned_version: string | null;
  installed: boolean | null;
  installed_version: string | null;
  status: string;
  provider: string | null;
  auth: string;
  trace_format: string;
  reprompt: boolean;
}

/** Lay out what a finished install looks like, with a CLI that reports `version`. */
function fakeInstall(home: string, key: string, pkg: string, pinned: string, bin: string, version: string) {
  const dir = join(home, 'agents', key);
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  mkdirSync(join(dir, 'node_modules', pkg), { recursive: true });
  writeFileSync(
    join(dir, 'node_modules', pkg, 'package.json'),
    JSON.stringify({ name: pkg, version: pinned }),
  );
  writeFileSync(join(dir, 'node_modules', '.bin', bin), `#!/bin/bash\necho "${version} (${bin})"\n`);
  chmodSync(join(dir, 'node_modules', '.bin', bin), 0o755);
  writeFileSync(
    join(dir, '.ptb-install.json'),
    JSON.stringify({ package: pkg, version: pinned, installedAt: new Date().toISOString(), durationMs: 1 }),
  );
}

describe('ptb agents', () => {
  it('--json lists every agent with its pinned CLI, provider and install status', async () => {
    const home = tempHome();
    fakeInstall(home, 'claude-2.1.76', '@anthropic-ai/claude-code', '2.1.76', 'claude', '2.1.76');
    fakeInstall(home, 'codex-0.98.0', '@openai/codex', '0.98.0', 'codex', '0.97.0');
    const run = await runCli(['agents', '--json'], { PTB_HOME: home });
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as Row[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    expect(byId.get('claude')).toMatchObject({
      cli: '@anthropic-ai/claude-code',
      pinned_version: '2.1.76',
      installed: true,
      installed_version: '2.1.76',
      status: 'ok',
      provider: 'anthropic',
      auth: 'relay',
      trace_format: 'claude-stream-json',
    });
    // variants share the install and its status
    expect(byId.get('claude_non_api_max')).toMatchObject({ installed: true, status: 'ok' });
    expect(byId.get('codex_non_api_reprompt')).toMatchObject({
      installed: true,
      installed_version: '0.97.0',
      status: 'reports version 0.97.0, pinned 0.98.0',
      auth: 'credential-file',
      reprompt: true,
    });
    expect(byId.get('gemini')).toMatchObject({
      installed: false,
      status: 'not installed',
      provider: 'gemini',
    });
    expect(byId.get('opencode')).toMatchObject({ cli: 'opencode-ai', installed: false });
    expect(byId.get('command')).toMatchObject({ cli: null, installed: null, trace_format: 'text' });
  });

  it('the table names the missing installs once per CLI', async () => {
    const run = await runCli(['agents', '--no-version-check'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^claude\s+@anthropic-ai\/claude-code@2\.1\.76\s+not installed/m);
    expect(run.stdout).toContain('ptb agents install claude codex gemini opencode\n');
  });

  it('install refuses unknown ids with the list of agents', async () => {
    const run = await runCli(['agents', 'install', 'claude-code'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("unknown agent 'claude-code'");
    expect(run.stderr).toContain('codex_non_api_xhigh_reprompt');
  });

  it('install skips agents without a CLI and reports an existing install without running npm', async () => {
    const home = tempHome();
    fakeInstall(home, 'claude-2.1.76', '@anthropic-ai/claude-code', '2.1.76', 'claude', '2.1.76');
    // an npm that cannot run proves nothing was installed
    const run = await runCli(['agents', 'install', 'command', 'claude', 'claude_non_api'], {
      PTB_HOME: home,
      PATH: '/nonexistent',
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('command: nothing to install');
    expect(run.stdout.trim().split('\n')).toEqual([
      `@anthropic-ai/claude-code@2.1.76 already installed (${join(home, 'agents', 'claude-2.1.76')})`,
    ]);
  });
});
