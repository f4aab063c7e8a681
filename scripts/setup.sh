#!/usr/bin/env bash
# Installs what ptb needs on a Debian/Ubuntu machine with Node 20 and Python 3:
# bubblewrap (the sandbox), acl (setfacl: lets the sandbox user reach its files when ptb runs as root),
# strace (the file-open ledger),
# python3-venv (the managed Python environment), chromium (the dashboard's browser tests), podman (the
# container sandbox), the npm packages, and the prebuilt CLI bundle (dist/cli, which bin/ptb.js runs
# while it is as new as the sources).
# The Python venv itself is made by ptb on first use under $PTB_HOME/venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v setfacl >/dev/null || need+=(acl)
# strace: the file-open ledger (which files the agent's processes read, for the contamination audit)
command -v strace >/dev/null || need+=(strace)
command -v chromium >/dev/null || need+=(chromium)
# podman (the container sandbox; runc and catatonit named: apt would pick crun and drop catatonit)
command -v podman >/dev/null || need+=(podman runc catatonit)
# debootstrap: the tests build a small Debian image for the podman trial once per machine and recipe
# (test/fixtures/podman-rootfs/recipe.json; its tag is the recipe's hash)
command -v debootstrap >/dev/null || need+=(debootstrap)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
