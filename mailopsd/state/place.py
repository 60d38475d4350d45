"""Where a state directory's ledger is: its own SQLite file, or the PostgreSQL one it names.

A state directory keeps its ledger in ``ledger.sqlite3`` unless its file ``ledger.url``
names a PostgreSQL database (``run --ledger postgresql://…`` writes it). Everything that
opens a state directory's ledger (the daemon, its HTTP side, ``status``, ``stats``,
``preview``) follows it, so each daemon of a cluster keeps its own state directory (its
state file, its send key) with the ledger they share.

The address never holds the password: it is read from the file the address names with
``passfile=`` (a ``LoadCredential=`` of the unit, ``%d/…``) or from ``~/.pgpass``, as
libpq reads them, so that no command line, log or file of the state directory holds it.
Or ``ledger.url`` holds the path of a ledger file (``run --ledger FILE``), which holds
the address and the password encrypted (see :mod:`.ledgerfile`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from psycopg.conninfo import make_conninfo

from mailopsd.atomicfile import write_atomically
from mailopsd.state import ledgerfile
from mailopsd.state.errors import StorageError, storage_error

__all__ = [
    "LEDGER_FILE",
    "LEDGER_POINTER",
    "LedgerAddressError",
    "check_address",
    "point",
    "pointed",
]

LEDGER_FILE = "ledger.sqlite3"
"""A state directory's own ledger (SQLite's file)."""
LEDGER_POINTER = "ledger.url"
_SCHEMES = ("postgresql", "postgres")


class LedgerAddressError(ValueError):
    """A ledger address that cannot be used (the message says why and what to give)."""


def check_address(address: str) -> str:
    """``address`` if it names a PostgreSQL ledger without its password.

    Raises:
        LedgerAddressError: It is not a ``postgresql://`` URL, or it holds a password.
    """
    try:
        parts = urlsplit(address)
        password = parts.password
        query = dict(parse_qsl(parts.query))
    except ValueError as err:
        raise LedgerAddressError(f"ledger address cannot be read: {err}") from err
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise LedgerAddressError(
            "a ledger address is postgresql://USER@HOST[:PORT]/DATABASE (or 'sqlite' for "
            "the state directory's own file)"
        )
    if password is not None or "password" in query:
        raise LedgerAddressError(
            "the ledger's address holds its password: leave it out, and give it in a "
            "password file (postgresql://USER@HOST/DATABASE?passfile=/path, a line "
            "HOST:PORT:DATABASE:USER:PASSWORD, mode 0600; under systemd, LoadCredential= "
            "and passfile=%d/NAME) or in ~/.pgpass"
        )
    return address


def _pointer(directory: Path) -> str | None:
    """What ``ledger.url`` holds (an address, or a ledger file's path), or None."""
    try:
        text = (directory / LEDGER_POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise storage_error(err, f"cannot read {directory / LEDGER_POINTER}: {err}") from err
    return text or None


def _is_file(pointer: str) -> bool:
    """Whether ``pointer`` is a ledger file's path (an address is a URL)."""
    return "://" not in pointer


def _from_file(path: Path) -> str:
    """The address a ledger file gives, with its password if it holds one."""
    address, password = ledgerfile.read(path)
    try:
        check_address(address)
    except LedgerAddressError as err:
        raise ledgerfile.LedgerFileError(f"ledger file {path}: {err}") from err
    return address if password is None else make_conninfo(address, password=password)


def pointed(directory: Path) -> str | None:
    """The PostgreSQL ledger the state directory names, ``None`` for its own file.

    The address comes with its password when a ledger file gives it: only ever to
    connect with (:func:`mailopsd.state.postgres.shown` says an address without it).

    Raises:
        StorageError: The pointer cannot be read, or the ledger file it names cannot
            be used (:class:`~mailopsd.state.ledgerfile.LedgerFileError`).
    """
    pointer = _pointer(directory)
    if pointer is not None and _is_file(pointer):
        return _from_file(Path(pointer))
    return pointer


def point(directory: Path, address: str | None) -> None:
    """Make the state directory's ledger the one at ``address`` (``None``: its own file).

    A state directory whose ledger is one of its own kind is never moved to the other:
    the two hold different histories, and the daemon would forget the one it has (a
    ledger file made now would have every lead new again).

    Args:
        directory: The state directory.
        address: A ``postgresql://`` address, or the path of a ledger file (see
            :mod:`.ledgerfile`), or None.

    Raises:
        LedgerAddressError: ``address`` cannot be used (see :func:`check_address`).
        StorageError: The directory keeps a ledger of the other kind, the ledger file
            cannot be used, or the pointer cannot be written.
    """
    pointer = directory / LEDGER_POINTER
    current = _pointer(directory)  # a path or an address: never a password
    if address is None:
        if current is not None:
            raise StorageError(
                f"state directory {directory} keeps its ledger in PostgreSQL ({current}): "
                f"a {LEDGER_FILE} made now would hold none of its history (every lead "
                "new again); give the daemon a new state directory for a ledger of its own"
            )
        return
    if _is_file(address):
        address = str(Path(address).resolve())
        _from_file(Path(address))  # it can be used now, or it is said now
    else:
        check_address(address)
    if current is None and (directory / LEDGER_FILE).exists():
        raise StorageError(
            f"state directory {directory} keeps its own ledger (ledger.sqlite3): a "
            "PostgreSQL ledger holds another history; give the daemon a new state "
            "directory, or move ledger.sqlite3 away first"
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(pointer, address + "\n", mode=0o600)
    except OSError as err:
        raise storage_error(err, f"cannot write {pointer}: {err.strerror or err}") from err
