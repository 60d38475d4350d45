"""The one error hierarchy of mailopsd.

Every failure a person may see is a ``MailopsError``; callers tell failures apart by
type, never by parsing messages.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "MailopsError",
    "SecretError",
    "StateError",
    "describe_unexpected",
]


class MailopsError(Exception):
    """Base class of every error mailopsd reports to a person."""


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem in the configuration, located in a file.

    ``line`` and ``column`` are 1-based; 0 means the problem concerns the whole file.
    ``path`` is the dotted path of the value (``campaigns.acme.sequence.0.body``), empty
    for problems that concern the file itself.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        """Render as ``file:line:col: path: message``."""
        where = self.file if self.line == 0 else f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        """Return the issue as a JSON-ready mapping."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ConfigError(MailopsError):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        """Keep the issues sorted by file and position."""
        self.issues = sorted(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class SecretError(MailopsError):
    """A secret cannot be read, decrypted or verified."""


class StateError(MailopsError):
    """The state directory, state file or ledger cannot be used."""


def describe_unexpected(err: BaseException) -> str:
    """Name an unexpected exception by its type and where it was raised, never its text.

    An exception's text may quote the data it choked on, a password included (a
    ``UnicodeEncodeError`` shows the character and its position), so what reaches a log
    or a status is ``binascii.Error at base64.py:560``.

    Args:
        err: The exception, with its traceback.

    Returns:
        The exception's qualified type and the file and line of its innermost frame.
    """
    kind = type(err)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return name
    return f"{name} at {Path(frames[-1].filename).name}:{frames[-1].lineno}"
