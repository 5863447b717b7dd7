#!/usr/bin/env bash
# Run the test suite against real servers. By default each run starts its own embedded
# PostgreSQL and Valkey; set WALLETGATE_TEST_DATABASE_URL and WALLETGATE_TEST_REDIS_URL
# to use running servers instead. Extra arguments go to pytest (e.g. -k migrations).
set -euo pipefail
# The tests need the dev extras (pytest, hypothesis, ...); run.sh installs only runtime.
WALLETGATE_VENV_EXTRAS=dev
# shellcheck source=scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
cd "$ROOT"
# The operator's own settings (WALLETGATE_DATABASE_URL, WALLETGATE_CONFIG, ...) must not
# leak into the tests; only the WALLETGATE_TEST_* choices and the long-profile sizes
# are honoured.
for name in $(compgen -e); do
    case "$name" in
        WALLETGATE_TEST_*) ;;
        # The long profiles of the property, fuzz and soak-style tests (README).
        WALLETGATE_*_EXAMPLES | WALLETGATE_STARTUP_BURST_RUNS) ;;
        WALLETGATE_*) unset "$name" ;;
    esac
done
# The JavaScript clients some tests drive (ethers.js): Node.js from Debian when it is
# missing, the pinned packages of tests/node when they are not installed yet.
ensure_node_clients() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "installing nodejs and npm (the tests drive ethers.js)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        else
            say "Node.js is missing: install nodejs and npm (the tests drive ethers.js)"
            return 1
        fi
    fi
    local lock="$ROOT/tests/node/package-lock.json" stamp="$ROOT/tests/node/node_modules/.installed"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$(sha256sum <"$lock" | cut -d' ' -f1)" ]; then
        say "installing the tests' Node.js packages into tests/node/node_modules"
        npm ci --prefix "$ROOT/tests/node" --no-audit --no-fund --silent >/dev/null
        sha256sum <"$lock" | cut -d' ' -f1 >"$stamp"
    fi
}
ensure_node_clients
# The console's browser tests (tests/test_console_e2e.py) drive Debian's chromium through
# Playwright; Playwright cannot download its own browsers here.
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing chromium (the console's browser tests drive it)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        say "chromium is missing: install Debian's chromium (the console's browser tests)"
        return 1
    fi
}
ensure_chromium
exec "$VENV/bin/python" -m pytest "$@"
