"""The triggers that keep the per-credential counters, as each migration wrote them.

A tick asks for every credential of a campaign: its step-1 sends today, its last send
(and, from migration 7, the gap drawn after it and its first send). Triggers on ``sends``
keep the answers in ``credential_days`` (counted sends per UTC day) and
``credential_last_send`` (one row per credential), so a tick reads one row per
credential whatever the history holds. Counted outcomes are spelled out with OR, and no
index is partial on them: an IN list there builds a temporary table on every UPDATE of
sends, several times the update's cost. Migrations are kept as first written: migration
7 replaces migration 4's triggers by dropping them and creating new ones.
"""

from __future__ import annotations

__all__ = ["MIGRATION_7", "TRIGGERS_4"]


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
