"""Every log record of a logger and those below it, as text, for tests that read logs whole."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LogLines(logging.Handler):
    """Keeps every record, at every level, tracebacks included, as ``name LEVEL message``."""

    def __init__(self, *, skip: frozenset[str] = frozenset()) -> None:
        super().__init__(logging.DEBUG)
        self.skip = skip
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in self.skip:
            return
        text = self.format(record)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@contextmanager
def captured(name: str = "", *, skip: frozenset[str] = frozenset()) -> Iterator[LogLines]:
    """Keep the records of logger ``name`` (the root: ``""``) at DEBUG while the block runs.

    ``skip`` names loggers whose records are left out (a test server's own, say).
    """
    handler = LogLines(skip=skip)
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
