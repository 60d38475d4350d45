"""Reading a file a config names: inside the tree, a regular file, never past its limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd.config import confined


class TestOpenBinary:
    """confined.open_binary."""

    def test_a_file_that_grows_past_the_limit_stops_the_read(self, tmp_path: Path) -> None:
        """A file within its limit when opened but growing past it is refused while read."""
        path = tmp_path / "leads.csv"
        path.write_bytes(b"email\n")
        with confined.open_binary(path, tmp_path, what="leads file", limit_bytes=64) as stream:
            path.write_bytes(b"x" * 1000)
            with pytest.raises(confined.RefusedFileError) as caught:
                stream.read()
        assert str(caught.value) == (
            f"leads file {path} is larger than the limit of 64 bytes; make it smaller"
        )

    def test_a_symlink_inside_the_tree_is_followed(self, tmp_path: Path) -> None:
        """A symlink to a file in the tree reads that file."""
        (tmp_path / "real.txt").write_bytes(b"hello")
        (tmp_path / "link.txt").symlink_to("real.txt")
        read = confined.read_bytes(
            tmp_path / "link.txt", tmp_path, what="template file", limit_bytes=10
        )
        assert read == b"hello"
