"""A ledger in tests: on either engine, leads put in as the daemon puts them, read back.

Tests of the ledger's behaviour take :func:`ledgers`, which runs each of them twice: on
SQLite (a file in ``tmp_path``) and on PostgreSQL (a fresh database of the session's
server); ``ledgers.open()`` opens the one ledger of the test, again each time it is
called. Tests that run commands on a state directory ``tmp_path / "state"`` take
:func:`state_ledger` to run on both engines. Tests that need a lead in a ledger without a
whole config use :func:`import_leads`; it goes through the same staging and applying as
a reconcile, so a lead seeded here is a lead the daemon would have. Tests that look at
what a run recorded open the state directory's ledger with :func:`read_ledger`, and ask
its repositories, never the tables.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import pytest

from mailopsd.config.leads import iter_leads
from mailopsd.state import place, postgres
from mailopsd.state.ledger import Ledger

ENGINES = ("sqlite", "postgresql")


class Ledgers:
    """The ledger of one test, on one engine: opened as often as the test asks."""

    def __init__(self, engine: str, directory: Path, dsn: str | None) -> None:
        """Open ledgers in ``directory`` (SQLite) or at ``dsn`` (PostgreSQL)."""
        self.engine = engine
        self.directory = directory
        self.dsn = dsn
        self._opened: list[Ledger] = []

    def open(self) -> Ledger:
        """A new connection to the test's ledger (closed after the test if left open)."""
        ledger = Ledger.open(self.directory) if self.dsn is None else Ledger.connect(self.dsn)
        self._opened.append(ledger)
        return ledger

    def close(self) -> None:
        """Close every ledger opened, and the pools behind PostgreSQL's."""
        for ledger in self._opened:
            with suppress(Exception):  # closed already by the test
                ledger.close()
        if self.dsn is not None:
            postgres.close_pools()


@pytest.fixture(params=ENGINES)
def state_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The engine of the ledger of the test's state directory ``tmp_path / "state"``.

    Its own SQLite file, then (a second run) a fresh PostgreSQL database that the state
    directory names, as ``run --ledger`` makes it: every command on that state directory
    then uses that ledger.
    """
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None
    if dsn is not None:
        place.point(tmp_path / "state", dsn)
    try:
        yield request.param
    finally:
        if dsn is not None:
            postgres.close_pools()


@pytest.fixture(params=ENGINES)
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    """The test's ledger, on SQLite then on PostgreSQL (one run each)."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None
    opened = Ledgers(request.param, tmp_path, dsn)
    try:
        yield opened
    finally:
        opened.close()


def import_leads(
    ledger: Ledger,
    campaign_id: str,
    rows: Iterable[str | dict[str, str]],
    *,
    now: datetime,
    account: str = "default",
    digest: str = "d",
) -> None:
    """Import a leads file of these rows into the caller's open transaction.

    Args:
        ledger: The ledger, inside ``ledger.transaction()``.
        campaign_id: A campaign already in the ledger.
        rows: Each an address, or a row of columns with an ``email``.
        now: When the leads are recorded as added.
        account: The campaign's account.
        digest: The leads file's digest, as recorded.
    """
    columns = [{"email": row} if isinstance(row, str) else row for row in rows]
    names = sorted({name for row in columns for name in row}, key=lambda n: n != "email")
    with tempfile.TemporaryDirectory(prefix="leads-") as tmp:
        path = Path(tmp) / "leads.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=names or ["email"])
            writer.writeheader()
            writer.writerows(columns)
        stage = ledger.imports.stage(campaign_id, iter_leads(path, "leads.csv"), name="leads.csv")
    ledger.imports.apply_stage(campaign_id, stage.number, account=account, digest=digest, now=now)


@contextmanager
def read_ledger(state: Path) -> Iterator[Ledger]:
    """The ledger of a state directory, opened read-only for the block."""
    ledger = Ledger.open_readonly(state)
    assert ledger is not None, f"no ledger in {state}"
    try:
        yield ledger
    finally:
        ledger.close()
