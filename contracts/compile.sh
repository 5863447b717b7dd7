#!/bin/sh
# Compile contracts/*.sol into walletgate/devnet_contracts/ and contracts/test/*.sol into
# tests/contracts/ (see compile.js).
# solc-js comes from the npm registry, pinned, into a throw-away directory: no native
# solc binary and nothing installed in the repository.
set -eu

SOLC_VERSION=0.8.37
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT INT TERM

npm install --silent --no-audit --no-fund --prefix "$workdir" "solc@$SOLC_VERSION" >/dev/null
NODE_PATH="$workdir/node_modules" node "$here/compile.js"
