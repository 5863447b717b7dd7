# shellcheck shell=bash
# Sourced by scripts/run.sh and scripts/test.sh: make sure .venv exists and holds this
# checkout installed. run.sh needs only what running walletgate needs; test.sh sets
# WALLETGATE_VENV_EXTRAS=dev first to get the dev extras (pytest, mypy, ruff, ...) too,
# even when run.sh created the venv. Reinstalls only when pyproject.toml changed or
# more extras are wanted than the venv holds.

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

# uv installs the same packages from PyPI several times faster than pip (parallel
# downloads, no per-package pip start-up), which is most of a first start. It is itself
# installed from PyPI into the venv, so nothing else needs to be present; when it cannot
# be had (an offline mirror that pip is configured for), pip does the install.
UV_VERSION="0.13.9"

install_checkout() {
    local target="$1"
    if [ ! -x "$VENV/bin/uv" ]; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
            >/dev/null 2>&1 || true
    fi
    if [ -x "$VENV/bin/uv" ] &&
        "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -e "$target"; then
        return 0
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target"
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        create_venv
    fi
    local extras="${WALLETGATE_VENV_EXTRAS:-}" wanted installed
    wanted="$(sha256sum <"$ROOT/pyproject.toml" | cut -d' ' -f1)"
    installed="$(cat "$STAMP" 2>/dev/null || true)"
    # The stamp is "<pyproject hash>" (runtime only) or "<pyproject hash> dev".
    if [ "$installed" = "$wanted dev" ] || [ "$installed" = "$wanted${extras:+ $extras}" ]; then
        return 0
    fi
    if [ -n "$extras" ]; then
        say "installing walletgate with its $extras extras into $VENV"
        install_checkout "${ROOT}[$extras]"
        echo "$wanted $extras" >"$STAMP"
    else
        say "installing walletgate and its runtime dependencies into $VENV"
        install_checkout "$ROOT"
        echo "$wanted" >"$STAMP"
    fi
}

ensure_venv
