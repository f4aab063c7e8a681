import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { errorMessage, UserError } from '../core/errors.ts';
import { ensureDir } from '../core/paths.ts';
import { downloadFile } from './download.ts';
import { sha256File } from './sha256.ts';

/**
 * A model's weights at one commit, fetched by the harness (never by the agent) from the Hugging Face
 * Hub or a mirror, into `<cacheDir>/<org>--<name>/<commit>/`. Only what a weight comparison needs is
 * fetched: config.json, then the safetensors index and shards (or, without safetensors, the
 * PyTorch pickles, which ptb reads statically). `ptb-snapshot.json` lists every file with its sha256
 * and is written last: a folder without it is incomplete and fetched again.
 */
export const SNAPSHOT_MANIFEST = 'ptb-snapshot.json';

export const SnapshotManifestSchema = z.object({
  repo: z.string(),
  revision: z.string(),
  endpoint: z.string(),
  fetchedAt: z.string(),
  files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string() })),
});
export type SnapshotManifest = z.infer<typeof SnapshotManifestSchema>;

const RevisionInfoSchema = z.object({
  sha: z.string(),
  siblings: z.array(z.object({ rfilename: z.string() })).default([]),
});

export function snapshotRoot(cacheDir: string, repo: string): string {
  return join(cacheDir, repo.replace(/\//g, '--'));
}

/** A complete local snapshot of `repo` at `revision` (any commit, newest fetched, when revision is null). */
export function findSnapshot(
  cacheDir: string,
  repo: string,
  revision: string | null,
): { dir: string; manifest: SnapshotManifest } | null {
  const root = snapshotRoot(cacheDir, repo);
  if (!existsSync(root)) return null;
  const candidates: { dir: string; manifest: SnapshotManifest }[] = [];
  for (const name of readdirSync(root)) {
    const file = join(root, name, SNAPSHOT_MANIFEST);
    if (!existsSync(file)) continue;
    const parsed = SnapshotManifestSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (!parsed.success) continue;
    if (revision && parsed.data.revision !== revision) continue;
    candidates.push({ dir: join(root, name), manifest: parsed.data });
  }
  candidates.sort((a, b) => b.manifest.fetchedAt.localeCompare(a.manifest.fetchedAt));
  return candidates[0] ?? null;
}

/** Which of a repo's files hold the weights (and the config). */
export function weightFiles(siblings: readonly string[]): string[] {
  const has = (f: string) => siblings.includes(f);
  const pick: string[] = has('config.json') ? ['config.json'] : [];
  const safetensors = siblings.filter((f) => !f.includes('/') && f.endsWith('.safetensors'));
  if (has('model.safetensors.index.json')) pick.push('model.safetensors.index.json', ...safetensors);
  else if (safetensors.length > 0) pick.push(...safetensors);
  else {
    const bins = siblings.filter((f) => /^pytorch_model.*\.bin$/.test(f));
    if (has('pytorch_model.bin.index.json')) pick.push('pytorch_model.bin.index.json');
    pick.push(...bins);
  }
  return pick;
}

async function getJson(url: string, token: string | undefined, signal?: AbortSignal): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { 'user-agent': 'ptb', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal,
    });
  } catch (err) {
    throw new UserError(
      `could not reach ${url}: ${errorMessage(err)}`,
      'check the network or the Hub endpoint',
    );
  }
  if (!res.ok) {
    throw new UserError(
      `${url}: HTTP ${res.status}`,
      res.status === 401 || res.status === 403
        ? 'the model is gated: accept its terms on the Hub and set HF_TOKEN'
        : 'check the repo id and revision',
    );
  }
  return res.json();
}

export interface FetchSnapshotOptions {
  repo: string;
  /** Commit, branch or tag; default main (the resolved commit is what gets recorded). */
  revision?: string | null;
  /** Hub endpoint (default https://huggingface.co). */
  endpoint?: string;
  token?: string;
  cacheDir: string;
  /** Checked on config.json before any weight file is fetched; return a reason to stop. */
  vetConfig?: (config: Record<string, unknown>) => string | null;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/** Fetch (or find) a model's weights at a commit; returns the folder and its manifest. */
export async function fetchModelSnapshot(
  o: FetchSnapshotOptions,
): Promise<{ dir: string; manifest: SnapshotManifest; fetched: boolean }> {
  const endpoint = (o.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
  const pinned = o.revision && /^[0-9a-f]{40}$/.test(o.revision) ? o.revision : null;
  if (pinned) {
    const hit = findSnapshot(o.cacheDir, o.repo, pinned);
    if (hit) return { ...hit, fetched: false };
  }
  const info = RevisionInfoSchema.parse(
    await getJson(
      `${endpoint}/api/models/${o.repo}/revision/${encodeURIComponent(o.revision ?? 'main')}`,
      o.token,
      o.signal,
    ),
  );
  const hit = findSnapshot(o.cacheDir, o.repo, info.sha);
  if (hit) return { ...hit, fetched: false };
  const files = weightFiles(info.siblings.map((s) => s.rfilename));
  if (!files.includes('config.json') || files.length < 2) {
    throw new UserError(
      `${o.repo}@${info.sha} has no config.json and weight files`,
      'is it a model repository?',
    );
  }
  const dir = join(snapshotRoot(o.cacheDir, o.repo), info.sha);
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  ensureDir(tmp);
  try {
    const url = (f: string) => `${endpoint}/${o.repo}/resolve/${info.sha}/${f}`;
    const done: SnapshotManifest['files'] = [];
    for (const f of files) {
      o.onProgress?.(`fetching ${o.repo}/${f}@${info.sha.slice(0, 8)}`);
      await downloadFile(url(f), join(tmp, f), { hfToken: o.token, signal: o.signal });
      if (f === 'config.json' && o.vetConfig) {
        const why = o.vetConfig(JSON.parse(readFileSync(join(tmp, f), 'utf8')));
        if (why) throw new UserError(`${o.repo}: ${why}`, 'its weights were not fetched');
      }
      done.push({ path: f, size: statSync(join(tmp, f)).size, sha256: await sha256File(join(tmp, f)) });
    }
    const manifest: SnapshotManifest = {
      repo: o.repo,
      revision: info.sha,
      endpoint,
      fetchedAt: new Date().toISOString(),
      files: done,
    };
    writeJsonAtomic(join(tmp, SNAPSHOT_MANIFEST), manifest);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return { dir, manifest, fetched: true };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
