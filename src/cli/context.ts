import { type HomeLayout, homeLayout, ptbHome } from '../core/paths.ts';
import { AssetCache } from '../hub/assetCache.ts';
import { type Db, openDb } from '../store/db.ts';
import { EvalRepo } from '../store/evalRepo.ts';

/** What every command gets: where things live, output streams, the environment. */
export interface CliContext {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  home: HomeLayout;
  cache: AssetCache;
  /** Opened on first use so that `--help` never touches the disk. */
  db(): Db;
  evalRepo(): EvalRepo;
  /** Set by commands that produce a non-zero exit without an error (findings, failures). */
  exitCode: number;
  close(): void;
}

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  const home = homeLayout(ptbHome(env));
  let db: Db | undefined;
  const ctx: CliContext = {
    env,
    stdout: process.stdout,
    stderr: process.stderr,
    home,
    cache: new AssetCache(home.dataCache),
    db() {
      db ??= openDb(home.db);
      return db;
    },
    evalRepo() {
      return new EvalRepo(ctx.db());
    },
    exitCode: 0,
    close() {
      db?.close();
      db = undefined;
    },
  };
  return ctx;
}

/** Offline when asked for, or when Hugging Face's own offline switches are set. */
export function isOffline(ctx: CliContext, flag?: boolean): boolean {
  return (
    Boolean(flag) ||
    ctx.env.PTB_OFFLINE === '1' ||
    ctx.env.HF_HUB_OFFLINE === '1' ||
    ctx.env.HF_DATASETS_OFFLINE === '1'
  );
}
