"""Reports of long work: a tally reports at its start, every so many units, and at its end."""

from __future__ import annotations

from mailopsd.progress import Tally, Work


class TestTally:
    """Tally counts units and reports them to a callback now and then."""

    def test_reports_start_every_step_and_end(self) -> None:
        """A report at 0, one each time ``every`` more units are done, one when finished."""
        reports: list[Work] = []
        tally = Tally(reports.append, "sealing x.yaml", total=250, unit="value", every=100)
        for _ in range(25):
            tally.add(10)
        tally.finish()
        assert [(work.done, work.finished) for work in reports] == [
            (0, False),
            (100, False),
            (200, False),
            (250, True),
        ]
        assert {(work.what, work.total, work.unit) for work in reports} == {
            ("sealing x.yaml", 250, "value")
        }

    def test_without_a_callback_it_does_nothing(self) -> None:
        """No callback: counting and finishing cost nothing and report nowhere."""
        tally = Tally(None, "sealing x.yaml", total=None, unit="value")
        tally.add(1_000)
        tally.finish()
