import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';

/** Where the shared (pre-seeded) cache appears inside the sandbox, read-only. */
export const SHARED_HF_CACHE_IN_SANDBOX = '/opt/hf-shared';

/**
 * The host's pre-seeded Hugging Face cache: `PTB_HF_CACHE`, else `HF_HOME`, else
 * `~/.cache/huggingface` — when it has a `hub/` folder. Null when there is none.
 */
export function sharedHfCache(env: NodeJS.ProcessEnv): string | null {
  const candidates = [env.PTB_HF_CACHE, env.HF_HOME, join(env.HOME ?? homedir(), '.cache', 'huggingface')];
  for (const dir of candidates) {
    if (dir && existsSync(join(dir, 'hub'))) return resolve(dir);
  }
  return null;
}

/**
 * A private, writable view of a read-only shared Hugging Face cache, without FUSE: for every cached
 * repo the view has its own `refs/` (copied) and `snapshots/` whose file links point into the shared
 * cache's blobs (bound read-only at `/opt/hf-shared`), and an empty `blobs/`. The agent reads every
 * pre-seeded model and dataset; what it downloads lands in the view (huggingface_hub writes new blobs
 * and links there); the shared cache cannot change; the view is discarded with the workspace.
 * Returns how many files were linked.
 */
export function buildHfCacheView(shared: string, view: string): { repos: number; files: number } {
  const hub = join(shared, 'hub');
  const viewHub = join(view, 'hub');
  mkdirSync(viewHub, { recursive: true });
  let repos = 0;
  let files = 0;
  for (const repo of readdirSync(hub)) {
    if (!/^(models|datasets|spaces)--/.test(repo)) continue;
    repos++;
    const src = join(hub, repo);
    const dst = join(viewHub, repo);
    mkdirSync(join(dst, 'blobs'), { recursive: true });
    if (existsSync(join(src, 'refs'))) copyTree(join(src, 'refs'), join(dst, 'refs'));
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const rel = relative(src, path);
        const st = lstatSync(path);
        if (st.isDirectory()) {
          mkdirSync(join(dst, rel), { recursive: true });
          walk(path);
        } else {
          // Snapshot entries are links into ../../blobs (or plain files): point at the shared copy.
          const target = st.isSymbolicLink() ? resolve(dir, readlinkSync(path)) : path;
          symlinkSync(join(SHARED_HF_CACHE_IN_SANDBOX, relative(shared, target)), join(dst, rel));
          files++;
        }
      }
    };
    if (existsSync(join(src, 'snapshots'))) {
      mkdirSync(join(dst, 'snapshots'), { recursive: true });
      walk(join(src, 'snapshots'));
    }
  }
  // Other cache folders (datasets' Arrow cache, xet) start empty in the view: rebuilt from the hub files.
  mkdirSync(join(view, 'datasets'), { recursive: true });
  return { repos, files };
}

function copyTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const path = join(from, name);
    if (lstatSync(path).isDirectory()) copyTree(path, join(to, name));
    else copyFileSync(path, join(to, name));
  }
}
