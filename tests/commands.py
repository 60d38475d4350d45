"""Run a mailopsd command as a person would type it: in this process, or as its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailopsd import cli


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``mailopsd ARGV...``: its exit code, and what it printed on stdout and stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys: pytest.CaptureFixture[str], state: Path, now: str) -> dict[str, Any]:
    """``mailopsd status --json --now NOW`` of a state directory, parsed (it must succeed)."""
    capsys.readouterr()  # what came before is not the report
    code, out, err = run_cli(capsys, "status", "--state-dir", str(state), "--json", "--now", now)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def status_process(state: Path, *options: str) -> str:
    """What ``mailopsd status`` prints for ``state``, run as its own process (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "mailopsd", "status", "--state-dir", str(state), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
