#!/usr/bin/env bash
# Run the walletgate demo: embedded PostgreSQL and Valkey, a local EVM devnet, the
# example policies, and the gateway; prints an agent URL and token. Extra arguments go
# to `walletgate serve` (e.g. --port 9000 --devnet-port 9001). Installs only what running
# walletgate needs; scripts/test.sh adds the dev extras.
set -euo pipefail
# shellcheck source=scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
cd "$ROOT"
exec "$VENV/bin/walletgate" serve --demo "$@"
