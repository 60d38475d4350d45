"""Run a mailopsd command in this process, as a person would type it."""

from __future__ import annotations

import pytest

from mailopsd import cli


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``mailopsd ARGV...``: its exit code, and what it printed on stdout and stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
