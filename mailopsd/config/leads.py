"""Leads files: a CSV with a header row; ``email`` is required, other columns are variables.

Rows whose address is not an address (see :mod:`mailopsd.config.addresses`), with a CR
or LF in any value (header injection), or that the csv module refuses (a value over its
size limit), are skipped and reported with their line; a repeated address keeps its
first row. An address is the lead's key in its campaign in its one normal form (domain
in A-labels, lower case), so two spellings of one mailbox are one lead; the row's
``email`` column holds that form too, as templates see it.

Every read goes through :mod:`mailopsd.config.confined`: a leads file is a regular file
of at most ``LEADS_MAX_BYTES``, inside the config tree when one is given, also when it is
read again at import time, after the config was accepted.

:func:`iter_leads` reads a file row by row and keeps nothing, so a file of millions of
rows costs no more memory than one row (the ledger stages it and finds repeated
addresses itself); :func:`read_leads` keeps every row in memory, for small files and
``validate``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple, TextIO

from mailopsd.config import confined
from mailopsd.config.addresses import AddressError, lead_key, refusal, shown
from mailopsd.progress import Progress, Work

__all__ = [
    "LeadLine",
    "LeadRow",
    "LeadsRead",
    "file_digest",
    "first_non_utf8",
    "iter_leads",
    "open_leads",
    "read_leads",
    "repeat_problem",
]

_CHUNK = 1 << 20
# What ``row_hash`` digests: json.dumps(row, sort_keys=True, ensure_ascii=False), with
# the encoder built once rather than for every row.
_ROW_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


@dataclass(frozen=True)
class LeadRow:
    """One lead of a leads file: its address (the key), its columns and their digest."""

    email: str
    fields: Mapping[str, str]
    row_hash: str
    line: int


@dataclass
class LeadsRead:
    """The usable rows of a leads file, by address, and what was skipped."""

    rows: dict[str, LeadRow] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class LeadLine(NamedTuple):
    """One non-blank row of a leads file, as read.

    Attributes:
        line: The line the row starts on (a quoted value may span lines).
        email: The address in its normal form: the lead's key (see ``addresses``).
        given: The address as written, stripped (for messages).
        fields: The row's columns by name.
        text: The columns as JSON with sorted keys (what ``row_hash`` digests).
        row_hash: The sha256 of ``text``.
        problem: Why the row is skipped (the whole ``file:line: ...`` message), or
            ``None`` for a usable row. A skipped row has no ``text`` or ``row_hash``.
    """

    line: int
    email: str
    given: str
    fields: dict[str, str]
    text: str
    row_hash: str
    problem: str | None = None


def _open_binary(path: Path, root: Path | None) -> BinaryIO:
    return confined.open_binary(path, root, what="leads file", limit_bytes=confined.LEADS_MAX_BYTES)


def open_leads(path: Path, *, root: Path | None = None) -> TextIO:
    """Open a leads file as text for the csv module (UTF-8, a BOM skipped).

    Args:
        path: The file.
        root: The config tree it must be inside (``None``: anywhere).

    Returns:
        The text stream; the caller closes it.

    Raises:
        RefusedFileError: The file is outside ``root``, not a regular file or too large.
        OSError: The file cannot be opened.
    """
    return io.TextIOWrapper(_open_binary(path, root), encoding="utf-8-sig", newline="")


def file_digest(path: Path, *, root: Path | None = None) -> str:
    """Return the sha256 of a leads file's bytes (``root`` as for :func:`open_leads`)."""
    digest = hashlib.sha256()
    with _open_binary(path, root) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def first_non_utf8(path: Path, *, root: Path | None = None) -> tuple[int, int] | None:
    """Find the first byte of a file that is not UTF-8, reading it a chunk at a time.

    Args:
        path: The file.
        root: As for :func:`open_leads`.

    Returns:
        The line (1-based) and value of that byte, or ``None`` if the file is UTF-8.

    Raises:
        OSError: The file cannot be read (``RefusedFileError``: see :func:`open_leads`).
    """
    line = 1
    pending = b""
    with _open_binary(path, root) as stream:
        while chunk := stream.read(_CHUNK):
            data = pending + chunk
            try:
                _, used = codecs.utf_8_decode(data, "strict", False)
            except UnicodeDecodeError as err:
                return line + data.count(b"\n", 0, err.start), data[err.start]
            line += data.count(b"\n", 0, used)
            pending = data[used:]
    return (line, pending[0]) if pending else None


def _checked(row: dict[str, str], given: str) -> tuple[str, str | None]:
    """The row's key, or why the row is skipped (the message without its place)."""
    if any("\r" in value or "\n" in value for value in row.values()):
        return "", "has a line break in a value (header injection); skipped"
    try:
        return lead_key(given), None
    except AddressError as err:
        return "", f"has no valid email ({shown(given)}: {refusal(err)}); skipped"


def repeat_problem(name: str, line: int, given: str, first: int) -> str:
    """The message for a row whose address an earlier row (``first``) already has."""
    return f"{name}:{line}: repeats {given} (line {first} kept)"


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str] | csv.Error]:
    """The reader's rows, and in place of a row it refuses, why (it goes on after it)."""
    while True:
        try:
            yield from reader
        except csv.Error as err:
            yield err
        else:
            return


_PROGRESS_EVERY = 1_000  # rows between two reports: a few a second on a slow disk


def _report(
    progress: Progress | None, name: str, stream: TextIO, rows: int, *, finished: bool = False
) -> None:
    """Report how far into the file reading is: its bytes, with the rows read so far."""
    if progress is None:
        return
    binary = stream.buffer
    work = Work(
        f"reading {name}",
        binary.tell(),
        os.fstat(binary.fileno()).st_size,
        "B",
        note=f"{rows:,} row" + ("" if rows == 1 else "s"),
        finished=finished,
    )
    progress(work)


def iter_leads(
    path: Path,
    display: str | None = None,
    *,
    progress: Progress | None = None,
    root: Path | None = None,
) -> Iterator[LeadLine]:
    """Read a leads file one row at a time, in file order, keeping none.

    Repeated addresses are not detected here: every usable row is yielded, and the
    caller keeps the first of each address (see :func:`repeat_problem`).

    Args:
        path: The CSV file (UTF-8, a BOM allowed).
        display: How to name the file in problems (default: ``path``).
        progress: Told how far reading is (the bytes read of the file's size, and the
            rows so far) at the start, every 1,000 rows and at the end.
        root: As for :func:`open_leads`.

    Yields:
        Each non-blank row, usable or skipped (with its problem).

    Raises:
        OSError: The file cannot be read (``RefusedFileError``: see :func:`open_leads`).
        UnicodeDecodeError: The file is not UTF-8.
    """
    name = display or str(path)
    rows = 0
    with open_leads(path, root=root) as stream:
        reader = csv.reader(stream)
        _report(progress, name, stream, rows)
        try:
            header = [column.strip() for column in next(reader, [])]
            end = reader.line_num
            for count, row_values in enumerate(_rows(reader), start=1):
                line, end = end + 1, reader.line_num  # a quoted value may span lines
                if count % _PROGRESS_EVERY == 0:
                    _report(progress, name, stream, count)
                lead = _lead_line(header, row_values, line, name)
                if lead is not None:
                    rows += 1
                    yield lead
        finally:  # also when reading fails or stops early: the work is over
            _report(progress, name, stream, rows, finished=True)


def _lead_line(
    header: list[str], row_values: list[str] | csv.Error, line: int, name: str
) -> LeadLine | None:
    """One row of the file as a lead, or why it is skipped; ``None`` for a blank row."""
    if isinstance(row_values, csv.Error):
        return LeadLine(
            line, "", "", {}, "", "", f"{name}:{line}: cannot be read ({row_values}); skipped"
        )
    if not any(value.strip() for value in row_values):
        return None
    row = dict(zip(header, row_values, strict=False))
    given = row.get("email", "").strip()
    email, problem = _checked(row, given)
    if problem is not None:
        return LeadLine(line, "", given, row, "", "", f"{name}:{line}: {problem}")
    row["email"] = email  # templates see the address as it is sent
    text = _ROW_JSON(row)
    return LeadLine(line, email, given, row, text, hashlib.sha256(text.encode()).hexdigest())


def read_leads(
    path: Path,
    display: str | None = None,
    *,
    progress: Progress | None = None,
    root: Path | None = None,
) -> LeadsRead:
    """Read a whole leads file into memory.

    Args:
        path: The CSV file (UTF-8, a BOM allowed).
        display: How to name the file in problems (default: ``path``).
        progress: As for :func:`iter_leads`.
        root: As for :func:`open_leads`.

    Returns:
        The rows by key (the normal form of the address), and one problem line per
        skipped row.

    Raises:
        OSError: The file cannot be read (``RefusedFileError``: see :func:`open_leads`).
        UnicodeDecodeError: The file is not UTF-8.
    """
    read = LeadsRead()
    name = display or str(path)
    for lead in iter_leads(path, display, progress=progress, root=root):
        if lead.problem is not None:
            read.problems.append(lead.problem)
        elif lead.email in read.rows:
            first = read.rows[lead.email].line
            read.problems.append(repeat_problem(name, lead.line, lead.given, first))
        else:
            read.rows[lead.email] = LeadRow(lead.email, lead.fields, lead.row_hash, lead.line)
    return read
