import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { grantSandboxRead, runInSandbox, sandboxHostIds } from '../../src/sandbox/bwrap.ts';
import { interpreterBinds } from '../../src/sandbox/pythonRunner.ts';
import { buildHfCacheView, SHARED_HF_CACHE_IN_SANDBOX, sharedHfCache } from '../../src/trial/hfCacheView.ts';
import { resolveBaseModelPath } from '../../src/trial/runTrial.ts';
import { testPython } from '../helpers/tinyModel.ts';

/** A cache in huggingface_hub's real layout: blobs by hash, refs/main, snapshot links into blobs. */
function seededCache(): string {
  const root = mkdtempSync(join(tmpdir(), 'ptb-hfshared-'));
  const repo = join(root, 'hub', 'models--acme--tiny');
  const rev = 'a'.repeat(40);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  mkdirSync(join(repo, 'snapshots', rev), { recursive: true });
  writeFileSync(join(repo, 'blobs', 'b1'), '{"model_type": "qwen3"}');
  writeFileSync(join(repo, 'refs', 'main'), rev);
  symlinkSync('../../blobs/b1', join(repo, 'snapshots', rev, 'config.json'));
  return root;
}

describe('Hugging Face cache view', () => {
  it('finds the shared cache from PTB_HF_CACHE or HF_HOME', () => {
    const shared = seededCache();
    expect(sharedHfCache({ PTB_HF_CACHE: shared })).toBe(shared);
    expect(sharedHfCache({ HF_HOME: shared, HOME: '/nonexistent' })).toBe(shared);
    expect(sharedHfCache({ HOME: '/nonexistent' })).toBeNull();
  });

  it('finds the base model in the same cache the agent is shown', () => {
    const shared = seededCache();
    const spec = TrialSpecSchema.parse({
      agent: 'noop',
      baseModel: 'acme/tiny',
      benchmark: 'gsm8k',
      hours: 1,
    });
    expect(resolveBaseModelPath(spec, { PTB_HF_CACHE: shared, HOME: '/nonexistent' })).toBe(
      join(shared, 'hub', 'models--acme--tiny', 'snapshots', 'a'.repeat(40)),
    );
    expect(resolveBaseModelPath({ ...spec, baseModel: 'acme/other' }, { PTB_HF_CACHE: shared })).toBeNull();
  });

  it('lets the sandboxed agent read pre-seeded files and download new ones without touching the shared cache', async () => {
    const shared = seededCache();
    const view = mkdtempSync(join(tmpdir(), 'ptb-hfview-'));
    expect(buildHfCacheView(shared, view)).toEqual({ repos: 1, files: 1 });
    const python = await testPython();
    const ids = sandboxHostIds();
    const chownAll = (dir: string) => {
      chownSync(dir, ids.uid, ids.gid);
      for (const name of readdirSync(dir, { withFileTypes: true })) {
        if (name.isDirectory()) chownAll(join(dir, name.name));
        else if (!name.isSymbolicLink()) chownSync(join(dir, name.name), ids.uid, ids.gid);
      }
    };
    if (process.getuid?.() === 0) {
      chownAll(view);
      grantSandboxRead([shared]);
    }
    const script = [
      'import os',
      'from huggingface_hub import hf_hub_download',
      "p = hf_hub_download('acme/tiny', 'config.json', local_files_only=True)",
      'print(open(p).read())',
      "blob = os.path.join(os.environ['HF_HOME'], 'hub', 'models--acme--tiny', 'blobs', 'new')",
      "open(blob, 'w').write('downloaded by the agent')",
      "try:\n    open('/opt/hf-shared/hub/models--acme--tiny/blobs/b1', 'w').write('x')\n    print('SHARED WRITABLE')\nexcept OSError as e:\n    print('shared read-only:', e.errno)",
    ].join('\n');
    const result = await runInSandbox({
      argv: [python, '-c', script],
      readOnlyBinds: [
        ...interpreterBinds(python).map((p) => ({ source: p })),
        { source: shared, target: SHARED_HF_CACHE_IN_SANDBOX },
      ],
      writableBinds: [{ source: view, target: '/home/agent/hf_cache' }],
      env: { HF_HOME: '/home/agent/hf_cache', HF_HUB_OFFLINE: '1', HOME: '/tmp' },
      timeoutMs: 60_000,
    });
    const out = result.stdout.toString();
    expect(out, result.stderr.toString()).toContain('"model_type": "qwen3"');
    expect(out).toContain('shared read-only');
    expect(out).not.toContain('SHARED WRITABLE');
    expect(readFileSync(join(view, 'hub', 'models--acme--tiny', 'blobs', 'new'), 'utf8')).toBe(
      'downloaded by the agent',
    );
    expect(existsSync(join(shared, 'hub', 'models--acme--tiny', 'blobs', 'new'))).toBe(false);
    expect(readFileSync(join(shared, 'hub', 'models--acme--tiny', 'blobs', 'b1'), 'utf8')).toBe(
      '{"model_type": "qwen3"}',
    );
  }, 120_000);
});
