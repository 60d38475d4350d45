"""The one error hierarchy of mailopsd.

Every failure a person may see is a ``MailopsError``; the retry policy lives in the
type (``TemporaryError`` carries its delay), so callers never parse messages.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "MailopsError",
    "PermanentError",
    "ReconcileError",
    "SecretError",
    "StateError",
    "TemporaryError",
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


class ReconcileError(MailopsError):
    """Applying the desired configuration failed."""


class TemporaryError(ReconcileError):
    """A failure that may go away; retry after ``delay_s`` seconds."""

    def __init__(self, message: str, *, delay_s: float) -> None:
        """Record the message and the suggested delay."""
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(ReconcileError):
    """A failure that retrying will not fix."""
