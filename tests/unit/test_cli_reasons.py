"""The status line of a mailbox's bounces by reason."""

from __future__ import annotations

from mailopsd.cli.summary import reason_lines


class TestReasonLines:
    def test_reasons_with_their_class_where_the_reason_does_not_say_it(self) -> None:
        """Each reason with its addresses, most first as status lists them; the class is
        named for the reasons that follow the code and for bounces kept without a reason;
        unconfirmed reports are left to their own line."""
        row = {
            "bounce_window_start": "2026-11-16T10:00:00Z",
            "bounces_by_reason": [
                {"reason": "userunknown", "kind": "hard", "addresses": 3},
                {"reason": "spamdetected", "kind": "block", "addresses": 1},
                {"reason": "undefined", "kind": "soft", "addresses": 1},
                {"reason": "unknown", "kind": "hard", "addresses": 1},
                {"reason": "userunknown", "kind": "unconfirmed", "addresses": 1},
            ],
        }
        assert reason_lines(row) == [
            "    bounces by reason since 2026-11-16T10:00:00Z: userunknown 3, spamdetected 1, "
            "undefined 1 (soft), unknown 1 (hard)"
        ]

    def test_no_line_without_bounces(self) -> None:
        """A mailbox with no bounce in its window (or only unconfirmed ones) gets no line."""
        row = {
            "bounce_window_start": "2026-11-16T10:00:00Z",
            "bounces_by_reason": [{"reason": "blocked", "kind": "unconfirmed", "addresses": 2}],
        }
        assert reason_lines(row) == []
