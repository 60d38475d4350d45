"""Importing a campaign's leads file: staged and compared in SQLite, then applied.

A leads file may hold a million rows, so it never sits in memory: its rows go to
temporary tables (on disk, outside the ledger file), SQL compares them with the
campaign's leads, and a plan holds only the counts (see :class:`Staged`). Applying it
writes only the difference; the rows skipped, and why, are kept for ``status``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, overload

from mailopsd.config.leads import LeadLine, LeadRow, repeat_problem
from mailopsd.config.zones import zone_of_row
from mailopsd.errors import StateError
from mailopsd.reconcile import LeadsDiff
from mailopsd.state.db import Database, Repository
from mailopsd.state.engine import ENGINE_ERRORS, SQLITE
from mailopsd.state.errors import storage_error
from mailopsd.state.schema import ZONES_SCHEMA, schema_version, stamp

__all__ = ["LeadImports", "LeadsStage", "Staged"]


@dataclass(frozen=True)
class LeadsStage:
    """A leads file staged in the ledger's temporary tables, compared with its campaign.

    The counts are those of the comparison; the rows stay in SQLite (see
    :meth:`LeadImports.stage`) until imported, staged again or the connection closes.
    """

    campaign_id: str
    number: int
    added: int
    updated: int
    removed: int
    problems: int

    def table(self, part: str) -> str:
        """The name of one of the temporary tables the stages share, rows by stage number.

        Shared, not one set of tables per stage: SQLite reads its whole schema again
        after each change of it, so a thousand campaigns staged at a first start made
        and dropped 4,000 tables in quadratic time (more than a second, measured).
        """
        return f"temp.leads_stage_{part}"


_T = TypeVar("_T")


class Staged(Sequence[_T]):
    """A sequence a plan holds without keeping it: counted when staged, read when iterated.

    Iterating runs a query on the ledger's stage, so a plan of a million added leads
    costs no memory until (and unless) someone walks through them.
    """

    def __init__(self, stage: LeadsStage, count: int, read: Callable[[], Iterator[_T]]) -> None:
        self.stage = stage
        self._count = count
        self._read = read

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[_T]:
        return self._read()

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | Sequence[_T]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError(index)
        return next(itertools.islice(iter(self), position, None))

    def __repr__(self) -> str:
        return f"<{self._count} staged as stage {self.stage.number}>"


class LeadImports(Repository):
    """Leads files staged, compared and applied; the rows their last import skipped."""

    _STAGE_BATCH = 2_000

    def __init__(self, database: Database) -> None:
        """No stage yet."""
        super().__init__(database)
        self._stages: dict[str, LeadsStage] = {}
        self._staged = 0

    def stage(
        self,
        campaign_id: str,
        lines: Iterable[LeadLine],
        *,
        name: str,
        zone_column: str | None = None,
    ) -> LeadsStage:
        """Stage a leads file read row by row, and compare it with the campaign's leads.

        The rows go to temporary tables (on disk, outside the ledger file: nothing is
        kept in memory); the first row of each address is kept and the others become
        problems, then SQL compares the kept rows with the campaign's active leads.
        Works on a read-only ledger too. A campaign staged again drops its earlier stage.

        Args:
            campaign_id: The campaign whose leads file it is.
            lines: The file's rows, in order (see ``iter_leads``).
            name: How problems name the file.
            zone_column: The column of each lead's time zone (``send_window.timezone``):
                each row's zone is resolved here and kept with the lead (``None``, or a
                value that is no zone: the campaign's). A lead whose zone changes is
                updated.

        Returns:
            The stage, with how many rows it adds, changes and removes, and its problems.

        Raises:
            StorageError: The ledger refused the stage.
            OSError: ``lines`` could not be read (as ``lines`` raised it).
        """
        self.drop(campaign_id)
        self._staged += 1
        stage = LeadsStage(campaign_id, self._staged, 0, 0, 0, 0)
        self._stages[campaign_id] = stage
        try:
            with self._database.temporary_work():
                counts = self._fill_stage(stage, lines, name, zone_column)
        except ENGINE_ERRORS as err:
            self._stages.pop(campaign_id, None)
            raise storage_error(err) from err
        except BaseException:
            self._stages.pop(campaign_id, None)
            raise
        stage = LeadsStage(campaign_id, stage.number, *counts)
        self._stages[campaign_id] = stage
        return stage

    def _fill_stage(
        self, stage: LeadsStage, lines: Iterable[LeadLine], name: str, zone_column: str | None
    ) -> tuple[int, int, int, int]:
        """Create a stage's tables, fill and compare them; return its four counts."""
        lines_table, problems, kept, removed = (
            stage.table(part) for part in ("lines", "problems", "kept", "removed")
        )
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {lines_table} (stage INTEGER NOT NULL, "
            "line INTEGER NOT NULL, email TEXT NOT NULL, given TEXT, fields TEXT NOT NULL, "
            "row_hash TEXT NOT NULL, zone TEXT, PRIMARY KEY (stage, line))"
        )
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {problems} (stage INTEGER NOT NULL, "
            "line INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (stage, line))"
        )
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {kept} (stage INTEGER NOT NULL, email TEXT NOT NULL, "
            "line INTEGER NOT NULL, change TEXT, PRIMARY KEY (stage, email)) WITHOUT ROWID"
        )
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {removed} (stage INTEGER NOT NULL, "
            "email TEXT NOT NULL, PRIMARY KEY (stage, email)) WITHOUT ROWID"
        )
        count = self._load_stage(stage, lines, zone_column)
        self._compare_stage(stage, count, name)
        number = (stage.number,)
        added, updated = self._db.execute(
            "SELECT coalesce(sum(CASE WHEN change = 'added' THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN change = 'updated' THEN 1 ELSE 0 END), 0) "
            f"FROM {kept} WHERE stage = ?",
            number,
        ).fetchone()
        (gone,) = self._db.execute(
            f"SELECT count(*) FROM {removed} WHERE stage = ?", number
        ).fetchone()
        (skipped,) = self._db.execute(
            f"SELECT count(*) FROM {problems} WHERE stage = ?", number
        ).fetchone()
        return int(added), int(updated), int(gone), int(skipped)

    def _load_stage(
        self, stage: LeadsStage, lines: Iterable[LeadLine], zone_column: str | None
    ) -> int:
        """Write the rows and the skipped rows; return how many usable rows there were."""
        insert_line = (
            f"INSERT INTO {stage.table('lines')} "
            "(stage, line, email, given, fields, row_hash, zone) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        insert_problem = (
            f"INSERT INTO {stage.table('problems')} (stage, line, message) VALUES (?, ?, ?)"
        )
        number = stage.number
        rows: list[tuple[int, int, str, str | None, str, str, str | None]] = []
        problems: list[tuple[int, int, str]] = []
        count = 0
        for lead in lines:
            if lead.problem is not None:
                problems.append((number, lead.line, lead.problem))
                continue
            given = None if lead.given == lead.email else lead.given
            zone = zone_of_row(lead.fields, zone_column)
            rows.append((number, lead.line, lead.email, given, lead.text, lead.row_hash, zone))
            if len(rows) >= self._STAGE_BATCH:
                count += len(rows)
                self._db.executemany(insert_line, rows)
                rows.clear()
                self._db.executemany(insert_problem, problems)
                problems.clear()
        self._db.executemany(insert_line, rows)
        self._db.executemany(insert_problem, problems)
        return count + len(rows)

    def _zone_changed(self) -> str:
        """What else makes a kept row changed: its zone, if the ledger keeps zones yet.

        ``plan`` reads a ledger without migrating it: one of schema 9 has no zones (and
        then no campaign of it has per-lead zones).
        """
        if self._database.dialect is SQLITE and schema_version(self._db) < ZONES_SCHEMA:
            return ""
        return " OR lead.zone IS DISTINCT FROM staged.zone"

    def _compare_stage(self, stage: LeadsStage, count: int, name: str) -> None:
        """Keep each address's first row, note the repeats, and compare with the leads."""
        lines, problems, kept, removed = (
            stage.table(part) for part in ("lines", "problems", "kept", "removed")
        )
        number = stage.number
        self._db.execute(
            f"INSERT INTO {kept} (stage, email, line, change) "
            "SELECT ?, first.email, first.line, CASE WHEN lead.row_hash IS NULL THEN 'added' "
            f"WHEN lead.row_hash <> staged.row_hash{self._zone_changed()} THEN 'updated' END "
            f"FROM (SELECT email, min(line) AS line FROM {lines} WHERE stage = ? "
            "GROUP BY email) AS first "
            f"JOIN {lines} AS staged ON staged.stage = ? AND staged.line = first.line "
            "LEFT JOIN main.leads AS lead ON lead.campaign_id = ? AND lead.email = first.email "
            "AND lead.removed_at IS NULL ORDER BY first.email",
            (number, number, number, stage.campaign_id),
        )
        (distinct,) = self._db.execute(
            f"SELECT count(*) FROM {kept} WHERE stage = ?", (number,)
        ).fetchone()
        if distinct < count:
            repeats = self._db.execute(
                f"SELECT staged.line, coalesce(staged.given, staged.email), first.line "
                f"FROM {lines} AS staged JOIN {kept} AS first ON first.stage = staged.stage "
                "AND first.email = staged.email "
                "WHERE staged.stage = ? AND staged.line <> first.line",
                (number,),
            )
            while batch := repeats.fetchmany(self._STAGE_BATCH):
                self._db.executemany(
                    f"INSERT INTO {problems} (stage, line, message) VALUES (?, ?, ?)",
                    [
                        (number, line, repeat_problem(name, line, given, first))
                        for line, given, first in batch
                    ],
                )
        self._db.execute(
            f"INSERT INTO {removed} (stage, email) SELECT ?, lead.email FROM main.leads AS lead "
            "WHERE lead.campaign_id = ? AND lead.removed_at IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {kept} AS k WHERE k.stage = ? "
            "AND k.email = lead.email) ORDER BY lead.email",
            (number, stage.campaign_id, number),
        )

    def _current(self, stage: LeadsStage) -> None:
        if self._stages.get(stage.campaign_id) is not stage:
            raise StateError(
                f"the staged leads of {stage.campaign_id} are gone (imported, or staged again "
                "since); plan again"
            )

    def _staged_rows(self, stage: LeadsStage, change: str) -> Iterator[LeadRow]:
        self._current(stage)
        try:
            rows = self._db.execute(
                f"SELECT k.email, l.fields, l.row_hash, k.line FROM {stage.table('kept')} AS k "
                f"JOIN {stage.table('lines')} AS l ON l.stage = k.stage AND l.line = k.line "
                "WHERE k.stage = ? AND k.change = ? ORDER BY k.line",
                (stage.number, change),
            )
            for email, fields, row_hash, line in rows:
                yield LeadRow(email, json.loads(fields), row_hash, line)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def _staged_column(self, stage: LeadsStage, query: str) -> Iterator[str]:
        self._current(stage)
        try:
            for (value,) in self._db.execute(query, (stage.number,)):
                yield str(value)
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def changes(self, stage: LeadsStage) -> LeadsDiff:
        """What a stage changes, each part read from the stage when iterated.

        Returns:
            The rows added and the rows changed (in file order), the addresses removed
            (sorted) and the problems (by line).
        """
        removed = f"SELECT email FROM {stage.table('removed')} WHERE stage = ? ORDER BY email"
        problems = f"SELECT message FROM {stage.table('problems')} WHERE stage = ? ORDER BY line"
        return LeadsDiff(
            stage.number,
            Staged(stage, stage.added, lambda: self._staged_rows(stage, "added")),
            Staged(stage, stage.updated, lambda: self._staged_rows(stage, "updated")),
            Staged(stage, stage.removed, lambda: self._staged_column(stage, removed)),
            Staged(stage, stage.problems, lambda: self._staged_column(stage, problems)),
        )

    def drop(self, campaign_id: str) -> None:
        """Forget a campaign's staged leads file, if any."""
        stage = self._stages.pop(campaign_id, None)
        if stage is None:
            return
        try:
            with self._database.temporary_work():
                for part in ("lines", "problems", "kept", "removed"):
                    self._db.execute(
                        f"DELETE FROM {stage.table(part)} WHERE stage = ?", (stage.number,)
                    )
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err

    def apply_stage(
        self, campaign_id: str, number: int, *, account: str, digest: str, now: datetime
    ) -> None:
        """Apply a staged leads file (inside the caller's transaction), then drop the stage.

        Only the difference is written: rows added or changed are upserted in address
        order, removed addresses marked removed; the file's digest and skipped rows are
        recorded.

        Args:
            campaign_id: The campaign whose leads file was staged.
            number: The stage, as its :class:`LeadsDiff` numbers it.
            account: The campaign's account.
            digest: The leads file's digest, recorded with the import.
            now: The time recorded.

        Raises:
            StateError: The stage is gone: imported already, or staged again since.
            StorageError: The ledger refused the writes.
        """
        stage = self._stages.get(campaign_id)
        if stage is None or stage.number != number:
            raise StateError(
                f"the staged leads of {campaign_id} are gone (imported, or staged again "
                "since); plan again"
            )
        try:
            self._apply_stage(stage, account=account, digest=digest, when=stamp(now))
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
        self.drop(campaign_id)

    def _apply_stage(self, stage: LeadsStage, *, account: str, digest: str, when: str) -> None:
        self._db.execute(
            "INSERT INTO leads (campaign_id, email, account, fields, row_hash, line, added_at, "
            f"zone) SELECT ?, k.email, ?, l.fields, l.row_hash, k.line, ?, l.zone "
            f"FROM {stage.table('kept')} AS k JOIN {stage.table('lines')} AS l "
            "ON l.stage = k.stage AND l.line = k.line "
            "WHERE k.stage = ? AND k.change IS NOT NULL ORDER BY k.email "
            "ON CONFLICT (campaign_id, email) DO UPDATE SET fields = excluded.fields, "
            "row_hash = excluded.row_hash, line = excluded.line, zone = excluded.zone, "
            "removed_at = NULL",
            (stage.campaign_id, account, when, stage.number),
        )
        self._db.execute(
            "UPDATE leads SET removed_at = ? WHERE campaign_id = ? "
            f"AND email IN (SELECT email FROM {stage.table('removed')} WHERE stage = ?)",
            (when, stage.campaign_id, stage.number),
        )
        self._db.execute(
            "UPDATE campaigns SET leads_digest = ? WHERE id = ?", (digest, stage.campaign_id)
        )
        self._db.execute("DELETE FROM lead_problems WHERE campaign_id = ?", (stage.campaign_id,))
        self._db.execute(
            "INSERT INTO lead_problems (campaign_id, position, message) "
            "SELECT ?, row_number() OVER (ORDER BY line) - 1, message "
            f"FROM {stage.table('problems')} WHERE stage = ? ORDER BY line",
            (stage.campaign_id, stage.number),
        )

    def problems(self, campaign_id: str) -> list[str]:
        """The rows the last import of a campaign's leads file skipped, and why."""
        try:
            rows = self._db.execute(
                "SELECT message FROM lead_problems WHERE campaign_id = ? ORDER BY position",
                (campaign_id,),
            )
            return [str(row[0]) for row in rows]
        except ENGINE_ERRORS as err:
            raise storage_error(err) from err
