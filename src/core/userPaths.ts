import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from './errors.ts';

/**
 * Paths a user gives ptb (flags, PTB_HOME), checked before any work starts, so that a wrong one is
 * a message that says what the path should be — never a stack trace from deep inside, and never
 * minutes of work (a venv build, an engine start) before the mistake shows.
 */

/** Text files ptb reads whole (grids, templates, prompts): far above any real one. */
export const MAX_TEXT_FILE_BYTES = 16 * 1024 * 1024;

function statOrNull(path: string) {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new UserError(`cannot read ${path} (${code ?? String(err)})`, 'check its permissions');
  }
}

/** The nearest part of `path` that exists (itself or a parent). */
function nearestExisting(path: string): string {
  let probe = resolve(path);
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  return probe;
}

/** A folder ptb may create: it is a folder already, or every existing part of its path is one. */
export function assertCreatableDir(path: string, what: string, hint: string): void {
  const probe = nearestExisting(path);
  if (statOrNull(probe)?.isDirectory() !== false) return;
  throw new UserError(
    probe === resolve(path)
      ? `${what} ${path} is a file, not a directory`
      : `${what} ${path} cannot be a directory: ${probe} is a file`,
    hint,
  );
}

/** A folder that must exist. */
export function assertExistingDir(path: string, what: string, hint: string): void {
  const st = statOrNull(path);
  if (!st) throw new UserError(`${what} ${path} does not exist`, hint);
  if (!st.isDirectory()) throw new UserError(`${what} ${path} is a file, not a directory`, hint);
}

/** A file that must exist, be a regular file, not be empty (unless allowed) and not exceed maxBytes. */
export function assertReadableFile(
  path: string,
  what: string,
  opts: { hint: string; maxBytes?: number; allowEmpty?: boolean },
): number {
  const st = statOrNull(path);
  if (!st) throw new UserError(`${what} ${path} does not exist`, opts.hint);
  if (st.isDirectory()) throw new UserError(`${what} ${path} is a directory, not a file`, opts.hint);
  if (!st.isFile()) throw new UserError(`${what} ${path} is not a regular file`, opts.hint);
  if (st.size === 0 && !opts.allowEmpty) throw new UserError(`${what} ${path} is empty`, opts.hint);
  const max = opts.maxBytes ?? MAX_TEXT_FILE_BYTES;
  if (st.size > max) {
    throw new UserError(
      `${what} ${path} is too large (${formatSize(st.size)}; ptb reads at most ${formatSize(max)} here)`,
      opts.hint,
    );
  }
  return st.size;
}

/** A small text file read whole, after the checks above. */
export function readUserText(
  path: string,
  what: string,
  opts: { hint: string; maxBytes?: number; allowEmpty?: boolean },
): string {
  assertReadableFile(path, what, opts);
  return readFileSync(path, 'utf8');
}

/**
 * A Hugging Face checkpoint folder (config.json beside the weights). A folder without one gets a
 * message that says so, naming the checkpoint folders inside it when there are some (an agent's
 * `checkpoint-500/`, a `final_model/`).
 */
export function assertCheckpointDir(path: string, what: string): void {
  const st = statOrNull(path);
  const hint =
    'Pass a Hugging Face checkpoint folder: config.json with the weights (*.safetensors) and tokenizer.';
  if (!st) throw new UserError(`${what} ${path} does not exist`, hint);
  if (!st.isDirectory()) throw new UserError(`${what} ${path} is a file, not a checkpoint folder`, hint);
  if (existsSync(join(path, 'config.json'))) return;
  let inside: string[] = [];
  try {
    inside = readdirSync(path, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(path, e.name, 'config.json')))
      .map((e) => join(path, e.name))
      .sort();
  } catch {
    // unreadable: the plain message below
  }
  throw new UserError(
    `${what} ${path} is not a checkpoint: it has no config.json`,
    inside.length > 0 ? `Checkpoints inside it: ${inside.slice(0, 5).join(', ')}.` : hint,
  );
}

function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  return `${(bytes / 1024 ** 2).toFixed(bytes < 10 * 1024 ** 2 ? 1 : 0)} MiB`;
}
