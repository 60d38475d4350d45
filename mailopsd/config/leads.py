"""Leads files: a CSV with a header row; ``email`` is required, other columns are variables.

Rows whose address is not an address, or with a CR or LF in any value (header
injection), are skipped and reported with their line; a repeated address keeps its
first row. An address is the lead's key in its campaign, compared case-insensitively.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LeadRow", "LeadsRead", "Progress", "file_digest", "read_leads"]

_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+\Z")
_CHUNK = 1 << 20


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


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _problem(row: dict[str, str], email: str) -> str | None:
    if any("\r" in value or "\n" in value for value in row.values()):
        return "has a line break in a value (header injection); skipped"
    if not _ADDRESS.match(email):
        return f"has no valid email ({email!r}); skipped"
    return None


Progress = Callable[[str, int, bool], None]
_PROGRESS_EVERY = 100_000


def read_leads(
    path: Path, display: str | None = None, *, progress: Progress | None = None
) -> LeadsRead:
    """Read a leads file.

    Args:
        path: The CSV file (UTF-8, a BOM allowed).
        display: How to name the file in problems (default: ``path``).
        progress: Called with the file's name, the rows read so far and whether it is
            done, every 100,000 rows and at the end (a terminal shows it).

    Returns:
        The rows by lower-cased address, and one problem line per skipped row.

    Raises:
        OSError: The file cannot be read.
    """
    read = LeadsRead()
    name = display or str(path)
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        end = reader.line_num
        for count, row_values in enumerate(reader, start=1):
            line, end = end + 1, reader.line_num  # a quoted value may span lines
            if progress is not None and count % _PROGRESS_EVERY == 0:
                progress(name, count, False)
            if not any(value.strip() for value in row_values):
                continue
            row = dict(zip(header, row_values, strict=False))
            email = row.get("email", "").strip()
            problem = _problem(row, email)
            if problem is not None:
                read.problems.append(f"{name}:{line}: {problem}")
                continue
            key = email.lower()
            if key in read.rows:
                first = read.rows[key].line
                read.problems.append(f"{name}:{line}: repeats {email} (line {first} kept)")
                continue
            text = json.dumps(row, sort_keys=True, ensure_ascii=False)
            row_hash = hashlib.sha256(text.encode()).hexdigest()
            read.rows[key] = LeadRow(email=key, fields=row, row_hash=row_hash, line=line)
    if progress is not None:
        progress(name, len(read.rows) + len(read.problems), True)
    return read
