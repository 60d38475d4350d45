"""Progress bars on a terminal for long work: a large leads file, secrets file or mailbox.

The layers below report their work as :class:`~mailopsd.progress.Work` through a plain
callback; :class:`Bars` is that callback for a command, and draws one bar per piece of
work (what is done, the count and total, the rate and the time left) on its stream. Only
when that stream is a terminal, and only for work that lasts more than ``DELAY_S``
seconds: quick work leaves the terminal as it was, and output that is not a terminal (a
pipe, a file, the journal) never holds a bar. Bars are written to the stream, never
logged, so no log line holds one either.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

from mailopsd.progress import Progress, Work

__all__ = ["DELAY_S", "REDRAW_S", "Bars", "bars_on_stderr"]

DELAY_S = 2.0
"""Work done sooner than this (seconds) shows no bar at all."""
REDRAW_S = 0.5
"""A bar whose work reports nothing is drawn again this often (seconds), its clock moving."""
# For a terminal that gives its size as 0 (a pseudo-terminal that nobody sized).
_COLUMNS, _LINES = 80, 24


class _Bar(tqdm):  # type: ignore[type-arg]  # tqdm is generic in its stubs only
    """A tqdm bar without tqdm's monitor thread, which would outlive the work it watches."""

    monitor_interval = 0


# tqdm's default lock also makes a multiprocessing lock, which fixes the process's start
# method for good; bars are only ever written from this process's threads.
_Bar.set_lock(threading.RLock())


class _Ticker:
    """A thread that calls ``redraw`` every ``every_s`` seconds while it is wanted.

    tqdm draws a bar only when told of progress, so work that reports nothing for a while
    (parsing a large file before its values are counted, waiting for a server) would leave
    its bar standing still, or never show it.
    """

    def __init__(self, redraw: Callable[[], None], every_s: float) -> None:
        self._redraw = redraw
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run_while(self, wanted: bool) -> None:
        """Start the thread if ``wanted`` and stopped; stop it (and wait) if not ``wanted``."""
        with self._lock:
            if wanted and self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="mailopsd-progress", daemon=True
                )
                self._thread.start()
            elif not wanted and self._thread is not None:
                self._stop.set()
                self._thread.join()
                self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._redraw()


class Bars:
    """Draws a bar for each piece of work reported to it, on one stream.

    Reports may come from several threads (the polls of ``run --once``); a bar is made at
    a piece of work's first report and closed at its last, or by :meth:`close`, and is
    drawn again now and then meanwhile, so its clock runs while its work reports nothing.
    Used as a context manager, it closes what is left open, so an error message that
    follows starts on a line of its own.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        is_terminal: bool,
        delay_s: float = DELAY_S,
        redraw_s: float = REDRAW_S,
    ) -> None:
        """Draw on ``stream`` if ``is_terminal``; otherwise do nothing at all.

        Args:
            stream: Where bars are written (standard error).
            is_terminal: The stream is a terminal.
            delay_s: How long work goes before its bar appears (0: at once).
            redraw_s: How often a bar is drawn again while its work reports nothing.
        """
        self._stream = stream
        self._is_terminal = is_terminal
        self._delay_s = delay_s
        self._open: dict[str, _Bar] = {}
        self._lock = threading.Lock()
        self._ticker = _Ticker(self._redraw, redraw_s)

    @property
    def progress(self) -> Progress | None:
        """The callback to hand to long work, or ``None`` where nothing is shown."""
        return self if self._is_terminal else None

    def __call__(self, work: Work) -> None:
        """Show a report: start, move or finish its piece of work's bar."""
        if not self._is_terminal:
            return
        with self._lock:
            bar = self._open.get(work.what)
            if bar is None:
                bar = self._open[work.what] = self._start(work)
            if work.total != bar.total:
                bar.total = work.total
            if work.note:
                bar.set_postfix_str(work.note, refresh=False)
            bar.update(work.done - bar.n)
            if work.finished:
                del self._open[work.what]
                bar.close()
            is_working = bool(self._open)
        self._ticker.run_while(is_working)

    def _start(self, work: Work) -> _Bar:
        scaled = work.unit == "B"
        columns, lines = _size(self._stream)
        return _Bar(
            desc=work.what,
            total=work.total,
            file=self._stream,
            ncols=columns,
            nrows=lines,
            delay=self._delay_s,
            unit=work.unit if scaled else f" {work.unit}s",
            unit_scale=scaled,
            unit_divisor=1024 if scaled else 1000,
        )

    def _redraw(self) -> None:
        """Draw again each bar whose work has gone on longer than the delay."""
        with self._lock:
            now = time.time()  # tqdm's clock
            for bar in self._open.values():
                if now >= bar.start_t + self._delay_s:
                    bar.refresh()

    def close(self) -> None:
        """Close the bars still open; one shown stays as it stood, ended by a newline."""
        with self._lock:
            left = list(self._open.values())
            self._open.clear()
            for bar in left:
                bar.close()
        self._ticker.run_while(False)

    def __enter__(self) -> Bars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _size(stream: TextIO) -> tuple[int | None, int | None]:
    """The columns a bar may fill and the lines of the terminal (``None``: not a file).

    tqdm reads the size itself, but draws nothing at all on a terminal that says 0.
    A bar stops a column short of the edge, where some terminals wrap the line.
    """
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's stream), or no terminal
        return None, None
    return (size.columns or _COLUMNS) - 1, size.lines or _LINES


def bars_on_stderr(*, delay_s: float = DELAY_S) -> Bars:
    """Bars on standard error, drawn only if it is a terminal (the commands' entry point)."""
    return Bars(sys.stderr, is_terminal=sys.stderr.isatty(), delay_s=delay_s)
