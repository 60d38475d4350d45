"""Time loading and validating a generated config, against PyYAML's C loader alone.

    python -m bench.config_load [--campaigns 1000] [--credentials 10] [--rounds 5]

Each round runs, in alternation, (1) ``yaml.load`` with PyYAML's ``CSafeLoader`` on the
same file (the reference), (2) mailopsd's parser alone, (3) the whole ``load_config``
(read, parse, validate, check leads and templates). Medians are printed with the ratio
to the reference, and the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.generate import generate
from mailopsd.config import load_config
from mailopsd.goyaml import parse_yaml


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--credentials", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp), campaigns=args.campaigns, credentials=args.credentials)
        text = path.read_text()
        runs: dict[str, Callable[[], object]] = {
            "pyyaml CSafeLoader parse (reference)": lambda: yaml.load(
                path.read_text(), Loader=yaml.CSafeLoader
            ),
            "mailopsd parse only": lambda: parse_yaml(path.read_text()),
            "mailopsd load_config (parse + validate + checks)": lambda: load_config(path),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, action in runs.items():
                times[name].append(_timed(action))
    print(f"machine: {os.cpu_count()} cores, {_cpu_model()}, Python {platform.python_version()}")
    count = args.campaigns * args.credentials
    print(
        f"config: {args.campaigns} campaigns x {args.credentials} credentials = {count} "
        f"credentials, {len(text.encode()) / 1e6:.1f} MB; median of {args.rounds} rounds"
    )
    reference = statistics.median(times["pyyaml CSafeLoader parse (reference)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<50} {median:7.3f} s  x{median / reference:5.2f} of reference")


if __name__ == "__main__":
    main()
