#!/usr/bin/env node
// Entry point. Runs the prebuilt bundle dist/cli/ptb.mjs (scripts/buildBundle.mjs, run by `npm
// install` and scripts/setup.sh) when it is at least as new as every source it was built from;
// otherwise, in a checkout being edited, the TypeScript sources through tsx. Checking is one small
// JSON read and a stat per source file (about a millisecond).
// PTB_BUNDLE=<file> runs that bundle unconditionally (machines without npm; see scripts/deviceKit.sh);
// PTB_FROM_SOURCE=1 always runs the sources.
import { readFileSync, statSync } from 'node:fs';

const root = new URL('..', import.meta.url);

function freshBundle() {
  try {
    const manifest = JSON.parse(readFileSync(new URL('dist/cli/build.json', root), 'utf8'));
    for (const input of manifest.inputs) {
      if (statSync(new URL(input, root)).mtimeMs > manifest.builtAt) return undefined;
    }
    return new URL('dist/cli/ptb.mjs', root).href;
  } catch {
    return undefined;
  }
}

const bundle = process.env.PTB_BUNDLE || (process.env.PTB_FROM_SOURCE === '1' ? undefined : freshBundle());
if (bundle) {
  await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv);
}
