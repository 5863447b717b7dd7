"""The atheris harnesses in fuzz/, run briefly (coverage-guided, from generated seeds).

The CI profile gives each harness a fixed number of runs; ``WALLETGATE_FUZZ_EXAMPLES``
sets another (see docs/reliability.md for the long runs). A harness fails when an input
makes the code under test do anything but refuse it in the documented way; libFuzzer
then writes the input to ``crash-*`` in the test's temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fuzzing import FUZZ_EXAMPLES_ENV

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
#: harness -> (libFuzzer dictionary, runs in the CI profile: a few seconds each)
HARNESSES: dict[str, tuple[str | None, int]] = {
    "jsonrpc_body": ("json.dict", 20_000),
    "raw_transaction": (None, 20_000),
    "typed_data": ("json.dict", 20_000),
    "policy_yaml": ("yaml.dict", 2_000),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(FUZZ / "seeds.py"), str(directory)], check=True)
    return directory


@pytest.mark.parametrize("harness", list(HARNESSES))
def test_harness(harness: str, corpus: Path, tmp_path: Path) -> None:
    dictionary, ci_runs = HARNESSES[harness]
    runs = int(os.environ.get(FUZZ_EXAMPLES_ENV) or ci_runs)
    command = [
        sys.executable,
        str(FUZZ / f"{harness}.py"),
        f"-runs={runs}",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
    ]
    if dictionary:
        command.append(f"-dict={FUZZ / dictionary}")
    command.append(str(corpus / harness))
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert f"Done {runs} runs" in output, output[-2000:]
    assert not list(tmp_path.glob("crash-*"))
