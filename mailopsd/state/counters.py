"""The triggers that keep the counters of sends, as each migration wrote them.

A tick asks for every credential of a campaign: its step-1 sends today, its last send
(and, from migration 7, the gap drawn after it and its first send). Triggers on ``sends``
keep the answers in ``credential_days`` (counted sends per UTC day) and
``credential_last_send`` (one row per credential), so a tick reads one row per
credential whatever the history holds; from migration 9, ``domain_days`` too (counted
sends per UTC day and recipient domain). Counted outcomes are spelled out with OR, and no
index is partial on them: an IN list there builds a temporary table on every UPDATE of
sends, several times the update's cost. Migrations are kept as first written: migration
7 replaces migration 4's triggers by dropping them and creating new ones, migration 11
replaces migration 7's and 9's by one trigger per kind of statement (the comment
before :data:`MIGRATION_11` says why they are written as they are).
"""

from __future__ import annotations

__all__ = ["MIGRATION_7", "MIGRATION_11", "MIGRATION_12", "TRIGGERS_4"]


def _counted(row: str) -> str:
    return (
        f"({row}.outcome = 'pending' OR {row}.outcome = 'sent' OR {row}.outcome = 'unknown'\n"
        f"        OR {row}.outcome = 'bounced')"
    )


_MOVED = (
    "OR new.campaign_id IS NOT old.campaign_id OR new.credential_id IS NOT old.credential_id\n"
    "        OR new.intent_at IS NOT old.intent_at OR new.step IS NOT old.step)"
)


def _triggers(count: str, uncount: str) -> str:
    """The four triggers: a send that starts to count, and one that stops (or goes)."""
    return (
        f"    CREATE TRIGGER sends_count AFTER INSERT ON sends\n"
        f"    WHEN {_counted('new')}\n"
        f"{count}    CREATE TRIGGER sends_recount AFTER UPDATE ON sends\n"
        f"    WHEN {_counted('new')}\n"
        f"        AND (NOT {_counted('old')}\n"
        f"        {_MOVED}\n"
        f"{count}    CREATE TRIGGER sends_uncount AFTER UPDATE ON sends\n"
        f"    WHEN {_counted('old')}\n"
        f"        AND (NOT {_counted('new')}\n"
        f"        {_MOVED}\n"
        f"{uncount}    CREATE TRIGGER sends_uncount_deleted AFTER DELETE ON sends\n"
        f"    WHEN {_counted('old')}\n"
        f"{uncount}"
    )


_COUNT_DAY = """\
        INSERT INTO credential_days (campaign_id, day, credential_id, step1, followups)
            VALUES (new.campaign_id, substr(new.intent_at, 1, 10), new.credential_id,
                new.step = 1, new.step > 1)
            ON CONFLICT (campaign_id, day, credential_id) DO UPDATE
            SET step1 = step1 + excluded.step1, followups = followups + excluded.followups;
"""
_UNCOUNT_DAY = """\
        UPDATE credential_days
            SET step1 = step1 - (old.step = 1), followups = followups - (old.step > 1)
            WHERE campaign_id = old.campaign_id AND day = substr(old.intent_at, 1, 10)
            AND credential_id = old.credential_id;
"""


def _day_step1(row: str) -> str:
    """Set the step-1 count of the last send's day (after ``at`` moved)."""
    return f"""\
        UPDATE credential_last_send SET day_step1 = coalesce((
            SELECT step1 FROM credential_days WHERE campaign_id = {row}.campaign_id
            AND day = substr(credential_last_send.at, 1, 10)
            AND credential_id = {row}.credential_id), 0)
            WHERE campaign_id = {row}.campaign_id AND credential_id = {row}.credential_id;
"""


# Migration 4: each credential's last counted send, and the step-1 sends of its day.
_COUNT_4 = f"""\
    BEGIN
{_COUNT_DAY}        INSERT INTO credential_last_send (campaign_id, credential_id, at, day_step1)
            VALUES (new.campaign_id, new.credential_id, new.intent_at, 0)
            ON CONFLICT (campaign_id, credential_id) DO UPDATE
            SET at = max(coalesce(at, ''), excluded.at);
{_day_step1("new")}    END;
"""
_UNCOUNT_4 = f"""\
    BEGIN
{_UNCOUNT_DAY}        UPDATE credential_last_send SET at = (
            SELECT intent_at FROM sends INDEXED BY sends_by_credential
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id
            AND (outcome = 'pending' OR outcome = 'sent' OR outcome = 'unknown'
                OR outcome = 'bounced')
            ORDER BY intent_at DESC LIMIT 1)
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id;
{_day_step1("old")}    END;
"""
TRIGGERS_4 = _triggers(_COUNT_4, _UNCOUNT_4)
"""Migration 4's triggers."""

# Migration 7: also the gap drawn after the last send (min_interval, recorded with the
# send), and the first counted send (where a ramp counts from).
_COUNT_7 = f"""\
    BEGIN
{_COUNT_DAY}        INSERT INTO credential_last_send
            (campaign_id, credential_id, at, day_step1, gap_s, first_at)
            VALUES (new.campaign_id, new.credential_id, new.intent_at, 0, new.gap_s,
                new.intent_at)
            ON CONFLICT (campaign_id, credential_id) DO UPDATE
            SET at = max(coalesce(at, ''), excluded.at),
                gap_s = CASE WHEN excluded.at >= coalesce(at, '') THEN excluded.gap_s
                    ELSE gap_s END,
                first_at = min(coalesce(first_at, excluded.at), excluded.at);
{_day_step1("new")}    END;
"""
_UNCOUNT_7 = f"""\
    BEGIN
{_UNCOUNT_DAY}        UPDATE credential_last_send SET (at, gap_s) = (
            SELECT s.intent_at, s.gap_s FROM sends AS s INDEXED BY sends_by_credential
            WHERE s.campaign_id = old.campaign_id AND s.credential_id = old.credential_id
            AND (s.outcome = 'pending' OR s.outcome = 'sent' OR s.outcome = 'unknown'
                OR s.outcome = 'bounced')
            ORDER BY s.intent_at DESC LIMIT 1),
            first_at = CASE WHEN first_at < old.intent_at THEN first_at ELSE (
                SELECT s.intent_at FROM sends AS s INDEXED BY sends_by_credential
                WHERE s.campaign_id = old.campaign_id AND s.credential_id = old.credential_id
                AND (s.outcome = 'pending' OR s.outcome = 'sent' OR s.outcome = 'unknown'
                    OR s.outcome = 'bounced')
                ORDER BY s.intent_at LIMIT 1) END
            WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id;
{_day_step1("old")}    END;
"""

MIGRATION_7 = f"""
    ALTER TABLE sends ADD COLUMN gap_s INTEGER;
    ALTER TABLE credential_last_send ADD COLUMN gap_s INTEGER;
    ALTER TABLE credential_last_send ADD COLUMN first_at TEXT;
    UPDATE credential_last_send SET first_at = (
        SELECT s.intent_at FROM sends AS s INDEXED BY sends_by_credential
        WHERE s.campaign_id = credential_last_send.campaign_id
        AND s.credential_id = credential_last_send.credential_id
        AND (s.outcome = 'pending' OR s.outcome = 'sent' OR s.outcome = 'unknown'
            OR s.outcome = 'bounced')
        ORDER BY s.intent_at LIMIT 1);
    DROP TRIGGER sends_count;
    DROP TRIGGER sends_recount;
    DROP TRIGGER sends_uncount;
    DROP TRIGGER sends_uncount_deleted;
{_triggers(_COUNT_7, _UNCOUNT_7)}"""
"""Migration 7: the gap drawn after each send, each credential's first send."""

# Migration 11: the same counts, at a fraction of the cost per send. A statement on a
# table with triggers that may stop halfway (a constraint that aborts the statement, or
# any SQL function, which may raise an error) makes SQLite copy every page the statement
# writes into a statement journal first, so as to undo the statement alone: with the
# seven indexes of sends, most of what an intent costs. Every write of the ledger runs in
# a transaction that is rolled back whole on any error (state/db.py), so sends.py writes
# sends with OR ROLLBACK (no statement to undo alone) and these triggers call no function
# and use no upsert (whose update aborts): the UTC day and the recipient domain of each
# send are columns, written with it (sends.py), and each counter row is updated, then
# inserted if it is not there yet. One trigger per kind of statement, whatever it counts;
# the one on UPDATE runs only for the columns the counts depend on and does nothing for
# an outcome that counts as the one before did (pending, then sent).


# What the counts of a send depend on: an UPDATE that changes one of these moves the send
# from its counters to others (never done, but counted exactly if it is).
_KEY_11 = ("campaign_id", "credential_id", "email", "intent_at", "step", "day", "domain")
_MOVED_11 = " OR ".join(f"new.{column} IS NOT old.{column}" for column in _KEY_11)
_STARTS = f"{_counted('new')} AND (NOT {_counted('old')} OR {_MOVED_11})"
"""An UPDATE makes the send count (where it now is)."""
_STOPS = f"{_counted('old')} AND (NOT {_counted('new')} OR {_MOVED_11})"
"""An UPDATE makes the send stop counting (where it was)."""

_DAY_KEY = "campaign_id = new.campaign_id AND day = new.day AND credential_id = new.credential_id"
_LAST_KEY = "campaign_id = {0}.campaign_id AND credential_id = {0}.credential_id"
_DOMAIN_KEY = "campaign_id = new.campaign_id AND day = new.day AND domain = new.domain"
_STEP1 = f"(SELECT step1 FROM credential_days WHERE {_DAY_KEY})"
# The last counted send of the old row's credential (one of them, if several share a time).
_LAST_SEND = """FROM sends AS s INDEXED BY sends_by_credential
            WHERE s.campaign_id = old.campaign_id AND s.credential_id = old.credential_id
            AND (s.outcome = 'pending' OR s.outcome = 'sent' OR s.outcome = 'unknown'
                OR s.outcome = 'bounced')"""


def _count_11(when: str) -> str:
    """Count ``new`` (if ``when``, SQL): its day, its credential's last send, its domain.

    ``day_step1`` is the step-1 count of the day of ``at``: read again when ``at`` is on
    this send's day afterwards; an ``at`` on a later day keeps its count, which this send
    does not change.
    """
    only = f" AND {when}" if when else ""
    where = f"WHERE {when} AND" if when else "WHERE"
    return f"""\
        UPDATE credential_days
            SET step1 = step1 + (new.step = 1), followups = followups + (new.step > 1)
            WHERE {_DAY_KEY}{only};
        INSERT INTO credential_days (campaign_id, day, credential_id, step1, followups)
            SELECT new.campaign_id, new.day, new.credential_id, new.step = 1, new.step > 1
            {where} NOT EXISTS (SELECT 1 FROM credential_days WHERE {_DAY_KEY});
        UPDATE credential_last_send SET
            at = CASE WHEN at IS NULL OR new.intent_at > at THEN new.intent_at ELSE at END,
            gap_s = CASE WHEN at IS NULL OR new.intent_at >= at THEN new.gap_s ELSE gap_s END,
            first_at = CASE WHEN first_at IS NULL OR new.intent_at < first_at
                THEN new.intent_at ELSE first_at END,
            day_step1 = CASE WHEN at IS NULL OR new.intent_at > at OR at < new.day || 'U'
                THEN {_STEP1} ELSE day_step1 END
            WHERE {_LAST_KEY.format("new")}{only};
        INSERT INTO credential_last_send
            (campaign_id, credential_id, at, day_step1, gap_s, first_at)
            SELECT new.campaign_id, new.credential_id, new.intent_at, {_STEP1}, new.gap_s,
                new.intent_at
            {where} NOT EXISTS (SELECT 1 FROM credential_last_send
                WHERE {_LAST_KEY.format("new")});
        UPDATE domain_days SET sends = sends + 1 WHERE {_DOMAIN_KEY}{only};
        INSERT INTO domain_days (campaign_id, day, domain, sends)
            SELECT new.campaign_id, new.day, new.domain, 1
            {where} NOT EXISTS (SELECT 1 FROM domain_days WHERE {_DOMAIN_KEY});
"""


def _uncount_11(when: str) -> str:
    """Take ``old`` back (if ``when``, SQL); its credential's last send is found again."""
    only = f" AND {when}" if when else ""
    return f"""\
        UPDATE credential_days
            SET step1 = step1 - (old.step = 1), followups = followups - (old.step > 1)
            WHERE campaign_id = old.campaign_id AND day = old.day
            AND credential_id = old.credential_id{only};
        UPDATE credential_last_send SET
            (at, gap_s) = (SELECT s.intent_at, s.gap_s {_LAST_SEND}
                ORDER BY s.intent_at DESC LIMIT 1),
            first_at = CASE WHEN first_at < old.intent_at THEN first_at ELSE (
                SELECT s.intent_at {_LAST_SEND}
                ORDER BY s.intent_at LIMIT 1) END,
            day_step1 = coalesce((SELECT step1 FROM credential_days
                WHERE campaign_id = old.campaign_id AND credential_id = old.credential_id
                AND day = (SELECT s.day {_LAST_SEND}
                    ORDER BY s.intent_at DESC LIMIT 1)), 0)
            WHERE {_LAST_KEY.format("old")}{only};
        UPDATE domain_days SET sends = sends - 1
            WHERE campaign_id = old.campaign_id AND day = old.day AND domain = old.domain{only};
"""


MIGRATION_11 = f"""
    ALTER TABLE sends ADD COLUMN day TEXT;
    ALTER TABLE sends ADD COLUMN domain TEXT;
    DROP TRIGGER sends_count;
    DROP TRIGGER sends_recount;
    DROP TRIGGER sends_uncount;
    DROP TRIGGER sends_uncount_deleted;
    DROP TRIGGER sends_domain_count;
    DROP TRIGGER sends_domain_recount;
    DROP TRIGGER sends_domain_uncount;
    DROP TRIGGER sends_domain_uncount_deleted;
    UPDATE sends SET day = substr(intent_at, 1, 10),
        domain = substr(email, instr(email, '@') + 1);
    CREATE TRIGGER sends_counters_insert AFTER INSERT ON sends
    WHEN {_counted("new")}
    BEGIN
{_count_11("")}    END;
    CREATE TRIGGER sends_counters_update
    AFTER UPDATE OF outcome, {", ".join(_KEY_11)} ON sends
    WHEN ({_counted("old")} OR {_counted("new")})
        AND ({_counted("old")} <> {_counted("new")} OR {_MOVED_11})
    BEGIN
{_uncount_11(f"({_STOPS})")}{_count_11(f"({_STARTS})")}    END;
    CREATE TRIGGER sends_counters_delete AFTER DELETE ON sends
    WHEN {_counted("old")}
    BEGIN
{_uncount_11("")}    END;
"""
"""Migration 11: each send's UTC day and recipient domain; one trigger per statement."""


# Migration 12: the counted sends of each step and version of a campaign, so that the
# steps table of ``status``, ``stats`` and the dashboard reads a few rows instead of
# counting the campaign's sends (0.1 s for 1,000,000 of them); and each bounce's step and
# version, written with it, so that its hard bounces by step need no join to its send. The
# same triggers as migration 11, with the step counter in them; a send whose version
# changes moves too (never done, but counted exactly if it is).
_KEY_12 = (*_KEY_11, "variant")
_MOVED_12 = " OR ".join(f"new.{column} IS NOT old.{column}" for column in _KEY_12)
_STARTS_12 = f"{_counted('new')} AND (NOT {_counted('old')} OR {_MOVED_12})"
_STOPS_12 = f"{_counted('old')} AND (NOT {_counted('new')} OR {_MOVED_12})"
_STEP_KEY = "campaign_id = {0}.campaign_id AND step = {0}.step AND variant IS {0}.variant"


def _count_steps(when: str) -> str:
    """Count ``new`` for its step and version (if ``when``, SQL)."""
    only = f" AND {when}" if when else ""
    where = f"WHERE {when} AND" if when else "WHERE"
    return f"""\
        UPDATE step_sends SET sends = sends + 1 WHERE {_STEP_KEY.format("new")}{only};
        INSERT INTO step_sends (campaign_id, step, variant, sends)
            SELECT new.campaign_id, new.step, new.variant, 1
            {where} NOT EXISTS (SELECT 1 FROM step_sends WHERE {_STEP_KEY.format("new")});
"""


def _uncount_steps(when: str) -> str:
    """Take ``old`` back from its step and version (if ``when``, SQL)."""
    only = f" AND {when}" if when else ""
    return f"""\
        UPDATE step_sends SET sends = sends - 1 WHERE {_STEP_KEY.format("old")}{only};
"""


_UPDATE_12 = (
    _uncount_11(f"({_STOPS_12})")
    + _uncount_steps(f"({_STOPS_12})")
    + _count_11(f"({_STARTS_12})")
    + _count_steps(f"({_STARTS_12})")
)

MIGRATION_12 = f"""
    CREATE TABLE step_sends (
        campaign_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        variant TEXT,
        sends INTEGER NOT NULL
    );
    CREATE INDEX step_sends_by_key ON step_sends (campaign_id, step, variant);
    INSERT INTO step_sends (campaign_id, step, variant, sends)
        SELECT campaign_id, step, variant, count(*) FROM sends
        WHERE {_counted("sends")} GROUP BY campaign_id, step, variant;
    ALTER TABLE bounces ADD COLUMN step INTEGER;
    ALTER TABLE bounces ADD COLUMN variant TEXT;
    UPDATE bounces SET (step, variant) = (
        SELECT s.step, s.variant FROM sends AS s WHERE s.id = bounces.send_id)
        WHERE send_id IS NOT NULL;
    CREATE INDEX bounces_by_step ON bounces (campaign_id, kind, step, variant, email);
    DROP TRIGGER sends_counters_insert;
    DROP TRIGGER sends_counters_update;
    DROP TRIGGER sends_counters_delete;
    CREATE TRIGGER sends_counters_insert AFTER INSERT ON sends
    WHEN {_counted("new")}
    BEGIN
{_count_11("")}{_count_steps("")}    END;
    CREATE TRIGGER sends_counters_update
    AFTER UPDATE OF outcome, {", ".join(_KEY_12)} ON sends
    WHEN ({_counted("old")} OR {_counted("new")})
        AND ({_counted("old")} <> {_counted("new")} OR {_MOVED_12})
    BEGIN
{_UPDATE_12}    END;
    CREATE TRIGGER sends_counters_delete AFTER DELETE ON sends
    WHEN {_counted("old")}
    BEGIN
{_uncount_11("")}{_uncount_steps("")}    END;
"""
"""Migration 12: counted sends by step and version; each bounce's step and version."""
