"""Lead states and stop reasons are the words the ledger stores and the status shows."""

from __future__ import annotations

from mailopsd.lifecycle import LeadState, StopReason


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
        ]
