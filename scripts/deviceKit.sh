#!/usr/bin/env bash
# Build a self-contained ptb kit for a machine that has no Node.js and no network (the GPU test
# machine): a compressed node binary, ptb bundled (dist/cli/ptb.mjs and its chunks), the native
# SQLite module, and bubblewrap. Everything lands in ignored paths: .device-kit/ and dist/.
# On the target:  bash scripts/deviceKit.sh --install   (puts node and bwrap on PATH under /tmp/ptbkit)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.device-kit
if [ "${1:-}" = "--install" ]; then
  mkdir -p /tmp/ptbkit/bin
  [ -x /tmp/ptbkit/bin/node ] || xz -d -c "$KIT/node.xz" > /tmp/ptbkit/bin/node
  chmod +x /tmp/ptbkit/bin/node
  if ! command -v bwrap >/dev/null; then cp "$KIT/bwrap" /tmp/ptbkit/bin/bwrap; chmod +x /tmp/ptbkit/bin/bwrap; fi
  rm -rf node_modules && mkdir -p node_modules && cp -r "$KIT/node_modules/." node_modules/
  echo "export PATH=/tmp/ptbkit/bin:\$PATH PTB_BUNDLE=$PWD/dist/cli/ptb.mjs"
  exit 0
fi
mkdir -p "$KIT/node_modules" dist/cli
[ -s "$KIT/node.xz" ] || xz -T2 -6 -c "$(command -v node)" > "$KIT/node.xz"
cp "$(command -v bwrap)" "$KIT/bwrap"
# The CLI bundle (with its chunks and the files the sources read next to themselves).
node scripts/buildBundle.mjs
mkdir -p dist/bench/bridge
cp src/sandbox/bridge/forwarder.mjs dist/bench/bridge/
cp src/engines/dieWithParent.mjs dist/bench/
# Benchmarks that must run where there is no tsx: bundled the same way.
mkdir -p dist/bench
for bench in provenance likelihoodProbe evalIsolation protocolWallTime; do
  npx esbuild "bench/$bench.ts" --bundle --platform=node --format=esm --target=node20 \
    --outfile="dist/bench/$bench.mjs" --external:better-sqlite3 --log-level=warning \
    --banner:js="import { createRequire as __ptbRequire } from 'node:module'; const require = __ptbRequire(import.meta.url);"
done
for pkg in better-sqlite3 bindings file-uri-to-path; do
  rm -rf "$KIT/node_modules/$pkg" && mkdir -p "$KIT/node_modules/$pkg"
  cp node_modules/$pkg/package.json "$KIT/node_modules/$pkg/"
  for part in lib index.js bindings.js; do [ -e "node_modules/$pkg/$part" ] && cp -r "node_modules/$pkg/$part" "$KIT/node_modules/$pkg/"; done
done
mkdir -p "$KIT/node_modules/better-sqlite3/build/Release"
cp node_modules/better-sqlite3/build/Release/better_sqlite3.node "$KIT/node_modules/better-sqlite3/build/Release/"
du -sh "$KIT" dist/cli/ptb.mjs
