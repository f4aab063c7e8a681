#!/usr/bin/env node
// Entry point: runs the TypeScript sources through tsx, so there is no build step to forget.
// PTB_BUNDLE=<file> runs a single-file bundle instead (machines without npm; see scripts/deviceKit.sh).
if (process.env.PTB_BUNDLE) {
  await import(process.env.PTB_BUNDLE);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv);
}
