"""A canary password goes through every secrets path and never comes out where it shouldn't."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailopsd import cli, goyaml
from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.errors import MailopsError
from mailopsd.secrets import decrypt_data, decrypt_text
from tests.configs import CANARY, Writer
from tests.sops_tools import make_key

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "campaigns.example.yaml"
DEMO_KEY = REPO / "config" / "demo-age-key.txt"


def test_canary_never_leaks(
    write_config: Writer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Encrypt, validate (valid and invalid), and every failure: no output, log or exception
    text holds the canary."""
    (tmp_path / "keys").mkdir()
    key, stranger = make_key(tmp_path / "keys"), make_key(tmp_path / "keys", "stranger.txt")
    seen: list[str] = []
    path = write_config()
    with caplog.at_level(logging.DEBUG):
        assert (
            cli.main(["secrets", "encrypt", "--age", key.recipient, "--in-place", str(path)]) == 0
        )
        good = path.read_text()
        broken = good.replace("daily_limit: 100", "daily_limit: -1")
        lines = good.splitlines(keepends=True)
        lines[13], lines[14] = (
            lines[13].split(": ")[0] + ": " + lines[14].split(": ", 1)[1],
            lines[14].split(": ")[0] + ": " + lines[13].split(": ", 1)[1],
        )
        variants = {"good": good, "invalid": broken, "moved": "".join(lines)}
        for text in variants.values():
            path.write_text(text)
            for extra in ([], ["--format", "json"], ["--no-decrypt"]):
                for key_file in (key.path, stranger.path):
                    cli.main(["validate", str(path), "--age-key-file", str(key_file), *extra])
            for identities in (key.identities, stranger.identities):
                try:
                    loaded = load_config(path, LoadOptions(identities=identities))
                    seen.append(repr(loaded) + str(loaded.config) + loaded.config.model_dump_json())
                except MailopsError as err:
                    seen.append(str(err) + repr(err) + repr(err.__cause__))
                try:
                    seen.append(repr(decrypt_text(text, identities(), "c.yaml")))
                    data = goyaml.parse_yaml(text).data
                    assert isinstance(data, dict)
                    seen.append(repr(decrypt_data(data, identities(), "c.yaml")))
                except MailopsError as err:
                    seen.append(str(err) + repr(err) + repr(err.__cause__))
        out, err = capsys.readouterr()
    seen += [out, err, caplog.text]
    assert all(CANARY not in text for text in seen)
    assert "must be an integer ≥ 1 (got -1)" in err
    assert "smtp_username: holds the value encrypted as " in err


def test_example_needs_the_demo_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The encrypted example validates with the demo key, fails clearly without it, and
    passes with --no-decrypt."""
    for name in (
        "MAILOPSD_AGE_KEY_FILE",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "CREDENTIALS_DIRECTORY",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    key = tmp_path / "demo.txt"
    key.write_text(DEMO_KEY.read_text())
    key.chmod(0o600)
    assert cli.main(["validate", str(EXAMPLE), "--age-key-file", str(key)]) == 0
    assert capsys.readouterr().out == (
        "ok: 1 campaign, 3 credentials (1 with reply detection), 1 shared mailbox, "
        "1 suppression list for 1 "
        "account; http on 127.0.0.1:8025 for https://mail.example.com, 1 API key\n"
    )
    assert cli.main(["validate", str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{EXAMPLE}: no age identity found")
    assert cli.main(["validate", str(EXAMPLE), "--no-decrypt"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 campaign")
