import { resolve } from 'node:path';
import type { AssetProvenance, Benchmark, LoadedAsset, PreparedBenchmark } from '../benchmarks/types.ts';
import { UserError } from '../core/errors.ts';
import type { AssetCache, AssetCacheOptions } from '../hub/assetCache.ts';
import { checkDataFile } from '../hub/dataFile.ts';
import { sha256File } from '../hub/sha256.ts';

export type DataProvenance = AssetProvenance;

export interface PrepareOptions extends AssetCacheOptions {
  /** `part -> file`: use these local files instead of the cache (recorded as local data). */
  overrides?: Record<string, string>;
  /** Load only what scoring needs: parts marked `promptOnly` are neither read nor fetched. */
  scoringOnly?: boolean;
}

/** Load a benchmark's assets (cache, imports or overrides) and remember where each came from. */
export async function prepareBenchmark(
  benchmark: Benchmark,
  cache: AssetCache,
  opts: PrepareOptions = {},
): Promise<{ prepared: PreparedBenchmark; provenance: DataProvenance[] }> {
  const provenance: DataProvenance[] = [];
  const overrides = opts.overrides ?? {};
  for (const part of Object.keys(overrides)) {
    if (!benchmark.assets.some((a) => a.part === part)) {
      throw new UserError(
        `${benchmark.id} has no data part named "${part}"`,
        `Its parts are: ${benchmark.assets.map((a) => a.part).join(', ')}.`,
      );
    }
  }
  const prepared = await benchmark.prepare({
    scoringOnly: opts.scoringOnly ?? false,
    async asset(part: string): Promise<LoadedAsset> {
      const pin = benchmark.assets.find((a) => a.part === part);
      if (!pin) throw new Error(`internal: ${benchmark.id} asks for unknown asset part ${part}`);
      if (opts.scoringOnly && pin.promptOnly) {
        throw new Error(`internal: ${benchmark.id} asks for its prompt-only part ${part} while scoring`);
      }
      const override = overrides[part];
      let loaded: LoadedAsset;
      if (override) {
        const path = resolve(override);
        checkDataFile(path, pin, `${benchmark.id}/${part}`);
        const sha256 = await sha256File(path);
        loaded = {
          path,
          provenance: { part, source: 'local', path, sha256, origin: path, verified: pin.sha256 === sha256 },
        };
      } else {
        const { path, entry } = await cache.resolve(benchmark.id, pin, opts);
        loaded = {
          path,
          provenance: {
            part,
            source: entry.source,
            path,
            sha256: entry.sha256,
            origin: entry.origin,
            verified: entry.verified,
          },
        };
      }
      provenance.push(loaded.provenance);
      return loaded;
    },
  });
  return { prepared, provenance };
}
