import type { Command } from 'commander';
import { errorMessage, UserError } from '../core/errors.ts';
import type { CliContext } from './context.ts';
import { downloadProgress, ProgressLine } from './progress.ts';

export function registerData(program: Command, ctx: CliContext): void {
  const data = program
    .command('data')
    .description('fetch, import and inspect pinned benchmark data and templates');

  data
    .command('pull')
    .description(
      'download pinned files into the cache, verifying sha256 (default: every benchmark and the templates)',
    )
    .argument('[groups...]', 'benchmark ids and/or "templates"')
    .option('--force', 'download again even if cached')
    .action(async (groups: string[], flags: { force?: boolean }) => {
      const { dataGroups, pinsOf } = await import('../eval/dataGroups.ts');
      const names = groups.length > 0 ? groups : Object.keys(dataGroups());
      let failures = 0;
      for (const group of names) {
        for (const pin of pinsOf(group)) {
          const line = new ProgressLine(ctx.stderr, `${group}/${pin.part}`);
          try {
            const cached = flags.force
              ? undefined
              : await ctx.cache.cached(group, pin).catch(() => undefined);
            const got =
              cached ??
              (await ctx.cache.pull(group, pin, {
                hfToken: ctx.env.HF_TOKEN,
                onProgress: downloadProgress(line),
              }));
            line.end();
            const how = got.entry.verified
              ? 'sha256 verified'
              : got.entry.source === 'local'
                ? 'local copy'
                : 'sha256 recorded on first fetch';
            ctx.stdout.write(
              `${cached ? 'cached ' : 'fetched'} ${group}/${pin.part}  ${got.entry.sha256.slice(0, 12)}  ${how}\n`,
            );
          } catch (err) {
            line.end();
            failures++;
            ctx.stderr.write(`failed  ${group}/${pin.part}: ${errorMessage(err)}\n`);
            if (err instanceof UserError && err.hint) ctx.stderr.write(`        → ${err.hint}\n`);
          }
        }
      }
      if (failures > 0) ctx.exitCode = 1;
    });

  data
    .command('import')
    .description(
      'register a local copy of a data file (air-gapped clusters), checked against the pinned one; results record it with its sha256',
    )
    .argument('<group>', 'benchmark id (or "templates")')
    .argument('<file>', 'JSON / JSONL / Parquet / CSV in the upstream schema')
    .option('--part <part>', 'which part the file is (see `ptb data status`)', 'test')
    .option(
      '--force',
      'import even when its row count differs from the pinned file, or it replaces verified data (the old copy is kept)',
    )
    .option('--json', 'print the result as JSON')
    .action(async (group: string, file: string, flags: { part: string; force?: boolean; json?: boolean }) => {
      const [{ pinsOf }, { importDataFile }] = await Promise.all([
        import('../eval/dataGroups.ts'),
        import('../eval/importData.ts'),
      ]);
      const pin = pinsOf(group).find((p) => p.part === flags.part);
      if (!pin) {
        throw new UserError(
          `${group} has no part "${flags.part}"`,
          `Parts: ${pinsOf(group)
            .map((p) => p.part)
            .join(', ')}.`,
        );
      }
      const got = await importDataFile(ctx.cache, group, pin, file, { force: flags.force });
      for (const reason of got.forced) ctx.stderr.write(`ptb: imported with --force although ${reason}\n`);
      if (got.previous) ctx.stderr.write(`ptb: the copy it replaces is kept in ${got.previous}\n`);
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(got)}\n`);
        return;
      }
      const what = `${got.rows !== null ? `${got.rows} records, ` : ''}sha256 ${got.sha256.slice(0, 12)}…, ${got.verified ? 'verified against the pin' : pin.sha256 ? 'not the pinned file' : 'the pin has no sha256 to compare'}`;
      ctx.stdout.write(
        got.unchanged
          ? `${file} is already registered as ${group}/${pin.part} (${what}); nothing changed\n`
          : `imported ${file} as ${group}/${pin.part} (${what})\n`,
      );
    });

  data
    .command('status')
    .description('show which pinned files are cached and where they came from')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const { dataGroups } = await import('../eval/dataGroups.ts');
      const rows = Object.entries(dataGroups()).flatMap(([group, pins]) =>
        pins.map((pin) => {
          const entry = ctx.cache.entry(group, pin.part);
          return {
            group,
            part: pin.part,
            cached: Boolean(entry),
            source: entry?.source ?? null,
            sha256: entry?.sha256 ?? null,
            verified: entry?.verified ?? false,
            pinned_sha256: pin.sha256,
            gated: Boolean(pin.gated),
            url: pin.url,
          };
        }),
      );
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(rows)}\n`);
        return;
      }
      for (const r of rows) {
        const state = r.cached ? `${r.source}${r.verified ? ', verified' : ''}` : 'missing';
        ctx.stdout.write(
          `${`${r.group}/${r.part}`.padEnd(34)} ${state.padEnd(18)} ${r.gated ? '(gated: needs HF_TOKEN) ' : ''}${r.url}\n`,
        );
      }
    });
}
