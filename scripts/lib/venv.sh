# shellcheck shell=bash
# Sourced by scripts/run.sh and scripts/test.sh: make sure .venv exists and holds this
# checkout installed with its dev extras. Reinstalls only when pyproject.toml changed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.walletgate-installed"

say() { printf 'walletgate: %s\n' "$*" >&2; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    say "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)"
    return 1
}

create_venv() {
    local python
    python="$(find_python)"
    if "$python" -m venv "$VENV" >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$VENV"
    # Debian and Ubuntu ship venv/ensurepip separately from python3.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing python3-venv (python3 -m venv failed)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$python" -m venv "$VENV"
        return 0
    fi
    say "'$python -m venv' failed; install the venv module first:"
    say "    sudo apt-get install python3-venv    # Debian/Ubuntu"
    return 1
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        create_venv
    fi
    local wanted
    wanted="$(sha256sum <"$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
        say "installing walletgate and its dependencies into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${ROOT}[dev]"
        echo "$wanted" >"$STAMP"
    fi
}

ensure_venv
