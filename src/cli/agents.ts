import type { Command } from 'commander';
import type { AgentInstallStatus } from '../agents/install.ts';
import type { AgentDefinition } from '../agents/types.ts';
import type { CliContext } from './context.ts';

interface AgentRow {
  id: string;
  name: string;
  kind: AgentDefinition['kind'];
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

function statusText(def: AgentDefinition, status: AgentInstallStatus | undefined): string {
  if (!def.install) return def.kind === 'command' ? 'runs your command' : 'built in';
  if (!status) return 'unknown';
  if (!status.installed) return 'not installed';
  return status.problem ?? 'ok';
}

export function registerAgents(program: Command, ctx: CliContext): void {
  const agents = program
    .command('agents')
    .description('list the agents, their pinned CLIs and whether each is installed')
    .option('--json', 'print JSON')
    .option('--no-version-check', 'do not run `<cli> --version` (faster)')
    .action(async (flags: { json?: boolean; versionCheck: boolean }) => {
      const [{ agentAuth }, { agentInstallStatus, installKey }, { AGENTS }] = await Promise.all([
        import('../agents/definitions/common.ts'),
        import('../agents/install.ts'),
        import('../agents/registry.ts'),
      ]);
      // One status per install (variants share one), checked in parallel: the CLIs start slowly.
      const byInstall = new Map<string, Promise<AgentInstallStatus>>();
      for (const def of AGENTS) {
        if (!def.install || byInstall.has(installKey(def))) continue;
        byInstall.set(installKey(def), agentInstallStatus(def, ctx.home, { runVersion: flags.versionCheck }));
      }
      const statuses = new Map<string, AgentInstallStatus>();
      for (const [key, status] of byInstall) statuses.set(key, await status);
      const rows: AgentRow[] = AGENTS.map((def) => {
        const status = def.install ? statuses.get(installKey(def)) : undefined;
        return {
          id: def.id,
          name: def.displayName,
          kind: def.kind,
          cli: def.install?.npm ?? null,
          pinned_version: def.install?.version ?? null,
          installed: def.install ? Boolean(status?.installed) : null,
          installed_version: status ? (status.reportedVersion ?? status.packageVersion) : null,
          status: statusText(def, status),
          provider: def.provider ?? null,
          auth: agentAuth(def).mode,
          trace_format: def.traceFormat,
          reprompt: Boolean(def.reprompt),
        };
      });
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(rows)}\n`);
        return;
      }
      for (const row of rows) {
        const cli = row.cli ? `${row.cli}@${row.pinned_version}` : '-';
        ctx.stdout.write(
          `${row.id.padEnd(30)} ${cli.padEnd(34)} ${row.status.padEnd(16)} ${(row.provider ?? '-').padEnd(10)} ${row.name}\n`,
        );
      }
      // One id per missing install: the variants of a CLI share it.
      const missing = new Map<string, string>();
      for (const def of AGENTS) {
        if (def.install && !statuses.get(installKey(def))?.installed && !missing.has(installKey(def))) {
          missing.set(installKey(def), def.id);
        }
      }
      if (missing.size > 0) {
        ctx.stdout.write(
          `\nInstall the pinned CLIs with: ptb agents install ${[...missing.values()].join(' ')}\n`,
        );
      }
    });

  agents
    .command('install <ids...>')
    .description('install the pinned CLIs of these agents from npm into PTB_HOME/agents')
    .action(async (ids: string[]) => {
      const [{ installAgent, installKey }, { getAgent }] = await Promise.all([
        import('../agents/install.ts'),
        import('../agents/registry.ts'),
      ]);
      const defs = ids.map((id) => getAgent(id));
      const done = new Set<string>();
      for (const def of defs) {
        if (!def.install) {
          ctx.stderr.write(`${def.id}: nothing to install (${def.kind} agent)\n`);
          continue;
        }
        const key = installKey(def);
        if (done.has(key)) continue;
        done.add(key);
        const result = await installAgent(def, ctx.home, {
          onProgress: (message) => ctx.stderr.write(`${message}\n`),
        });
        const seconds = (result.durationMs / 1000).toFixed(1);
        ctx.stdout.write(
          result.installed
            ? `${def.install.npm}@${def.install.version} installed in ${seconds} s (${result.dir})\n`
            : `${def.install.npm}@${def.install.version} already installed (${result.dir})\n`,
        );
      }
    });
}
