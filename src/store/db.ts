import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../core/errors.ts';
import { ensureDir } from '../core/paths.ts';
import { MIGRATIONS } from './migrations.ts';

export type Db = Database.Database;

/**
 * Open (and migrate) the store. WAL lets a dashboard or a second `ptb` read while an evaluation
 * writes; busy_timeout makes concurrent writers wait instead of failing.
 */
export function openDb(path: string): Db {
  if (path !== ':memory:') ensureDir(dirname(path));
  let db: Db;
  try {
    db = new Database(path);
  } catch (err) {
    throw new UserError(
      `cannot open the ptb database at ${path}: ${(err as Error).message}`,
      'Check PTB_HOME and its permissions.',
    );
  }
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
  );
  const current =
    (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const newest = MIGRATIONS.length;
  if (current > newest) {
    throw new UserError(
      `the database was written by a newer ptb (schema ${current}, this ptb knows ${newest})`,
      'Upgrade ptb, or point PTB_HOME somewhere else.',
    );
  }
  for (let v = current + 1; v <= newest; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v - 1]!);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(
        v,
        new Date().toISOString(),
      );
    })();
  }
}
