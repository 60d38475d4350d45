"""status as an operator reads it: where it looked for the state."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd import cli


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestNoState:
    """status where there is no daemon state."""

    @pytest.mark.parametrize("json_form", [False, True])
    def test_missing_directory(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        json_form: bool,
    ) -> None:
        """A state directory that does not exist: one line naming where it looked, exit 1."""
        monkeypatch.chdir(tmp_path)
        extra = ["--json"] if json_form else []
        code, out, err = _cli(capsys, "status", "--state-dir", "nope", *extra)
        assert (code, out) == (1, "")
        assert err == (
            f"error: no daemon state in {tmp_path / 'nope'} (that directory does not exist): "
            "give the daemon's state directory with --state-dir (the service's is "
            "/var/lib/mailopsd; the default is $MAILOPSD_STATE_DIR, then $STATE_DIRECTORY, "
            "then ./state), or run 'mailopsd run' first to create it\n"
        )

    def test_directory_without_state(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A directory that holds no state file or ledger (the default ./state, from the
        environment) is named with what it lacks."""
        monkeypatch.chdir(tmp_path)
        Path("elsewhere").mkdir()
        monkeypatch.setenv("MAILOPSD_STATE_DIR", "elsewhere")
        code, out, err = _cli(capsys, "status")
        assert (code, out) == (1, "")
        assert err.startswith(
            f"error: no daemon state in {tmp_path / 'elsewhere'} "
            "(it has no state.yaml or ledger.sqlite3): "
        )
        assert len(err.splitlines()) == 1

    def test_file_instead_of_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file given as the state directory is refused as not a directory."""
        monkeypatch.chdir(tmp_path)
        Path("state.txt").write_text("")
        code, _, err = _cli(capsys, "status", "--state-dir", "state.txt")
        assert code == 1
        assert f"no daemon state in {tmp_path / 'state.txt'} (that is not a directory)" in err
