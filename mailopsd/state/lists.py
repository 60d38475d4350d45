"""Suppression lists from the config: each account's listed addresses and domains.

A list is applied like a leads file: its entries are staged in a temporary table,
compared in SQL with what the ledger holds for the account, and only the difference is
written, with the lists' digest (unchanged lists are not read again). The entries live
apart from the suppressions the daemon records itself (bounces, unsubscribes,
complaints: :mod:`mailopsd.state.suppression`), so a list edited in git never removes
one of those. The leads queries hold back a lead while its address or its domain is
listed for its campaign's account (:mod:`mailopsd.state.leads`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mailopsd.config.suppression import ListEntry
from mailopsd.errors import StateError
from mailopsd.reconcile import ListsDiff
from mailopsd.state.db import Database, Repository
from mailopsd.state.engine import ENGINE_ERRORS
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import stamp

__all__ = ["ListedCounts", "SuppressionLists"]

_BATCH = 2_000
_EXAMPLES = 3
# Each kind of entry: its listed table and column, and how an example shows it.
_KINDS = {"address": ("listed_addresses", "email", ""), "domain": ("listed_domains", "domain", "@")}


@dataclass(frozen=True)
class ListedCounts:
    """What an account's suppression lists hold, as last applied."""

    account: str
    files: tuple[str, ...]
    addresses: int
    domains: int
    applied_at: str


class SuppressionLists(Repository):
    """Each account's listed addresses and domains, and the digest of its lists."""

    def __init__(self, database: Database) -> None:
        """No stage yet."""
        super().__init__(database)
        self._stages: dict[str, int] = {}
        self._staged = 0

    def digests(self) -> dict[str, str]:
        """The digest of each account's lists, as last applied."""
        try:
            rows = self._db.execute("SELECT account, digest FROM suppression_lists")
            return {str(account): str(digest) for account, digest in rows}
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def _table(self, number: int) -> str:
        return f"temp.list_stage_{number}"

    def stage(self, account: str, entries: Iterable[ListEntry]) -> ListsDiff:
        """Stage an account's list entries and compare them with what the ledger lists.

        Works on a read-only ledger too. An account staged again drops its earlier stage.

        Args:
            account: The account.
            entries: Every entry of its lists (none: the account has no lists now).

        Returns:
            What applying the stage adds and removes.

        Raises:
            StorageError: The ledger refused the stage.
            OSError: ``entries`` could not be read (as it raised it).
        """
        self.drop(account)
        self._staged += 1
        number = self._stages[account] = self._staged
        table = self._table(number)
        try:
            with self._database.temporary_work():
                self._db.execute(
                    f"CREATE TABLE {table} (kind TEXT NOT NULL, value TEXT NOT NULL, "
                    "PRIMARY KEY (kind, value)) WITHOUT ROWID"
                )
                batch: list[tuple[str, str]] = []
                for entry in entries:
                    batch.append((entry.kind, entry.value))
                    if len(batch) >= _BATCH:
                        self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", batch)
                        batch.clear()
                self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", batch)
                return self._compare(account, number)
        except ENGINE_ERRORS as err:
            self._stages.pop(account, None)
            raise storage_error(err) from err
        except BaseException:
            self._stages.pop(account, None)
            raise

    def _difference(self, account: str, table: str, kind: str, *, added: bool) -> str:
        """The query of one kind's entries added (staged, not listed) or removed."""
        listed, column, _ = _KINDS[kind]
        if added:
            return (
                f"SELECT s.value FROM {table} AS s WHERE s.kind = '{kind}' AND NOT EXISTS "
                f"(SELECT 1 FROM {listed} AS l WHERE l.account = :account "
                f"AND l.{column} = s.value)"
            )
        return (
            f"SELECT l.{column} FROM {listed} AS l WHERE l.account = :account AND NOT EXISTS "
            f"(SELECT 1 FROM {table} AS s WHERE s.kind = '{kind}' AND s.value = l.{column})"
        )

    def _compare(self, account: str, number: int) -> ListsDiff:
        table = self._table(number)
        counts: list[int] = []
        examples: list[str] = []
        for added in (True, False):
            for kind in ("address", "domain"):
                query = self._difference(account, table, kind, added=added)
                params = {"account": account}
                (count,) = self._db.execute(
                    f"SELECT count(*) FROM ({query}) AS q", params
                ).fetchone()
                counts.append(int(count))
                first = self._db.execute(f"{query} ORDER BY 1 LIMIT {_EXAMPLES}", params)
                mark = ("+" if added else "-") + _KINDS[kind][2]
                examples += [f"{mark}{value}" for (value,) in first]
        added_addresses, added_domains, removed_addresses, removed_domains = counts
        return ListsDiff(
            number,
            added_addresses,
            removed_addresses,
            added_domains,
            removed_domains,
            tuple(examples[: _EXAMPLES * 2]),
        )

    def drop(self, account: str) -> None:
        """Forget an account's staged entries, if any."""
        number = self._stages.pop(account, None)
        if number is None:
            return
        try:
            self._db.execute(f"DROP TABLE IF EXISTS {self._table(number)}")
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def apply_stage(
        self,
        account: str,
        number: int,
        *,
        digest: str | None,
        files: tuple[str, ...],
        now: datetime,
    ) -> None:
        """Apply a stage (inside the caller's transaction), then drop it.

        Args:
            account: The account whose lists were staged.
            number: The stage, as its :class:`ListsDiff` numbers it.
            digest: The lists' digest (``None``: the account has no lists now).
            files: The list files, as configured.
            now: The time recorded.

        Raises:
            StateError: The stage is gone: applied already, or staged again since.
            StorageError: The ledger refused the writes.
        """
        if self._stages.get(account) != number:
            raise StateError(
                f"the staged suppression lists of account {account} are gone (applied, or "
                "staged again since); plan again"
            )
        table = self._table(number)
        try:
            for kind, (listed, column, _) in _KINDS.items():
                params = {"account": account}
                self._db.execute(
                    f"DELETE FROM {listed} WHERE account = :account AND {column} IN "
                    f"({self._difference(account, table, kind, added=False)})",
                    params,
                )
                self._db.execute(
                    f"INSERT INTO {listed} (account, {column}) SELECT :account, value FROM "
                    f"({self._difference(account, table, kind, added=True)}) AS d",
                    params,
                )
            if digest is None:
                self._db.execute("DELETE FROM suppression_lists WHERE account = ?", (account,))
            else:
                self._db.execute(
                    "INSERT INTO suppression_lists (account, digest, files, applied_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET "
                    "digest = excluded.digest, files = excluded.files, "
                    "applied_at = excluded.applied_at",
                    (account, digest, json.dumps(list(files)), stamp(now)),
                )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        self.drop(account)

    def counts(self) -> list[ListedCounts]:
        """What each account's lists hold, by account."""
        try:
            rows = self._db.execute(
                "SELECT account, files, applied_at, "
                "(SELECT count(*) FROM listed_addresses AS a WHERE a.account = l.account), "
                "(SELECT count(*) FROM listed_domains AS d WHERE d.account = l.account) "
                "FROM suppression_lists AS l ORDER BY account"
            ).fetchall()
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        return [
            ListedCounts(str(account), tuple(json.loads(files)), int(a), int(d), str(at))
            for account, files, at, a, d in rows
        ]
