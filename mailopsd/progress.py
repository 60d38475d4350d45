"""Reports of long work for whoever shows them: what is being done, how far, out of how much.

Reading a large leads file, encrypting a large secrets file or a first scan of a big
mailbox take seconds to minutes. The code doing such work takes a :data:`Progress`
callback and calls it as it goes with a :class:`Work`; only the command line turns the
reports into something a person sees (a bar on a terminal), so every layer below it stays
free of terminal code, and a daemon whose output is not a terminal is given no callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "Tally", "Work"]


@dataclass(frozen=True)
class Work:
    """How far one piece of long work is.

    Attributes:
        what: What is being done, for a person (``reading leads.csv``); a piece of work
            keeps it from its first report to its last, and two at once differ in it.
        done: The units done so far.
        total: The units in all, or ``None`` while unknown.
        unit: What is counted, in the singular: ``B`` (bytes), ``value``, ``message``.
        note: What else a person may want to see (``12,345 rows``), or empty.
        finished: This is the work's last report.
    """

    what: str
    done: int
    total: int | None = None
    unit: str = "item"
    note: str = ""
    finished: bool = False


Progress = Callable[[Work], None]
"""Called with each report of a piece of work; may be called from several threads."""


class Tally:
    """Counts the units of one piece of work and reports them now and then.

    It reports once at the start (``done`` 0), once more when the total becomes known
    (:meth:`expect`), then each time ``every`` more units are done, then once at
    :meth:`finish`; without a callback it does nothing.
    """

    def __init__(
        self,
        progress: Progress | None,
        what: str,
        *,
        total: int | None,
        unit: str,
        every: int = 100,
    ) -> None:
        self._progress = progress
        self._what = what
        self._total = total
        self._unit = unit
        self._every = every
        self._done = 0
        self._next_report = every
        self._report(finished=False)

    def expect(self, total: int) -> None:
        """Set the units in all, once known (the work may take a while to find them)."""
        self._total = total
        self._report(finished=False)

    def add(self, count: int = 1) -> None:
        """Count ``count`` more units done."""
        if self._progress is None:
            return
        self._done += count
        if self._done >= self._next_report:
            self._next_report = self._done + self._every
            self._report(finished=False)

    def finish(self) -> None:
        """Report the work done, whatever its count."""
        self._report(finished=True)

    def _report(self, *, finished: bool) -> None:
        if self._progress is not None:
            work = Work(self._what, self._done, self._total, self._unit, finished=finished)
            self._progress(work)
