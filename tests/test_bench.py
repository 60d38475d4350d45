"""The benchmarks still run: ``python -m bench --quick`` produces a number for each.

This asserts that every benchmark runs and reports, never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_quick(tmp_path: Path) -> None:
    """Each benchmark runs its quick size, references included, and reports numbers."""
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["failures"] == {}
    assert report["quick"] is True
    rows = report["rows"]
    assert {row["benchmark"] for row in rows} == set(BENCHMARKS)
    for row in rows:
        assert isinstance(row["value"], int | float), row
        assert row["value"] >= 0, row
        if row["reference"] is not None:
            assert isinstance(row["reference_value"], int | float), row
    assert "machine" in report
