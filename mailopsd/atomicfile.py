"""Replacing a file so that readers see the old or the new content, never a mix.

The new content goes to a temporary file in the same directory, is flushed to disk,
gets its mode, and is renamed over the target; the directory is then flushed so the
rename itself survives a crash.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8).

    Args:
        path: The file to replace or create.
        text: Its new content.
        mode: Its permission bits; by default those of the file it replaces, else 0600.

    Raises:
        OSError: The file cannot be written (its ``filename`` is ``path``, never the
            temporary file's); the old one is left as it was.
    """
    try:
        _replace(path, text, mode)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _replace(path: Path, text: str, mode: int | None) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
