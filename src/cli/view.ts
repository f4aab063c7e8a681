import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { CliContext } from './context.ts';

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new UserError(`--port ${value} is not a port number`, 'Use 0 (any free port) or 1–65535.');
  }
  return Number(value);
}

/** Best effort: hand the URL to the desktop's browser. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no browser: the printed URL is enough
  }
}

export function registerView(program: Command, ctx: CliContext): void {
  program
    .command('view')
    .description(
      'local web dashboard over the store: experiments, live trials, traces, ledgers, verdicts, leaderboard',
    )
    .option(
      '--host <host>',
      'interface to listen on (anything but loopback requires the printed access token)',
      '127.0.0.1',
    )
    .option('--port <n>', 'port (0 = any free port)', parsePort, 0)
    .option('--open', 'open the dashboard in the default browser')
    .action(async (flags: { host: string; port: number; open?: boolean }) => {
      const [{ TrialRepo }, { syncTrialIndex }, { startViewServer }, { scheduledTrialStates }] =
        await Promise.all([
          import('../store/trialRepo.ts'),
          import('../trial/trialIndex.ts'),
          import('../web/server.ts'),
          import('../schedulers/scheduledTrials.ts'),
        ]);
      const repo = new TrialRepo(ctx.db());
      const server = await startViewServer({
        db: ctx.db(),
        host: flags.host,
        port: flags.port,
        refreshIndex: () => syncTrialIndex(repo, ctx.home),
        scheduledStates: () => scheduledTrialStates(ctx.home, repo, ctx.env).states,
      });
      const wildcard = flags.host === '0.0.0.0' || flags.host === '::';
      ctx.stdout.write(`ptb view: ${server.url}\n`);
      if (server.token) {
        // Printed once: the token is not stored anywhere.
        const remote = wildcard
          ? server.loginUrl.replace(server.url, `http://${hostname()}:${server.port}/`)
          : server.loginUrl;
        ctx.stdout.write(`access token required on ${flags.host}; open once: ${remote}\n`);
        if (wildcard) ctx.stdout.write(`(on this machine: ${server.loginUrl})\n`);
      }
      ctx.stdout.write('press Ctrl+C to stop\n');
      if (flags.open) openBrowser(server.loginUrl);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
      ctx.stdout.write('ptb view: stopped\n');
    });
}
