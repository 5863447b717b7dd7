"""``python -m bench``: run the benchmark and write docs/benchmarks.md.

    ./bench/run.sh                 # the full run (venv, tools, ~15 minutes on 2 cores)
    ./bench/run.sh --smoke         # a few seconds per scenario; report in the work dir
    python -m bench --report-only results.json   # re-render a saved run

See docs/benchmarks.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import report, results, runner
from bench.config import SMOKE, BenchConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPORT = ROOT / "docs" / "benchmarks.md"


def _wallet_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,1000,100000: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("wallet counts must be positive")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds per scenario (CI)")
    parser.add_argument(
        "--output", type=Path, help=f"report to write (default {DEFAULT_REPORT}; smoke: work dir)"
    )
    parser.add_argument("--json", type=Path, help="also save the results here")
    parser.add_argument("--workdir", type=Path, help="logs, bodies, profile (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--seconds", type=float, help="per closed-loop measurement")
    parser.add_argument("--rounds", type=int, help="closed-loop rounds per cell")
    parser.add_argument("--wallets", type=_wallet_counts, help="scale deployments, e.g. 1,1000")
    parser.add_argument("--audit-rows", type=int, help="rows added to the audit deployment")
    parser.add_argument("--no-nginx", action="store_true", help="leave nginx out")
    parser.add_argument(
        "--report-only", type=Path, metavar="RESULTS_JSON", help="render saved results only"
    )
    return parser


def _config(args: argparse.Namespace) -> BenchConfig:
    config = SMOKE if args.smoke else BenchConfig()
    changes: dict[str, Any] = {"nginx": not args.no_nginx}
    if args.seconds:
        changes["seconds"] = args.seconds
    if args.rounds:
        changes["rounds"] = args.rounds
    if args.wallets:
        changes["wallets"] = args.wallets
        if config.main_wallets not in args.wallets:
            changes["main_wallets"] = args.wallets[len(args.wallets) // 2]
    if args.audit_rows is not None:
        changes["audit_rows"] = args.audit_rows
    return dataclasses.replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report_only:
        output = args.output or DEFAULT_REPORT
        report.write_report(output, results.load(args.report_only))
        print(f"bench: wrote {output}")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="walletgate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    output = args.output or (workdir / "benchmarks.md" if args.smoke else DEFAULT_REPORT)
    succeeded = False
    try:
        measured = runner.run(_config(args), workdir)
        results.save(measured, args.json or workdir / "results.json")
        report.write_report(output, measured)
        succeeded = True
        print(f"bench: wrote {output}")
    finally:
        if args.keep or not succeeded:
            print(f"bench: logs and raw results are in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
