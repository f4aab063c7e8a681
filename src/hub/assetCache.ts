import { copyFileSync, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { ensureDir } from '../core/paths.ts';
import type { AssetPin } from './assetPin.ts';
import { type DownloadProgress, downloadFile } from './download.ts';
import { sha256File } from './sha256.ts';

/** What the cache knows about a stored file: where it came from and the hash it must keep. */
const CacheEntrySchema = z.object({
  source: z.enum(['pinned', 'local']),
  origin: z.string(),
  sha256: z.string(),
  /** true when the hash matched a pin fixed in ptb; false when recorded on first fetch or imported. */
  verified: z.boolean(),
  storedAt: z.string(),
  fileName: z.string(),
});
export type CacheEntry = z.infer<typeof CacheEntrySchema>;

export interface ResolvedAsset {
  path: string;
  entry: CacheEntry;
}

export interface AssetCacheOptions {
  offline?: boolean;
  hfToken?: string;
  /**
   * Base URL of a mirror of the pinned files (`<mirror>/<host>/<path>` of each pin's URL), for
   * clusters without internet access; default PTB_ASSET_MIRROR. The pins' sha256 still decide.
   */
  mirror?: string;
  onProgress?: (p: DownloadProgress) => void;
}

/**
 * Files pinned by ptb (benchmark data, baseline answers, grader prompts, chat templates), cached
 * under `<cacheRoot>/<group>/<part>/`. A group is a benchmark id or `templates`.
 */
export class AssetCache {
  constructor(readonly root: string) {}

  private dir(group: string, part: string): string {
    return join(this.root, group, part);
  }

  private entryPath(group: string, part: string): string {
    return join(this.dir(group, part), 'source.json');
  }

  entry(group: string, part: string): CacheEntry | undefined {
    const p = this.entryPath(group, part);
    if (!existsSync(p)) return undefined;
    const parsed = CacheEntrySchema.safeParse(JSON.parse(readFileSync(p, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  }

  /** Cached file, re-hashed so that a corrupted or edited cache is never used silently. */
  async cached(group: string, pin: AssetPin): Promise<ResolvedAsset | undefined> {
    const entry = this.entry(group, pin.part);
    if (!entry) return undefined;
    const path = join(this.dir(group, pin.part), entry.fileName);
    if (!existsSync(path)) return undefined;
    const actual = await sha256File(path);
    if (actual !== entry.sha256) {
      throw new UserError(
        `cached file ${path} has changed since it was stored (sha256 ${actual}, expected ${entry.sha256})`,
        `Fetch it again with \`ptb data pull ${group} --force\`, or re-import your local copy.`,
      );
    }
    if (entry.source === 'pinned' && pin.sha256 && entry.sha256 !== pin.sha256) {
      throw new UserError(
        `cached ${group}/${pin.part} does not match the pin of this ptb version`,
        `Run \`ptb data pull ${group} --force\`.`,
      );
    }
    return { path, entry };
  }

  /** Cached file, or download it from its pin unless offline. */
  async resolve(group: string, pin: AssetPin, opts: AssetCacheOptions = {}): Promise<ResolvedAsset> {
    const hit = await this.cached(group, pin);
    if (hit) return hit;
    if (opts.offline) {
      throw new UserError(
        `${group}: the ${pin.part} file (${pin.description}) is not in the cache and ptb is offline`,
        `Fetch it on a connected machine with \`ptb data pull ${group}\`, or register a local copy with \`ptb data import ${group} --part ${pin.part} FILE\`.`,
      );
    }
    return this.pull(group, pin, opts);
  }

  /** Download a pinned file and verify (or, for pins without a hash, record) its sha256. */
  async pull(group: string, pin: AssetPin, opts: AssetCacheOptions = {}): Promise<ResolvedAsset> {
    if (pin.gated && !opts.hfToken) {
      throw new UserError(
        `${group}: ${pin.description} is gated on Hugging Face and HF_TOKEN is not set`,
        'Accept the dataset terms on huggingface.co, then export HF_TOKEN=<your token> and run the command again.',
      );
    }
    const dir = ensureDir(this.dir(group, pin.part));
    const path = join(dir, pin.fileName);
    // Downloaded beside the cached copy and checked first: a bad download never replaces good data.
    const incoming = join(dir, `.incoming-${process.pid}-${pin.fileName}`);
    await downloadFile(mirroredUrl(pin.url, opts.mirror ?? process.env.PTB_ASSET_MIRROR), incoming, {
      hfToken: opts.hfToken,
      onProgress: opts.onProgress,
    });
    const sha256 = await sha256File(incoming);
    if (pin.sha256 && sha256 !== pin.sha256) {
      rmSync(incoming, { force: true });
      throw new UserError(
        `${group}/${pin.part}: downloaded file has sha256 ${sha256}, but ptb pins ${pin.sha256}`,
        `The upstream file at ${pin.url} is not the pinned one. Import a verified copy with \`ptb data import ${group} --part ${pin.part} FILE\`.`,
      );
    }
    // The copy it replaces is kept unless it is the same bytes (a re-download of the pinned file).
    if (this.entry(group, pin.part)?.sha256 !== sha256) this.moveAside(group, pin.part);
    renameSync(incoming, path);
    const entry: CacheEntry = {
      source: 'pinned',
      origin: pin.url,
      sha256,
      verified: pin.sha256 !== null,
      storedAt: new Date().toISOString(),
      fileName: pin.fileName,
    };
    writeJsonAtomic(this.entryPath(group, pin.part), entry);
    return { path, entry };
  }

  /**
   * Register a local copy (air-gapped clusters). Results record that the data came from it. A copy
   * already registered for the part is moved to `previous/<time>/` (file and source.json), never
   * overwritten; `previous` says where.
   */
  async import(
    group: string,
    pin: AssetPin,
    file: string,
  ): Promise<ResolvedAsset & { previous: string | null }> {
    const src = resolve(file);
    if (!existsSync(src)) throw new UserError(`${file} does not exist`);
    const dir = ensureDir(this.dir(group, pin.part));
    const previous = this.moveAside(group, pin.part);
    const fileName = `local-${basename(src)}`;
    const path = join(dir, fileName);
    copyFileSync(src, path);
    const sha256 = await sha256File(path);
    const entry: CacheEntry = {
      source: 'local',
      origin: src,
      sha256,
      verified: pin.sha256 !== null && pin.sha256 === sha256,
      storedAt: new Date().toISOString(),
      fileName,
    };
    writeJsonAtomic(this.entryPath(group, pin.part), entry);
    return { path, entry, previous };
  }

  /** Move the part's current file and its source.json to `previous/<time>/`; null when there is none. */
  private moveAside(group: string, part: string): string | null {
    const entry = this.entry(group, part);
    const current = entry && join(this.dir(group, part), entry.fileName);
    if (!entry || !current || !existsSync(current)) return null;
    const keep = ensureDir(
      join(this.dir(group, part), 'previous', new Date().toISOString().replace(/[:.]/g, '-')),
    );
    renameSync(current, join(keep, entry.fileName));
    copyFileSync(this.entryPath(group, part), join(keep, 'source.json'));
    return keep;
  }
}

/** A pin's URL on a mirror that keeps the original host and path under its base URL. */
export function mirroredUrl(url: string, mirror: string | undefined): string {
  if (!mirror?.trim()) return url;
  const original = new URL(url);
  return `${mirror.trim().replace(/\/+$/, '')}/${original.host}${original.pathname}${original.search}`;
}
