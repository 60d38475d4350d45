"""Progress bars: drawn on a terminal for long work, never anywhere else."""

from __future__ import annotations

import io
import os
import pty
import re
import threading
import time

import pytest

from mailopsd.cli.bars import Bars, bars_on_stderr
from mailopsd.progress import Work
from tests.waiting import poll_until

SIZE = 52 * 1024 * 1024


class _Terminal(io.StringIO):
    """What a terminal is to a bar: a text stream that says it is a tty."""

    def isatty(self) -> bool:
        return True


def _read_half(bars: Bars) -> None:
    """Report a leads file read halfway, a little time apart, and leave it unfinished."""
    bars(Work("reading leads.csv", 0, SIZE, "B", note="0 rows"))
    time.sleep(0.02)  # a rate needs time to pass
    bars(Work("reading leads.csv", SIZE // 2, SIZE, "B", note="500,000 rows"))


class TestBars:
    """Bars turns reports into one bar per piece of work, only on a terminal."""

    def test_long_work_shows_count_total_rate_and_time_left(self) -> None:
        """A bar names the work and shows how far, of how much, how fast and how long yet."""
        terminal = _Terminal()
        with Bars(terminal, is_terminal=True, delay_s=0) as bars:
            _read_half(bars)
        last = terminal.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
        pattern = (
            r"reading leads\.csv:  50%\|#+ *\| 26\.0M/52\.0M "
            r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]?B/s, 500,000 rows\]"
        )
        assert re.fullmatch(pattern, last), last
        assert terminal.getvalue().endswith("\n")  # what follows starts on its own line

    def test_counts_show_their_unit(self) -> None:
        """Values or messages show as counted, with their unit in the rate."""
        terminal = _Terminal()
        with Bars(terminal, is_terminal=True, delay_s=0) as bars:
            bars(Work("encrypting x.yaml", 0, 40, "value"))
            bars(Work("encrypting x.yaml", 40, 40, "value", finished=True))
        assert re.search(
            r"encrypting x\.yaml: 100%\|#+\| 40/40 \[.* values/s\]\n$", terminal.getvalue()
        )

    def test_a_silent_bar_keeps_its_clock_running(self) -> None:
        """Work that reports nothing for a while is drawn again, its elapsed time moving."""
        terminal = _Terminal()
        with Bars(terminal, is_terminal=True, delay_s=0, redraw_s=0.01) as bars:
            bars(Work("decrypting x.yaml", 0, None, "value"))
            poll_until(
                lambda: terminal.getvalue().count("decrypting x.yaml: 0 values [00:0") > 2,
                timeout_s=10,
                what="the bar drawn again",
                interval_s=0.01,
            )
            bars(Work("decrypting x.yaml", 40, 40, "value", finished=True))
        assert terminal.getvalue().endswith("\n")

    def test_quick_work_shows_nothing(self) -> None:
        """Work done before the delay leaves the terminal as it was."""
        terminal = _Terminal()
        with Bars(terminal, is_terminal=True) as bars:
            bars(Work("reading leads.csv", 0, SIZE, "B"))
            bars(Work("reading leads.csv", SIZE, SIZE, "B", finished=True))
        assert terminal.getvalue() == ""

    def test_nothing_when_not_a_terminal(self) -> None:
        """Output that is not a terminal gets nothing at all, and work gets no callback."""
        stream = io.StringIO()
        bars = Bars(stream, is_terminal=False, delay_s=0)
        with bars:
            _read_half(bars)
            bars(Work("reading leads.csv", SIZE, SIZE, "B", finished=True))
        assert bars.progress is None
        assert stream.getvalue() == ""

    def test_reports_from_threads(self) -> None:
        """Reports from several threads each move their own bar; all end finished."""
        terminal = _Terminal()
        with Bars(terminal, is_terminal=True, delay_s=0) as bars:

            def read(name: str) -> None:
                for done in range(0, 101, 10):
                    bars(Work(f"reading {name}", done, 100, "message", finished=done == 100))

            threads = [threading.Thread(target=read, args=(n,)) for n in ("a", "b", "c")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for name in ("a", "b", "c"):
            assert f"reading {name}: 100%" in terminal.getvalue()

    def test_captured_stderr_is_no_terminal(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Standard error read by another program gives work no callback."""
        assert bars_on_stderr(delay_s=0).progress is None
        assert capsys.readouterr().err == ""


def test_an_unsized_terminal_still_gets_a_bar() -> None:
    """A pseudo-terminal that gives its size as 0 gets a bar the width of a plain terminal."""
    main, side = pty.openpty()
    try:
        with (
            open(side, "w", encoding="utf-8", closefd=False) as terminal,
            Bars(terminal, is_terminal=terminal.isatty(), delay_s=0) as bars,
        ):
            bars(Work("encrypting x.yaml", 0, 40, "value"))
            bars(Work("encrypting x.yaml", 40, 40, "value", finished=True))
        shown = os.read(main, 65536).decode()
    finally:
        os.close(main)
        os.close(side)
    lines = shown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assert any(line.startswith("encrypting x.yaml: 100%|") for line in lines), shown
    assert max(len(line) for line in lines) == 79
