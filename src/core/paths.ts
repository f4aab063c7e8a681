import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Root of everything ptb keeps: database, cache, evaluation outputs, the Python venv. */
export function ptbHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.PTB_HOME?.trim();
  return resolve(home && home.length > 0 ? home : join(homedir(), '.ptb'));
}

export interface HomeLayout {
  root: string;
  db: string;
  cache: string;
  dataCache: string;
  evals: string;
  models: string;
  venv: string;
  trials: string;
  agents: string;
  experiments: string;
}

export function homeLayout(root: string = ptbHome()): HomeLayout {
  return {
    root,
    db: join(root, 'ptb.db'),
    cache: join(root, 'cache'),
    dataCache: join(root, 'cache', 'data'),
    evals: join(root, 'evals'),
    models: join(root, 'models'),
    venv: join(root, 'venv'),
    trials: join(root, 'trials'),
    /** Pinned agent CLIs installed from npm (`agents/<id>-<version>/`). */
    agents: join(root, 'agents'),
    /** Experiments run through a scheduler: `experiments/<name>/experiment.json` names its results directory. */
    experiments: join(root, 'experiments'),
  };
}

export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** Repository root of this installation (where python/ and package.json live). */
export const repoRoot = resolve(new URL('../..', import.meta.url).pathname);
