import { type HomeLayout, homeLayout, ptbHome } from '../core/paths.ts';
import { assertCreatableDir } from '../core/userPaths.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import type { Db } from '../store/db.ts';
import type { EvalRepo } from '../store/evalRepo.ts';

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

/**
 * The store and cache classes pull in SQLite and zod, which `ptb --help` must not pay for: they
 * are loaded once, before the first command action runs (main.ts's preAction hook), and the
 * context hands them out synchronously afterwards.
 */
interface StoreModules {
  AssetCache: typeof AssetCache;
  openDb: (path: string) => Db;
  EvalRepo: typeof EvalRepo;
}
let storeModules: StoreModules | undefined;

export async function loadContextModules(): Promise<void> {
  if (storeModules) return;
  const [cache, db, evalRepo] = await Promise.all([
    import('../hub/assetCache.ts'),
    import('../store/db.ts'),
    import('../store/evalRepo.ts'),
  ]);
  storeModules = { AssetCache: cache.AssetCache, openDb: db.openDb, EvalRepo: evalRepo.EvalRepo };
}

function loaded(): StoreModules {
  if (!storeModules) {
    throw new Error('CliContext store used before loadContextModules() (use openContext outside main)');
  }
  return storeModules;
}

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext {
  const home = homeLayout(ptbHome(env));
  let db: Db | undefined;
  let cache: AssetCache | undefined;
  /** PTB_HOME is checked when first used, so that commands that never touch it ignore it. */
  const usableHome = () =>
    assertCreatableDir(
      home.root,
      'PTB_HOME',
      'Set PTB_HOME to a directory (ptb creates it if missing), or unset it to use ~/.ptb.',
    );
  const ctx: CliContext = {
    env,
    stdout: process.stdout,
    stderr: process.stderr,
    home,
    get cache() {
      if (!cache) usableHome();
      cache ??= new (loaded().AssetCache)(home.dataCache);
      return cache;
    },
    db() {
      if (!db) usableHome();
      db ??= loaded().openDb(home.db);
      return db;
    },
    evalRepo() {
      return new (loaded().EvalRepo)(ctx.db());
    },
    exitCode: 0,
    close() {
      db?.close();
      db = undefined;
    },
  };
  return ctx;
}

/** A ready context for scripts that use it without going through `main` (test harnesses). */
export async function openContext(env: NodeJS.ProcessEnv = process.env): Promise<CliContext> {
  await loadContextModules();
  return createContext(env);
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
