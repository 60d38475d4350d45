"""The suite's own time limit: a test that runs too long fails alone, and the run goes on.

A tiny test file is run by pytest in a subprocess with the ``[tool.pytest.ini_options]``
of this project's ``pyproject.toml``, its time limits shortened so that the slow tests
pass them while other threads are busy starting and ending threads, as the suite's
servers do. Whatever mechanism the project configures, those tests must each be
reported failed and the others passed, with the closing summary line: the process must
not die (a limit that dumps every thread's stack from a watchdog thread crashed it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 0.2
SLOW_TESTS = 20

# Keys of [tool.pytest.ini_options] that are a time limit per test, in seconds.
_LIMIT_KEYS = ("timeout", "faulthandler_timeout")

_TESTS = f"""\
import threading
import time

import pytest


def _churn(stop):
    while not stop.is_set():
        worker = threading.Thread(target=sum, args=(range(50),))
        worker.start()
        worker.join()


@pytest.fixture(scope="module")
def busy_threads():
    stop = threading.Event()
    threads = [threading.Thread(target=_churn, args=(stop,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join()


def test_before():
    pass


@pytest.mark.parametrize("n", range({SLOW_TESTS}))
def test_slow(busy_threads, n):
    # Five times the limit, in short sleeps: the limit's signal, when a busy thread gets
    # it, cuts no sleep of this thread short, so one long sleep ran to its end each time.
    for _ in range(50):
        time.sleep({LIMIT_S} / 10)


def test_after():
    pass
"""


def _ini_with_short_limits() -> str:
    """This project's pytest options as a ``pytest.ini``, each time limit set to ``LIMIT_S``."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    lines = ["[pytest]"]
    for key, value in options["ini_options"].items():
        if key in _LIMIT_KEYS:
            value = LIMIT_S
        if key == "testpaths":
            continue
        shown = "\n    ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def test_a_slow_test_fails_alone_and_the_run_goes_on(tmp_path: Path) -> None:
    """Tests past the time limit are each reported failed and the run reports the rest."""
    (tmp_path / "pytest.ini").write_text(_ini_with_short_limits())
    (tmp_path / "test_tiny.py").write_text(_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_tiny.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1, f"pytest ended with {done.returncode}:\n{said[-3000:]}"
    assert re.search(rf"^=+ {SLOW_TESTS} failed, 2 passed in .* =+$", done.stdout, re.M), said[
        -3000:
    ]
    assert re.search(r"^test_tiny\.py::test_before PASSED", done.stdout, re.M)
    assert re.search(r"^test_tiny\.py::test_after PASSED", done.stdout, re.M)
    for n in range(SLOW_TESTS):
        assert re.search(
            rf"^FAILED test_tiny\.py::test_slow\[{n}\] - Failed: Timeout", done.stdout, re.M
        ), said[-3000:]
