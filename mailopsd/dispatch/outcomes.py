"""What a batch's outcomes do to its credentials: AUTH failures and server trouble.

A credential whose batch ended on an AUTH failure counts it (three in a row set its
``auth_failed_at``) and backs off; one whose server was unavailable, or lost the
connection during DATA, backs off too and says so in its state; one that sent clears
both. A shared mailbox backs off as one, whichever campaign's credential hit it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from mailopsd import backoff
from mailopsd.dispatch import report
from mailopsd.lifecycle import SendOutcome
from mailopsd.refs import CredentialRef, credential_key, sender_ref
from mailopsd.smtp.transport import Outcome
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["AUTH_FAILURES_BEFORE_CONDITION", "SERVER_TROUBLE", "credential_outcomes"]

# The dispatcher's lines, whichever of its modules writes them.
logger = logging.getLogger("mailopsd.dispatch.dispatcher")

AUTH_FAILURES_BEFORE_CONDITION = 3

# Outcomes that say the server (or the way to it) is in trouble, not the lead: the rest of
# the credential's batch waits and the credential backs off. A connection lost during
# DATA is one: the next message would most likely be lost the same way, as ``unknown``.
SERVER_TROUBLE = {
    SendOutcome.NOT_SENT: "smtp unavailable",
    SendOutcome.UNKNOWN: "smtp connection lost during data, outcome unknown (never sent again)",
}


def credential_outcomes(
    results: Iterable[tuple[CredentialRef, str | None, Outcome]],
    state: StateFile,
    now: datetime,
    backoffs: dict[CredentialRef, tuple[datetime, int]],
) -> StateFile:
    """``state`` with what each credential's batch ended on: AUTH failures, server trouble.

    Args:
        results: Each send's credential, the shared mailbox it names (if any), and its
            outcome, in the order they were made.
        state: The state before.
        now: When.
        backoffs: Each sender's backoff (until when, after how many failures), updated
            here: a shared mailbox backs off as one.
    """
    credentials = dict(state.credentials)
    last: dict[CredentialRef, Outcome] = {}  # how each credential's batch ended
    senders: dict[CredentialRef, CredentialRef] = {}  # a shared mailbox backs off as one
    for key, shared_as, outcome in results:
        if not outcome.detail.startswith(report.NOT_ATTEMPTED):
            last[key] = outcome
            senders[key] = sender_ref(key, shared_as)
    for key, outcome in last.items():
        name = credential_key(*key)
        sender = senders[key]
        entry = credentials.get(name, CredentialState())
        if outcome.kind == SendOutcome.AUTH_FAILED:
            failures = entry.auth_failures + 1
            backoffs[sender] = (
                now + timedelta(seconds=backoff.SMTP_AUTH.delay_s(failures)),
                failures,
            )
            logger.error(
                "smtp auth failed campaign=%s credential=%s failures=%d reply=%s %s",
                *key,
                failures,
                outcome.code,
                outcome.detail,
            )
            update: dict[str, object] = {"auth_failures": failures}
            if failures >= AUTH_FAILURES_BEFORE_CONDITION:
                update.update(
                    auth_failed_at=now, auth_failed_reason=f"{outcome.code} {outcome.detail}"
                )
            credentials[name] = entry.model_copy(update=update)
        elif outcome.kind in SERVER_TROUBLE:
            failures = backoffs.get(sender, (now, 0))[1] + 1
            delay = backoff.SMTP_TROUBLE.delay_s(failures)
            backoffs[sender] = (now + timedelta(seconds=delay), failures)
            logger.warning(
                "%s campaign=%s credential=%s code=%s detail=%s retry_in_s=%d",
                SERVER_TROUBLE[outcome.kind],
                *key,
                outcome.code,
                outcome.detail,
                delay,
            )
            error = " ".join(str(part) for part in (outcome.code, outcome.detail) if part)
            credentials[name] = entry.model_copy(
                update={
                    "smtp_error": f"{SERVER_TROUBLE[outcome.kind]}: {error}",
                    "smtp_error_since": entry.smtp_error_since or now,
                }
            )
        else:
            backoffs.pop(sender, None)
            if entry.auth_failures or entry.smtp_error:
                if entry.smtp_error:
                    logger.info("smtp reachable again campaign=%s credential=%s", *key)
                credentials[name] = entry.model_copy(
                    update={"auth_failures": 0, "smtp_error": None, "smtp_error_since": None}
                )
    return state.model_copy(update={"credentials": credentials})
