"""Fixtures of the secrets tests: a throwaway age key, and the CLI with a canary check."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailopsd import cli
from tests.configs import CANARY
from tests.sops_tools import AgeKey, CliRun, make_key


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    """An age identity in tmp_path/keys/key.txt (mode 0600)."""
    (tmp_path / "keys").mkdir()
    return make_key(tmp_path / "keys")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[CliRun]:
    """Run the CLI and return (exit code, stdout, stderr).

    The canary never shows on stderr or in a log line (stdout carries plaintext only
    for ``secrets decrypt``, which is what it is for).
    """

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        assert CANARY not in err
        return code, out, err

    with caplog.at_level(logging.DEBUG):
        yield invoke
    assert CANARY not in caplog.text
