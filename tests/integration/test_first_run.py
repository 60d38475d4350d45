"""README's first command on the shipped demo: mail goes to the sandbox at any hour, and the
run ends with a summary of what it did and what comes next."""

from __future__ import annotations

import json
import mailbox
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import run_cli
from tests.configs import BASE, Writer

REPO = Path(__file__).resolve().parents[2]
DEMO_LEADS = {"grace@example.com", "alan@example.org", "katherine@example.net"}
FIRST_COMMAND = [
    "run",
    "--config",
    "config/",
    "--once",
    "--age-key-file",
    "config/demo-age-key.txt",
]


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the repository's config/ as the cwd, with README's chmod done."""
    for name in ("MAILOPSD_CONFIG", "MAILOPSD_STATE_DIR", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "config" / "demo-age-key.txt").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sandbox(root: Path) -> dict[str, list[str]]:
    """The recipients of the messages in each sandbox Maildir of the demo campaign."""
    found = {}
    for box in sorted((root / "state" / "sandbox" / "demo-welcome").iterdir()):
        found[box.name] = sorted(str(message["To"]) for message in mailbox.Maildir(box))
    return found


@pytest.mark.parametrize(
    ("now", "next_due"),
    [
        # Sunday 03:00 in Paris: the demo campaign's time zone. Step 2 is due 3 days later,
        # plus each lead's draw of delay_jitter (2 hours): the first lead's is 44:57.
        ("2026-12-06T03:00:00+01:00", "Wed 2026-12-09 03:44 Europe/Paris (2026-12-09T02:44:57Z)"),
        ("2026-12-07T10:00:00+01:00", "Thu 2026-12-10 10:44 Europe/Paris (2026-12-10T09:44:57Z)"),
        ("2026-12-09T23:30:00+01:00", "Sun 2026-12-13 00:14 Europe/Paris (2026-12-12T23:14:57Z)"),
    ],
)
def test_demo_sends_at_any_hour_and_says_so(
    checkout: Path, capsys: pytest.CaptureFixture[str], now: str, next_due: str
) -> None:
    """The demo run sends step 1 to the three demo leads into the sandbox and prints what it
    sent, where the copies are and when step 2 is due."""
    code, out, err = run_cli(capsys, *FIRST_COMMAND, "--now", now)
    assert code == 0, err
    boxes = _sandbox(checkout)
    assert sorted(to for recipients in boxes.values() for to in recipients) == sorted(DEMO_LEADS)
    copies = ", ".join(
        f"state/sandbox/demo-welcome/{name}/new/ ({len(recipients)})"
        for name, recipients in boxes.items()
    )
    lines = out.splitlines()
    assert lines[0].startswith("run --once at 20")
    assert lines[0].endswith(" applied")
    assert lines[1:] == [
        "campaign demo-welcome: sent 3, failed 0",
        f"  sandbox copies (delivered nowhere): {copies}",
        f"  next: step 2 for 3 leads, the first from {next_due}",
        "details: mailopsd status --state-dir state",
    ]
    assert "Traceback" not in err


def test_status_after_the_demo_run(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README's second half, status, shows the suppression lists, the window, the leads, the
    rules by recipient domain and what is due next."""
    now = "2026-12-06T03:00:00+01:00"
    assert run_cli(capsys, *FIRST_COMMAND, "--now", now)[0] == 0
    code, out, _ = run_cli(capsys, "status", "--now", now)
    assert code == 0
    campaign = out.splitlines()[3:11]
    assert campaign == [
        "suppression lists of account default: 1 address and 1 domain never mailed "
        "(suppress/demo-do-not-contact.txt; applied 2026-12-06T02:00:00Z)",
        "campaign demo-welcome 'Demo welcome sequence' (account default, 3 leads)",
        "  send window: any time (Europe/Paris)",
        "  leads: 0 new, 3 in sequence (after step 1: 3), 0 finished, 0 replied, 0 bounced, "
        "0 unsubscribed, 0 stopped",
        "  sends: 3 today (UTC day), 3 in total",
        "  domains: a reply stops the other leads at its domain (free-mail domains excepted); "
        "at most 20 sends a UTC day to each recipient domain, 0 domains at the cap today",
        "  next: step 2 for 3 leads, the first from Wed 2026-12-09 03:44 Europe/Paris "
        "(2026-12-09T02:44:57Z)",
        "  finish: about Sun 2026-12-13 16:51 Europe/Paris (2026-12-13T15:51:01Z), when the "
        "last lead's last step is due",
    ]


def test_second_run_says_nothing_was_due(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run again the same day, the demo sends nothing more and says when the next step is."""
    now = "2026-12-06T03:00:00+01:00"
    assert run_cli(capsys, *FIRST_COMMAND, "--now", now)[0] == 0
    code, out, _ = run_cli(capsys, *FIRST_COMMAND, "--now", "2026-12-06T04:00:00+01:00")
    assert code == 0
    assert out.splitlines()[1:] == [
        "campaign demo-welcome: sent 0, failed 0",
        "  next: step 2 for 3 leads, the first from Wed 2026-12-09 03:44 Europe/Paris "
        "(2026-12-09T02:44:57Z)",
        "details: mailopsd status --state-dir state",
    ]
    assert sum(len(recipients) for recipients in _sandbox(checkout).values()) == 3


def test_first_command_as_installed(checkout: Path) -> None:
    """The installed program, run now at whatever hour it is, sends the demo's three step-1
    messages into the sandbox and prints the summary."""
    result = subprocess.run(
        [sys.executable, "-m", "mailopsd", *FIRST_COMMAND],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(checkout), "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "campaign demo-welcome: sent 3, failed 0"
    assert sum(len(recipients) for recipients in _sandbox(checkout).values()) == 3


WINDOWED = BASE.replace(
    "    name: ACME Q4 outreach\n",
    "    name: ACME Q4 outreach\n    timezone: America/New_York\n"
    '    send_window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}\n',
)
SANDBOX = "        status: sandbox\n"


def test_closed_window_says_when_it_opens(
    write_config: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside its window a run sends nothing and says when the window opens; status shows
    the opening in local time and UTC, and 'open now' inside the window."""
    path = write_config(WINDOWED, add=SANDBOX)
    sunday = "2026-11-22T15:00:00Z"
    run = ["run", "--config", str(path), "--state-dir", "st", "--once"]
    code, out, _ = run_cli(capsys, *run, "--allow-plaintext-secrets", "--now", sunday)
    assert code == 0
    opening = "Mon 2026-11-23 09:00 America/New_York (2026-11-23T14:00:00Z)"
    assert out.splitlines()[1:3] == [
        "campaign acme-q4: sent 0, failed 0",
        f"  next: step 1 for 1 new lead from {opening}, when the send window opens",
    ]
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", sunday)
    shape = "send window mon,tue,wed,thu,fri 09:00-17:00 America/New_York"
    assert f"  {shape}: closed; opens {opening}" in out.splitlines()
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--json", "--now", sunday)
    window = json.loads(out)["campaigns"][0]["window"]
    assert (window["open_now"], window["next_open"]) == (
        False,
        {"at": "2026-11-23T14:00:00Z", "at_local": "2026-11-23T09:00:00-05:00"},
    )
    _, out, _ = run_cli(capsys, "status", "--state-dir", "st", "--now", "2026-11-23T15:00:00Z")
    assert f"  {shape}: open now" in out.splitlines()
