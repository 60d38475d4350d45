"""A logged exception keeps its traceback in every log format the daemon writes."""

from __future__ import annotations

import io
import json
import logging

from mailopsd.logformat import JournalFormatter, JsonFormatter, TextFormatter

_LOGGER = "mailopsd.tests.logformat"
_MESSAGE = "poll failed mailbox=ops@example.com"


def _read_reply() -> None:
    raise ValueError("unreadable reply")


def _logged_failure(formatter: logging.Formatter) -> str:
    """What ``logger.exception`` writes through ``formatter`` for a failed call."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(_LOGGER)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            _read_reply()
        except ValueError:
            logger.exception("poll failed mailbox=%s", "ops@example.com")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


class TestTextFormatter:
    """The timestamped text format."""

    def test_exception_is_followed_by_its_traceback(self) -> None:
        """The line says the event; the traceback below it names the failing call and error."""
        lines = _logged_failure(TextFormatter()).splitlines()
        assert lines[0].endswith(f" ERROR {_LOGGER}: {_MESSAGE}")
        assert lines[1] == "Traceback (most recent call last):"
        assert any("in _read_reply" in line for line in lines)
        assert lines[-1] == "ValueError: unreadable reply"


class TestJournalFormatter:
    """The journald format, with ``<N>`` priority prefixes."""

    def test_traceback_lines_carry_the_error_priority(self) -> None:
        """Every traceback line is prefixed ``<3>``, so journald files it as an error too."""
        lines = _logged_failure(JournalFormatter()).splitlines()
        assert lines[0] == f"<3>{_LOGGER}: {_MESSAGE}"
        assert all(line.startswith("<3>") for line in lines)
        assert lines[1] == "<3>Traceback (most recent call last):"
        assert any("in _read_reply" in line for line in lines)
        assert lines[-1] == "<3>ValueError: unreadable reply"


class TestJsonFormatter:
    """One JSON object per line."""

    def test_traceback_is_a_field_of_the_one_line(self) -> None:
        """The traceback goes in an ``exception`` field; message and fields stay as they are."""
        (line,) = _logged_failure(JsonFormatter()).splitlines()
        record = json.loads(line)
        assert (record["level"], record["logger"]) == ("error", _LOGGER)
        assert record["message"] == _MESSAGE
        assert record["mailbox"] == "ops@example.com"
        assert record["exception"].startswith("Traceback (most recent call last):")
        assert "in _read_reply" in record["exception"]
        assert record["exception"].endswith("ValueError: unreadable reply")
