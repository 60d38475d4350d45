"""Suppression lists: files in git of addresses and whole domains an account never mails.

The top-level ``suppress:`` gives each account its list files, relative to the config
file that names them and inside the config directory (read through
:mod:`mailopsd.config.confined`, at most ``SUPPRESS_MAX_BYTES``). A file is one of two
kinds, told apart by its name:

- ``*.csv``: a header row with an ``email`` column, a ``domain`` column or both; each row
  fills one of them (a domain with or without its leading ``@``); rows filling neither
  are skipped.
- any other name: one entry per line, an address (``ada@example.com``) or a whole domain
  written with its ``@`` (``@example.com``); blank lines and ``#`` comments (a whole
  line, or after the entry and a space) are skipped.

Entries take the normal form of :mod:`mailopsd.config.addresses`, the form leads are
keyed by; a domain covers the addresses at exactly that domain (a subdomain is another
domain). A malformed line is a config error at its line: the list is all or nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from mailopsd.config import confined
from mailopsd.config.addresses import AddressError, lead_key, refusal
from mailopsd.config.cache import LoadCache
from mailopsd.config.domains import domain_key
from mailopsd.config.models import Config
from mailopsd.config.origins import Merge
from mailopsd.config.scalars import describe
from mailopsd.errors import ConfigIssue

__all__ = [
    "ListEntry",
    "ListFiles",
    "ListProblem",
    "check_lists",
    "iter_list",
    "lists_digest",
]

_MAX_PROBLEMS = 20
"""Malformed lines reported per file; the rest are counted."""


class ListEntry(NamedTuple):
    """One entry of a list: an address or a whole domain, in its normal form."""

    kind: Literal["address", "domain"]
    value: str
    line: int


class ListProblem(NamedTuple):
    """A malformed line of a list: where, and why (the message without the place)."""

    line: int
    column: int
    message: str


def _read_text(path: Path, root: Path) -> str:
    """A list file's text, UTF-8 (a BOM skipped).

    Raises:
        ValueError: It is not UTF-8 (the message names the line and byte).
        OSError: It cannot be read (``RefusedFileError``: outside the tree, too large...).
    """
    raw = confined.read_bytes(
        path, root, what="suppression list", limit_bytes=confined.SUPPRESS_MAX_BYTES
    )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ValueError(
            f"suppression list {path} is not UTF-8 text (line {line}, byte "
            f"0x{raw[err.start]:02x}); save it as UTF-8"
        ) from err


def _address(text: str, line: int, column: int) -> ListEntry | ListProblem:
    try:
        return ListEntry("address", lead_key(text), line)
    except AddressError as err:
        return ListProblem(line, column, f"not an address (got {describe(text)}): {refusal(err)}")


def _domain(text: str, line: int, column: int) -> ListEntry | ListProblem:
    try:
        return ListEntry("domain", domain_key(text.removeprefix("@")), line)
    except AddressError as err:
        return ListProblem(line, column, f"not a domain (got {describe(text)}): {err}")


def _line_entry(text: str, line: int) -> ListEntry | ListProblem | None:
    """The entry of one line of a one-entry-a-line list (``None``: nothing on it)."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    column = len(text) - len(text.lstrip()) + 1
    entry, _, rest = stripped.partition(" ")
    entry, _, tabbed = entry.partition("\t")
    rest = (tabbed + " " + rest).strip()
    if rest and not rest.startswith("#"):
        return ListProblem(
            line,
            column,
            f"more than one entry on a line (got {describe(stripped)}): write one address or "
            "@domain a line, and start a comment with #",
        )
    if entry.startswith("@"):
        return _domain(entry, line, column)
    if "@" in entry:
        return _address(entry, line, column)
    return ListProblem(
        line,
        column,
        f"neither an address nor a domain (got {describe(entry)}): write an address such "
        f"as ada@example.com, or a whole domain with its @, as in @{entry}",
    )


def _lines(text: str) -> Iterator[ListEntry | ListProblem]:
    # Lines end at LF only (a CR before it is stripped), as an editor numbers them.
    for number, line in enumerate(text.split("\n"), start=1):
        found = _line_entry(line, number)
        if found is not None:
            yield found


def _csv_row(row: Mapping[str, str], line: int) -> ListEntry | ListProblem | None:
    email, domain = row.get("email", "").strip(), row.get("domain", "").strip()
    if email and domain:
        return ListProblem(
            line, 1, "both email and domain are filled: give one a row (two rows for both)"
        )
    if email:
        return _address(email, line, 1)
    return _domain(domain, line, 1) if domain else None


def _csv(text: str) -> Iterator[ListEntry | ListProblem]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip() for column in next(reader, [])]
    if "email" not in header and "domain" not in header:
        shown = ", ".join(header) or "none"
        yield ListProblem(1, 1, f"has no email or domain column (columns: {shown})")
        return
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        yield ListProblem(1, 1, f"repeats the column {repeated[0]}")
        return
    end = reader.line_num
    try:
        for values in reader:
            line, end = end + 1, reader.line_num  # a quoted value may span lines
            found = _csv_row(dict(zip(header, values, strict=False)), line)
            if found is not None:
                yield found
    except csv.Error as err:
        yield ListProblem(end + 1, 1, f"cannot be read as CSV ({err})")


def iter_list(path: Path, *, root: Path) -> Iterator[ListEntry | ListProblem]:
    """Read a list file's entries, and its malformed lines, in file order.

    Args:
        path: The file (``*.csv``: CSV; any other name: one entry a line).
        root: The config tree it must be inside.

    Yields:
        Each entry, and in place of a malformed line why it is malformed.

    Raises:
        ValueError: The file is not UTF-8.
        OSError: It cannot be read (``RefusedFileError``: outside the tree, not a
            regular file, too large).
    """
    text = _read_text(path, root)
    yield from _csv(text) if path.suffix.lower() == ".csv" else _lines(text)


def lists_digest(files: Mapping[str, str]) -> str:
    """The digest of an account's lists, from each file's name as configured and digest."""
    digest = hashlib.sha256()
    for name, file_digest in files.items():
        digest.update(f"{name}\0{file_digest}\0".encode())
    return digest.hexdigest()


def _problems(path: Path, root: Path) -> tuple[tuple[int, int, str], ...]:
    """The malformed lines of a list file (line 0: about the whole file)."""
    try:
        found = [item for item in iter_list(path, root=root) if isinstance(item, ListProblem)]
    except FileNotFoundError:
        return ((0, 0, f"suppression list {path} not found"),)
    except (confined.RefusedFileError, ValueError) as err:
        return ((0, 0, str(err)),)
    except OSError as err:
        return ((0, 0, f"cannot read suppression list {path}: {err.strerror or err}"),)
    kept = [(problem.line, problem.column, problem.message) for problem in found[:_MAX_PROBLEMS]]
    if len(found) > _MAX_PROBLEMS:
        more, last = len(found) - _MAX_PROBLEMS, found[_MAX_PROBLEMS - 1].line
        kept.append((0, 0, f"{more} more malformed lines after line {last}"))
    return tuple(kept)


def _cached_problems(
    path: Path, root: Path, cache: LoadCache | None
) -> tuple[tuple[int, int, str], ...]:
    if cache is None:
        return _problems(path, root)
    try:  # checked every time: a symlink may now lead elsewhere with the same stamp
        stat = confined.confine(path, root, what="suppression list").stat()
    except (OSError, ValueError):
        return _problems(path, root)
    return cache.list_problems(
        path, (stat.st_mtime_ns, stat.st_size), lambda: _problems(path, root)
    )


@dataclass(frozen=True)
class ListFiles:
    """Each account's list files: the config file naming them, and the names as given."""

    origins: Mapping[str, Path]
    names: Mapping[str, tuple[str, ...]]

    def paths(self, account: str) -> tuple[Path, ...]:
        """An account's list files, relative to the config file that names them."""
        return tuple(self.origins[account].parent / name for name in self.names[account])


def check_lists(
    config: Config, merge: Merge, root: Path, cache: LoadCache | None, issues: list[ConfigIssue]
) -> ListFiles:
    """Read every list file of ``config.suppress``, noting each malformed line in ``issues``.

    A problem with a whole file (missing, outside the tree, not UTF-8) is located at
    the field naming it; a malformed line at its line of the list file, with the path of
    that field.

    Returns:
        Where each account's lists are.
    """
    origins: dict[str, Path] = {}
    for account, files in config.suppress.items():
        source = merge.source_for(["suppress", account])
        origins[account] = source.path
        for index, name in enumerate(files):
            path = source.path.parent / name
            loc: list[str | int] = ["suppress", account, index]
            for line, column, message in _cached_problems(path, root, cache):
                if line == 0:
                    issues.append(source.issue(loc, message))
                else:
                    where = ".".join(str(step) for step in loc)
                    issues.append(ConfigIssue(str(path), line, column, where, message))
    return ListFiles(origins, dict(config.suppress))
