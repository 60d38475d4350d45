"""A ledger in tests: leads put in as the daemon puts them, and read through its repositories.

Tests that need a lead in a ledger without a whole config use :func:`import_leads`; it
goes through the same staging and applying as a reconcile, so a lead seeded here is a
lead the daemon would have. Tests that look at what a run recorded open the state
directory's ledger with :func:`read_ledger`, and ask its repositories, never the tables.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from mailopsd.config.leads import iter_leads
from mailopsd.state.ledger import Ledger


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
