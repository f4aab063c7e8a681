#!/usr/bin/env node
// Builds the prebuilt CLI that bin/ptb.js runs: dist/cli/ptb.mjs plus one chunk per lazily loaded
// module group (esbuild code splitting: every `await import()` of a command action becomes a chunk
// that only that command loads). Run by `npm install`/`npm ci` (the `prepare` script) and by
// scripts/setup.sh; takes about a second. esbuild comes with tsx (a dependency), at tsx's pinned range.
//
// The bundle must sit two folders below the repository root (core/paths.ts finds python/ and
// package.json at `../..` of its own module), and files the sources read next to themselves through
// import.meta.url are copied next to it (ASSETS). build.json lists every source file the bundle was
// built from, so bin/ptb.js can tell in a millisecond whether a source changed since.
//
//   node scripts/buildBundle.mjs [--outdir dist/cli] [--if-possible]
import { copyFileSync, cpSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { outdir: { type: 'string', default: 'dist/cli' }, 'if-possible': { type: 'boolean' } },
});
const outdir = resolve(root, values.outdir);
if (relative(root, outdir).split('/').length !== 2) {
  throw new Error(`--outdir must be two folders below the repository root (got ${values.outdir})`);
}

/** Source files read next to a module via import.meta.url: [source, path relative to the bundle]. */
const ASSETS = [
  ['src/sandbox/bridge/forwarder.mjs', 'bridge/forwarder.mjs'],
  ['src/engines/dieWithParent.mjs', 'dieWithParent.mjs'],
  ['src/web/static', 'static'],
];
/** Besides the bundled sources: a dependency change makes the bundle stale too. */
const EXTRA_INPUTS = ['package-lock.json', 'scripts/ptbEntry.ts'];

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  if (values['if-possible']) {
    process.stderr.write(`ptb: no prebuilt CLI (esbuild unavailable: ${err.message}); bin/ptb.js runs the sources\n`);
    process.exit(0);
  }
  throw err;
}

const startedAt = Date.now();
const staging = `${outdir}.staging-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { ptb: 'scripts/ptbEntry.ts' },
  outdir: staging,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  external: ['better-sqlite3'],
  // Bundled CommonJS dependencies call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __ptbRequire } from 'node:module'; const require = __ptbRequire(import.meta.url);",
  },
  metafile: true,
  logLevel: 'warning',
});

for (const [from, to] of ASSETS) cpSync(join(root, from), join(staging, to), { recursive: true });
const inputs = [
  ...Object.keys(result.metafile.inputs).filter((p) => !p.includes('node_modules/')),
  ...EXTRA_INPUTS,
  ...ASSETS.flatMap(([from]) => filesUnder(from)),
].sort();
writeFileSync(join(staging, 'build.json'), `${JSON.stringify({ builtAt: startedAt, inputs }, null, 1)}\n`);

// Install: chunks have content-hashed names, so new ones go in beside the old; a ptb process still
// running from the previous build keeps finding its chunks. Chunks no build has used for a day go.
mkdirSync(outdir, { recursive: true });
const fresh = new Set(readdirSync(staging));
for (const name of fresh) {
  const target = join(outdir, name);
  if (name.startsWith('chunk-')) copyFileSync(join(staging, name), target);
  else if (name !== 'ptb.mjs' && name !== 'build.json') {
    rmSync(target, { recursive: true, force: true });
    renameSync(join(staging, name), target);
  }
}
renameSync(join(staging, 'ptb.mjs'), join(outdir, 'ptb.mjs'));
renameSync(join(staging, 'build.json'), join(outdir, 'build.json'));
const dayAgo = Date.now() - 24 * 3600 * 1000;
for (const name of readdirSync(outdir)) {
  if (name.startsWith('chunk-') && !fresh.has(name) && statSync(join(outdir, name)).mtimeMs < dayAgo) {
    rmSync(join(outdir, name), { force: true });
  }
}
rmSync(staging, { recursive: true, force: true });
const chunks = [...fresh].filter((n) => n.startsWith('chunk-')).length;
process.stderr.write(
  `ptb: built ${relative(root, join(outdir, 'ptb.mjs'))} (${chunks} chunks, ${inputs.length} sources) in ${Date.now() - startedAt} ms\n`,
);

function filesUnder(rel) {
  const p = join(root, rel);
  if (!statSync(p).isDirectory()) return [rel];
  return readdirSync(p).flatMap((name) => filesUnder(join(rel, name)));
}
