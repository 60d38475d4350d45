"""Log line formats: one line per event, as text or JSON; journald priorities.

Under journald (``$JOURNAL_STREAM`` set) text lines carry a ``<N>`` syslog priority
prefix and no timestamp (journald adds its own). The entry point picks the formatter.
A record logged with its exception (``logger.exception``) keeps the traceback: on the
lines below it as text, in an ``exception`` field as JSON.

A JSON line also carries the ``key=value`` pairs of its message as fields, so a log
store can filter on ``campaign``, ``credential`` or ``lead`` without parsing text. Our
messages are written ``event key=%s key=%d ...`` (see the style guide), so each field is
the argument of a ``key=`` placeholder, typed as it was given (a number stays a number);
an argument that is itself a run of ``key=value`` words (``dispatched sent=3 ...``) and a
``key=value`` written in the text are fields too, and so is anything passed as ``extra``.
Nothing is taken from inside an argument's text otherwise: an error quoting ``a=b`` adds
no field.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

__all__ = ["JournalFormatter", "JsonFormatter", "TextFormatter", "record_fields"]

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


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback, then its stack, as ``logging.Formatter`` writes them; or ``""``.

    The traceback text is kept on the record, as the standard formatter does, so a second
    handler does not format it again.
    """
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    parts = [record.exc_text or ""]
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(part for part in parts if part)


class TextFormatter(logging.Formatter):
    """``2026-11-23T12:00:00Z INFO mailopsd.daemon: reloaded revision=…``.

    A record with an exception (``logger.exception``) or a stack is followed by its
    traceback, on the lines below.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{moment} {record.levelname} {record.name}: {record.getMessage()}"
        trace = _traceback(self, record)
        return f"{line}\n{trace}" if trace else line


class JournalFormatter(logging.Formatter):
    """``<6>mailopsd.daemon: reloaded revision=…`` for journald.

    journald reads each line as an entry of its own: a traceback's lines carry the
    record's priority too, so an error's traceback is filed as an error.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        prefix = f"<{_priority(record.levelno)}>"
        line = f"{prefix}{record.name}: {record.getMessage()}"
        trace = _traceback(self, record)
        return "\n".join([line, *(prefix + text for text in trace.splitlines())])


# A printf-style conversion, as logging's %-formatting reads them.
_CONVERSION = re.compile(
    r"%(?:\(\w+\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]"
)
_KEY_BEFORE = re.compile(r"(?:^|[\s(,;])([a-z_][a-z0-9_]*)=\Z")
_WRITTEN_PAIR = re.compile(r"(?:^|(?<=[\s(,;]))([a-z_][a-z0-9_]*)=([^\s%;,()]+)")
_WORD_PAIR = re.compile(r"([a-z_][a-z0-9_]*)=(\S+)\Z")
_INTEGER = re.compile(r"-?\d+\Z")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
Field = str | int | float | bool | None


def _typed(spec: str, value: object) -> Field:
    """A ``key=`` placeholder's argument as a JSON value: numbers stay numbers."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and spec[-1] in "difgeEFGs":
        return int(value) if spec[-1] in "di" else value
    return spec % (value,)


def _word(text: str) -> Field:
    return int(text) if _INTEGER.match(text) else text


def _word_pairs(text: str) -> dict[str, Field]:
    """``a=1 b=x`` as fields, when the whole text is such pairs; else none."""
    pairs = [_WORD_PAIR.match(word) for word in text.split()]
    if not pairs or None in pairs:
        return {}
    return {m.group(1): _word(m.group(2)) for m in pairs if m is not None}


def _written_pairs(text: str) -> dict[str, Field]:
    return {m.group(1): _word(m.group(2)) for m in _WRITTEN_PAIR.finditer(text)}


def _message_fields(template: str, args: tuple[object, ...]) -> dict[str, Field]:
    """The fields a message's format string and arguments say, in order."""
    fields: dict[str, Field] = {}
    values = iter(args)
    position = 0
    for conversion in _CONVERSION.finditer(template):
        text = template[position : conversion.start()]
        position = conversion.end()
        fields.update(_written_pairs(text))
        spec = conversion.group()
        if spec == "%%":
            continue
        if "*" in spec or "(" in spec:  # widths from arguments, or a mapping: not ours
            return fields
        value = next(values, None)
        key = _KEY_BEFORE.search(text)
        if key is not None:
            fields[key.group(1)] = _typed(spec, value)
        elif isinstance(value, str):
            fields.update(_word_pairs(value))
    fields.update(_written_pairs(template[position:]))
    return fields


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """What the call passed as ``extra``; values JSON cannot hold become text."""
    fields: dict[str, object] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        plain = value is None or isinstance(value, str | int | float | bool | list | dict)
        fields[key] = value if plain else str(value)
    return fields


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields of a record: its message's ``key=value`` pairs, then its ``extra``.

    Args:
        record: A record logged as ``logger.info("event key=%s", value)``.

    Returns:
        Field names and values, in the order the message gives them.
    """
    fields: dict[str, object] = {}
    if isinstance(record.msg, str) and isinstance(record.args, tuple):
        fields.update(_message_fields(record.msg, record.args))
    fields.update(_extra_fields(record))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then fields.

    The fields are the message's ``key=value`` pairs (:func:`record_fields`). A record
    with an exception or a stack also has ``exception``: its traceback, as text. A field
    named like one of these is left out (the message still has it).
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line: dict[str, object] = {
            "time": moment,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace = _traceback(self, record)
        if trace:
            line["exception"] = trace
        for key, value in record_fields(record).items():
            line.setdefault(key, value)
        return json.dumps(line)
