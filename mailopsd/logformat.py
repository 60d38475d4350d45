"""Log line formats: one line per event, as text or JSON; journald priorities.

Under journald (``$JOURNAL_STREAM`` set) text lines carry a ``<N>`` syslog priority
prefix and no timestamp (journald adds its own). The entry point picks the formatter.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["JournalFormatter", "JsonFormatter", "TextFormatter"]

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _priority(level: int) -> int:
    return next(
        (value for floor, value in sorted(_PRIORITY.items(), reverse=True) if level >= floor), 7
    )


class TextFormatter(logging.Formatter):
    """``2026-11-23T12:00:00Z INFO mailopsd.daemon: reloaded revision=…``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{moment} {record.levelname} {record.name}: {record.getMessage()}"


class JournalFormatter(logging.Formatter):
    """``<6>mailopsd.daemon: reloaded revision=…`` for journald."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        return f"<{_priority(record.levelno)}>{record.name}: {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(
            {
                "time": moment,
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )
