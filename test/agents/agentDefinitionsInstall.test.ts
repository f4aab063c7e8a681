import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  agentBinPath,
  agentInstallDir,
  agentInstallStatus,
  agentSandboxPaths,
  installAgent,
} from '../../src/agents/install.ts';
import { getAgent } from '../../src/agents/registry.ts';
import { UserError } from '../../src/core/errors.ts';

/**
 * A stand-in for npm: `install --prefix DIR … PKG@VERSION` lays out node_modules/PKG/package.json and
 * node_modules/.bin/BIN (which prints `reportVersion`), after a pause so that racing installs overlap.
 * Each call appends a line to `calls`.
 */
function fakeNpm(
  root: string,
  bin: string,
  options: { reportVersion?: string; fail?: boolean } = {},
): string {
  const path = join(root, 'fake-npm');
  writeFileSync(
    path,
    `#!/bin/bash
echo "$*" >> ${JSON.stringify(join(root, 'calls'))}
${options.fail ? 'echo "npm error 404 Not Found - GET https://registry/some-pkg" >&2; exit 1' : ''}
prefix=""; spec=""
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix="$2"; shift 2 ;; -*) shift ;; *) spec="$1"; shift ;; esac
done
pkg="\${spec%@*}"; version="\${spec##*@}"
sleep 0.3
mkdir -p "$prefix/node_modules/$pkg" "$prefix/node_modules/.bin"
printf '{"name":"%s","version":"%s"}' "$pkg" "$version" > "$prefix/node_modules/$pkg/package.json"
printf '#!/bin/bash\\necho "%s (fake)"\\n' "${options.reportVersion ?? '$version'}" > "$prefix/node_modules/.bin/${bin}"
chmod +x "$prefix/node_modules/.bin/${bin}"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function calls(root: string): string[] {
  const file = join(root, 'calls');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

describe('installAgent', () => {
  it('installs the pinned package once; variants of the CLI share the install', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-install-'));
    const home = { agents: join(root, 'agents') };
    const npm = fakeNpm(root, 'codex');
    const first = await installAgent(getAgent('codex'), home, { npm });
    expect(first.installed).toBe(true);
    expect(first.dir).toBe(join(home.agents, 'codex-0.98.0'));
    expect(existsSync(agentBinPath(getAgent('codex'), home))).toBe(true);
    expect(calls(root)).toHaveLength(1);
    expect(calls(root)[0]).toContain('@openai/codex@0.98.0');
    const again = await installAgent(getAgent('codex_non_api_xhigh_reprompt'), home, { npm });
    expect(again.installed).toBe(false);
    expect(calls(root)).toHaveLength(1);
    const status = await agentInstallStatus(getAgent('codexhigh'), home);
    expect(status).toMatchObject({
      installed: true,
      reportedVersion: '0.98.0',
      packageVersion: '0.98.0',
      problem: null,
    });
    expect(agentSandboxPaths(getAgent('codexhigh'))).toEqual({
      dir: '/opt/ptb-agents/codex-0.98.0',
      binDir: '/opt/ptb-agents/codex-0.98.0/node_modules/.bin',
    });
  });

  it('two concurrent installs run npm once (lock) and both succeed', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-install-'));
    const home = { agents: join(root, 'agents') };
    const npm = fakeNpm(root, 'claude');
    const [a, b] = await Promise.all([
      installAgent(getAgent('claude'), home, { npm }),
      installAgent(getAgent('claude_non_api'), home, { npm }),
    ]);
    expect(calls(root)).toHaveLength(1);
    expect([a.installed, b.installed].sort()).toEqual([false, true]);
    // no scratch directories or locks left behind
    expect(readdirSync(home.agents)).toEqual(['claude-2.1.76']);
  });

  it('a stale lock from a dead process does not block the install', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-install-'));
    const home = { agents: join(root, 'agents') };
    const lock = `${agentInstallDir(getAgent('gemini'), home)}.lock`;
    mkdirSync(lock, { recursive: true });
    writeFileSync(join(lock, 'pid'), '999999999');
    const result = await installAgent(getAgent('gemini'), home, { npm: fakeNpm(root, 'gemini') });
    expect(result.installed).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });

  it('a failed npm install is a UserError with npm’s message, leaving nothing half-installed', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-install-'));
    const home = { agents: join(root, 'agents') };
    const err = await installAgent(getAgent('opencode'), home, {
      npm: fakeNpm(root, 'opencode', { fail: true }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('npm error 404');
    expect((err as UserError).hint).toContain('npm registry');
    expect(readdirSync(home.agents)).toEqual([]);
    expect((await agentInstallStatus(getAgent('opencode'), home)).problem).toBe('not installed');
  });

  it('reports a CLI whose --version disagrees with the pin', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-install-'));
    const home = { agents: join(root, 'agents') };
    await installAgent(getAgent('claude'), home, {
      npm: fakeNpm(root, 'claude', { reportVersion: '2.0.55' }),
    });
    const status = await agentInstallStatus(getAgent('claude'), home);
    expect(status.installed).toBe(true);
    expect(status.reportedVersion).toBe('2.0.55');
    expect(status.problem).toBe('reports version 2.0.55, pinned 2.1.76');
  });

  it('command agents have nothing to install', async () => {
    const err = await installAgent(getAgent('command'), { agents: tmpdir() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
  });
});
