"""Run the benchmarks: ``python -m bench [NAME...] [--quick]``.

Each benchmark measures mailopsd and, in the same run, alternating over several rounds,
the reference it is compared with; it reports medians, ratios and its target. The table
goes to the terminal and everything to ``bench/results.json`` (with the machine).
``--quick`` runs small sizes in seconds: it shows the benchmarks still work, not how
fast anything is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Row, fmt
from bench.timing import machine

BENCHMARKS = (
    "load",
    "reload",
    "pick",
    "smtp",
    "smtp-tls",
    "imap",
    "ledger",
    "memory",
    "idle",
    "http",
    "git",
    "dashboard",
    "cluster",
)
RESULTS = Path(__file__).with_name("results.json")


def _run(name: str, quick: bool) -> tuple[list[Row], str | None, float]:
    module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    started = time.monotonic()
    try:
        rows: list[Row] = module.run(quick=quick)
    except Exception:  # one broken benchmark must not hide the others' numbers
        return [], traceback.format_exc(), time.monotonic() - started
    return rows, None, time.monotonic() - started


def _print(rows: list[Row]) -> None:
    print(
        f"{'benchmark':<10} {'metric':<44} {'mailopsd':>14} {'reference':>26} {'ratio':>7}  target"
    )
    for row in rows:
        reference = f"{fmt(row.reference_value, row.unit)} {row.reference}" if row.reference else ""
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        verdict = {True: "met", False: "MISSED", None: ""}[row.met]
        print(
            f"{row.benchmark:<10} {row.metric:<44} {fmt(row.value, row.unit):>14} "
            f"{reference[:26]:>26} {ratio:>7}  {row.target} {verdict}".rstrip()
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named (all by default); return 1 if one of them failed to run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds each")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]}; choose from {', '.join(BENCHMARKS)}")
    print(f"machine: {machine()}", flush=True)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    durations: dict[str, float] = {}
    for name in args.names or BENCHMARKS:
        print(f"running {name}{' (quick)' if args.quick else ''}...", flush=True)
        found, failure, seconds = _run(name, args.quick)
        durations[name] = round(seconds, 1)
        rows.extend(found)
        if failure is not None:
            failures[name] = failure
            print(failure, file=sys.stderr)
    print()
    _print(rows)
    args.results.write_text(
        json.dumps(
            {
                "machine": machine(),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "seconds": durations,
                "rows": [row.as_json() for row in rows],
                "failures": failures,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"\nwritten: {args.results}")
    if failures:
        print(f"failed to run: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
