import { existsSync } from 'node:fs';
import { getBenchmark } from '../../benchmarks/registry.ts';
import type { PreparedBenchmark } from '../../benchmarks/types.ts';
import { homeLayout } from '../../core/paths.ts';
import type { BenchmarkId } from '../../core/schemas.ts';
import { AssetCache } from '../../hub/assetCache.ts';

/**
 * A trial's benchmark prepared from the trial's own data (`--data` overrides) or its cached pins,
 * offline: the requests it builds are the prompts the final evaluation sends. Loaded here rather
 * than through eval/ (a higher layer), from the same assets, resolved the same way.
 */
export async function preparedBenchmark(
  benchmarkId: BenchmarkId,
  evalData: Record<string, string>,
  home: string,
): Promise<PreparedBenchmark> {
  const benchmark = getBenchmark(benchmarkId);
  const cache = new AssetCache(homeLayout(home).dataCache);
  return benchmark.prepare({
    async asset(part) {
      const own = evalData[part];
      if (own) {
        if (!existsSync(own)) throw new Error(`data file ${own} does not exist`);
        return {
          path: own,
          provenance: { part, source: 'local', path: own, sha256: '', origin: own, verified: false },
        };
      }
      const pin = benchmark.assets.find((a) => a.part === part);
      if (!pin) throw new Error(`${benchmark.id} has no asset part ${part}`);
      const { path, entry } = await cache.resolve(benchmark.id, pin, { offline: true });
      return {
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
    },
  });
}
