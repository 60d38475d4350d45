"""mailopsd apikey new: a key shown once, and the api_keys entry holding only its hash."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest

from mailopsd import cli, goyaml
from mailopsd.config.models import ApiKey


def _new(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["apikey", "new", *argv])
    out, err = capsys.readouterr()
    return code, out, err


class TestApikeyNew:
    """mailopsd apikey new."""

    def test_prints_key_and_entry(
        self,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """stdout holds the key, then the entry with its sha256; nothing else keeps the key."""
        monkeypatch.chdir(tmp_path)
        with caplog.at_level(logging.DEBUG):
            code, out, err = _new(capsys, "ops-dashboard", "--account", "sales")
        assert code == 0
        key, *entry = out.splitlines()
        assert re.fullmatch(r"mk_[A-Za-z0-9_-]{43}", key)
        data = goyaml.parse_yaml("\n".join(entry)).data
        assert isinstance(data, dict)
        declared = ApiKey.model_validate(data["api_keys"]["ops-dashboard"])
        assert declared.account == "sales"
        assert declared.sha256 == hashlib.sha256(key.encode()).hexdigest()
        assert "shown only this once" in err
        assert key not in err
        assert key not in caplog.text
        assert list(tmp_path.iterdir()) == []

    def test_defaults(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without NAME the entry is named after the hash; the account is default."""
        code, out, _ = _new(capsys)
        assert code == 0
        key, _, entry = out.splitlines()
        digest = hashlib.sha256(key.encode()).hexdigest()
        assert entry == f'  key-{digest[:8]}: {{account: default, sha256: "{digest}"}}'

    def test_a_write_key(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--scope write puts scope: write in the entry; the default (read) puts nothing."""
        code, out, _ = _new(capsys, "ci-bot", "--scope", "write")
        assert code == 0
        data = goyaml.parse_yaml("\n".join(out.splitlines()[1:])).data
        assert isinstance(data, dict)
        assert ApiKey.model_validate(data["api_keys"]["ci-bot"]).scope == "write"
        assert ApiKey.model_validate(data["api_keys"]["ci-bot"] | {"scope": "read"}).scope == "read"

    def test_each_key_is_new(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Two runs never print the same key."""
        first = _new(capsys, "a")[1].splitlines()[0]
        second = _new(capsys, "a")[1].splitlines()[0]
        assert first != second

    @pytest.mark.parametrize("argv", [("Ops",), ("ops", "--account", "Sales"), ("a_b",)])
    def test_bad_ids_are_usage_errors(
        self, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
    ) -> None:
        """A name or account that is not an id is a usage error (exit 2), and no key is made."""
        code, out, err = _new(capsys, *argv)
        assert (code, out) == (2, "")
        assert "invalid id" in err
