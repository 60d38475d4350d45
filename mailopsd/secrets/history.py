"""Earlier versions of a file, from git: where a value was encrypted before a key was renamed.

Read only when an encrypted value no longer opens where it is: the file as it was in the
last commits that touched it, newest first. A file outside a git repository (or with no
git installed) has none, and messages then do without the old name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["earlier_versions"]

_TIMEOUT_S = 10.0


def _git(directory: Path, *args: str) -> str | None:
    """Run git in ``directory``; its output, or ``None`` if it fails for any reason."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            ["git", "-C", str(directory), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def earlier_versions(path: Path, *, limit: int = 20) -> Iterator[str]:
    """Yield the texts of ``path`` in the last ``limit`` commits that changed it, newest first.

    Args:
        path: A file in a git working tree.
        limit: How many commits to look back.

    Yields:
        Each committed version's text (none outside a repository).
    """
    directory, name = path.resolve().parent, path.name
    commits = _git(directory, "log", f"--max-count={limit}", "--format=%H", "--", name)
    for commit in (commits or "").split():
        text = _git(directory, "show", f"{commit}:./{name}")
        if text is not None:
            yield text
