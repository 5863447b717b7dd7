"""Shared start-up of the atheris harnesses in this directory.

Each harness is a script: ``python fuzz/<target>.py [libFuzzer options] [corpus dirs]``.
The code under test is imported inside :func:`instrumented` so atheris can see which
branches an input reaches and steer towards new ones; only "the input was refused in
the documented way" is an acceptable outcome, anything else is a crash libFuzzer keeps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``walletgate`` and ``tests`` importable
    sys.path.insert(0, str(ROOT))

#: The packages whose branches guide the fuzzer.
INSTRUMENTED = ["walletgate", "rlp", "yaml", "eth_account", "eth_abi", "json"]


@contextmanager
def instrumented() -> Iterator[None]:
    """Import the code under test inside this block, with coverage instrumentation."""
    with atheris.instrument_imports(include=INSTRUMENTED):
        yield


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Hand ``test_one_input`` and the command line to libFuzzer."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
