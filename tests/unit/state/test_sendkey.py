"""The send-token key: made once in the state directory, 0600, then read as it is."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailopsd.errors import StateError
from mailopsd.state.sendkey import SEND_KEY_FILE, load_send_key


class TestLoadSendKey:
    """The daemon's own secret for send tokens."""

    def test_made_once_private(self, tmp_path: Path) -> None:
        """The first read makes a random 32-byte key in a 0600 file; later reads keep it."""
        key = load_send_key(tmp_path)
        assert len(key) == 32
        path = tmp_path / SEND_KEY_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_send_key(tmp_path) == key
        assert path.read_text() == key.hex() + "\n"
        assert [p.name for p in tmp_path.iterdir()] == [SEND_KEY_FILE]  # no temporary left

    def test_each_state_directory_its_own(self, tmp_path: Path) -> None:
        """Two state directories get two keys."""
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        assert load_send_key(tmp_path / "a") != load_send_key(tmp_path / "b")

    @pytest.mark.parametrize("content", ["", "zz\n", "ab" * 16 + "\n", "AB" * 32 + "\n"])
    def test_damaged_file_refused_and_kept(self, tmp_path: Path, content: str) -> None:
        """A file that holds no key stops the start with a message that says what to do;
        the file is left for a person to restore, never replaced."""
        path = tmp_path / SEND_KEY_FILE
        path.write_text(content)
        with pytest.raises(StateError, match="holds no send-token key") as caught:
            load_send_key(tmp_path)
        assert "restore it from a backup" in str(caught.value)
        assert path.read_text() == content

    def test_unreadable_names_the_file_not_the_key(self, tmp_path: Path) -> None:
        """A key file that cannot be read is a StateError naming the file."""
        (tmp_path / SEND_KEY_FILE).mkdir()
        with pytest.raises(StateError, match=f"cannot use the send-token key .*{SEND_KEY_FILE}"):
            load_send_key(tmp_path)
