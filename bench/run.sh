#!/usr/bin/env bash
# The benchmark in one command, on a fresh Debian machine: creates .venv with the dev
# extras (py-spy) if needed, installs wrk (and unpacks nginx) on first use, starts
# PostgreSQL, Valkey, the stub backend, the pass-throughs and walletgate, measures, tears
# everything down and rewrites docs/benchmarks.md. Arguments go to `python -m bench`
# (--smoke for a quick run, --help for the rest).
set -euo pipefail
# shellcheck source=scripts/lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/venv.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m bench "$@"
