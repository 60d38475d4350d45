"""The systemd unit: clean under systemd-analyze verify, exposure at most 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "mailopsd.service"
INSTALLED_AT = "/opt/mailopsd/bin/mailopsd"


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze is missing: the test command installs systemd"
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False, timeout=120)


def test_unit_verifies_clean(tmp_path: Path) -> None:
    """systemd-analyze verify has nothing to say (ExecStart pointed at this install)."""
    here = Path(sys.executable).parent / "mailopsd"
    assert here.exists()
    unit = tmp_path / "mailopsd.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_AT, str(here)))
    result = _analyze("verify", "--man=no", str(unit))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_exposure_at_most_2() -> None:
    """The offline security analysis rates the unit at most 2.0."""
    result = _analyze("security", "--offline=yes", str(UNIT))
    match = re.search(r"Overall exposure level for mailopsd\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_speaks_notify_and_reloads() -> None:
    """The unit waits for READY=1, has a watchdog, reloads by SIGHUP and gets the key."""
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=60",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=mailopsd",
        "LoadCredential=age-key:/etc/credstore/mailopsd-age-key",
    ):
        assert line in text.splitlines()
