#!/usr/bin/env bash
# Run the test suite against real servers. By default each run starts its own embedded
# PostgreSQL and Valkey; set WALLETGATE_TEST_DATABASE_URL and WALLETGATE_TEST_REDIS_URL
# to use running servers instead. Extra arguments go to pytest (e.g. -k migrations).
set -euo pipefail
# shellcheck source=scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
cd "$ROOT"
# The operator's own settings (WALLETGATE_DATABASE_URL, WALLETGATE_CONFIG, ...) must not
# leak into the tests; only the WALLETGATE_TEST_* choices are honoured.
for name in $(compgen -e); do
    case "$name" in
        WALLETGATE_TEST_*) ;;
        WALLETGATE_*) unset "$name" ;;
    esac
done
exec "$VENV/bin/python" -m pytest "$@"
