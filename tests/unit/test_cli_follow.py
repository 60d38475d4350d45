"""``run --git``'s options: the clear errors, and the credentials systemd hands over."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd import cli


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["run", "--once", *args])
    return code, capsys.readouterr().err


def test_config_and_git_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "--git", "file:///nowhere.git", "--config", str(tmp_path))
    assert (code, err) == (
        1,
        "error: --config and --git exclude each other: the config comes from git\n",
    )


def test_an_empty_webhook_secret_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret comes from $CREDENTIALS_DIRECTORY/git-webhook-secret; empty is an error."""
    (tmp_path / "git-webhook-secret").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    code, err = _run(capsys, "--git", "file:///nowhere.git", "--state-dir", str(tmp_path / "s"))
    assert (code, err) == (
        1,
        f"error: {tmp_path}/git-webhook-secret: the webhook secret is empty\n",
    )


def test_a_named_file_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "key"
    code, err = _run(capsys, "--git", "file:///nowhere.git", "--git-ssh-key", str(missing))
    assert (code, err) == (1, f"error: {missing}: no such file\n")


def test_the_interval_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--git", "file:///nowhere.git", "--git-interval", "0")
    assert (code, err) == (1, "error: --git-interval must be a number of seconds above 0\n")
