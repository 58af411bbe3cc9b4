#!/usr/bin/env bash
# Runs the test suite (or the files given) under another Node line, from the official binaries
# that the npm registry's `node` package installs:  scripts/test-node.sh 22 [vitest args…]
# (`scripts/test-node.sh 22 --install-only` only installs it)
# The machine's Node stays the default; CI runs the suite under it (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
MAJOR=${1:?usage: scripts/test-node.sh MAJOR [vitest args…]}
shift
DIR=.cache/node-$MAJOR
if [ ! -x "$DIR/node_modules/node/bin/node" ]; then
  echo "[test-node] installing node@$MAJOR into $DIR" >&2
  npm install --no-save --silent --prefix "$DIR" "node@$MAJOR" >&2
fi
NODE=$DIR/node_modules/node/bin/node
echo "[test-node] $("$NODE" --version)" >&2
if [ "${1:-}" = --install-only ]; then exit 0; fi
# EBB_TEST_BUILT=1: dist/ is fresh and other tests may be reading it (scripts/test-lanes.sh)
if [ "${EBB_TEST_BUILT:-}" != 1 ]; then npm run build --silent; fi
exec "$NODE" node_modules/vitest/vitest.mjs run "$@"
