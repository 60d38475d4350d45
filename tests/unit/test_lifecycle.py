"""Lead states, stop reasons and mail kinds are the words the ledger stores and the status shows."""

from __future__ import annotations

from mailopsd.inbox.classify import KINDS
from mailopsd.lifecycle import LeadState, MailKind, StopReason


class TestLifecycle:
    """The stored words never change."""

    def test_lead_states(self) -> None:
        """Each lead state is stored as its lowercase word."""
        assert [str(state) for state in LeadState] == [
            "new",
            "sending",
            "waiting",
            "done",
            "failed",
            "stopped",
        ]

    def test_stop_reasons(self) -> None:
        """Each stop reason is stored as its lowercase word."""
        assert [str(reason) for reason in StopReason] == [
            "bounced",
            "complained",
            "replied",
            "unsubscribed",
            "auto_reply",
            "domain_replied",
        ]

    def test_mail_kinds(self) -> None:
        """Each mail kind is stored as its word; the classifier gives all but ``unconfirmed``."""
        assert [str(kind) for kind in MailKind] == [
            "hard",
            "soft",
            "block",
            "unconfirmed",
            "feedback",
            "auto_reply",
            "delivered",
            "unsubscribe",
            "reply",
            "other",
        ]
        assert set(MailKind) - set(KINDS) == {MailKind.UNCONFIRMED}
