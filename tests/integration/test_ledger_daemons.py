"""Daemons on one PostgreSQL ledger: status shows each one, they share the campaigns,
and they agree on a revision.

Real daemons (``mailopsd run``, one process each, each with its own state directory) on
a real PostgreSQL, sending to the SMTP test server. Two configs differ by one comment,
so by revision (their content hash).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mailopsd.state import postgres
from tests.commands import status_process
from tests.configs import BASE
from tests.dispatch_setup import (
    campaign_tree,
    credential,
    write_campaign,
    write_config,
    write_leads,
)
from tests.e2e.test_git_follow import make_remote
from tests.servers.postgres import campaign_holders
from tests.servers.smtp import SmtpServer
from tests.waiting import poll_until

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class Cluster:
    """Daemons started on one ledger; each stopped (by pid) when the test ends."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.dsn = dsn
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, config: Path) -> subprocess.Popen[bytes]:
        return self.start_with(name, "--allow-plaintext-secrets", "--config", str(config))

    def start_with(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        """Start daemon ``name`` (``run ARGUMENTS`` on its state directory and the ledger)."""
        log = self.log(name).open("ab")
        with log:
            daemon = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mailopsd", "run", *arguments),
                    *("--state-dir", str(self.state(name)), "--ledger", self.dsn),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.daemons[name] = daemon
        return daemon

    def state(self, name: str) -> Path:
        return self.root / f"state-{name}"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def status(self, *options: str) -> str:
        """What ``mailopsd status`` prints (from any daemon's state directory)."""
        return status_process(self.state("a"), *options)

    def line(self, name: str) -> str:
        """The status line of daemon ``name`` ("" if status shows none)."""
        pid = f"pid {self.daemons[name].pid})"
        return next((line for line in self.status().splitlines() if pid in line), "")

    def holder(self, campaign: str = "camp") -> str | None:
        """The name of the daemon that holds ``campaign``'s lease, as PostgreSQL says."""
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            pid = campaign_holders(admin, [campaign])[campaign]
        return next((name for name, d in self.daemons.items() if d.pid == pid), None)

    def stop_all(self) -> None:
        for daemon in self.daemons.values():
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in self.daemons.values():
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


@pytest.fixture
def cluster(tmp_path: Path, postgres_dsn: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, postgres_dsn)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        postgres.close_pools()


def _configs(root: Path, smtp_server: SmtpServer) -> tuple[Path, Path]:
    """Config A and config B, the same campaign but for a comment (two revisions)."""
    boxes = {"a": credential(smtp_server, "ada", tls="none")}
    for name in ("one", "two"):
        (root / name).mkdir()
    first = write_campaign(root / "one", boxes, leads=2, steps=1)
    second = write_campaign(root / "two", boxes, leads=2, steps=1)
    second.write_text(second.read_text() + "# the second revision\n")
    return first, second


def test_status_shows_every_daemon_and_one_on_another_revision_holds_no_work(
    tmp_path: Path, cluster: Cluster, smtp_server: SmtpServer
) -> None:
    """a and b run revision A, c and then d revision B. a holds the one campaign, b works
    with none to hold, c waits behind. Once b stops, B is what most run: a lets the
    campaign go to c or d, and stands by behind them until its config is B too."""
    first, second = _configs(tmp_path, smtp_server)
    cluster.start("a", first)
    poll_until(lambda: cluster.holder() == "a", timeout_s=60, what="a to hold the campaign")
    cluster.start("b", first)
    poll_until(lambda: "holds no campaign now" in cluster.line("b"), timeout_s=60, what="b")
    working = cluster.line("a")
    assert "working, heartbeat" in working
    assert "holds camp;" in working
    revision_a = working.rsplit("revision ", 1)[1]
    assert revision_a.startswith("sha256:")
    assert "1 campaign lease held now" in cluster.status()
    rows = json.loads(cluster.status("--json"))["ledger"]["daemons"]
    by_pid = {row["pid"]: row for row in rows}
    assert by_pid[cluster.daemons["a"].pid]["holds"] == ["camp"]
    assert by_pid[cluster.daemons["b"].pid]["role"] == "working"
    assert by_pid[cluster.daemons["b"].pid]["holds"] == []
    assert {row["revision"] for row in rows} == {revision_a}
    assert all(row["heartbeat_age_s"] < 15 for row in rows)

    cluster.start("c", second)
    poll_until(lambda: "behind" in cluster.line("c"), timeout_s=60, what="c to wait behind")
    behind = cluster.line("c")
    assert f"while 2 other daemons run {revision_a}" in behind, behind
    assert "holds no work until it runs that revision" in behind
    logged = cluster.log("c").read_text()
    assert "standing by while=opening the ledger" in logged, logged
    assert "until it runs that revision" in logged

    cluster.start("d", second)
    poll_until(lambda: "behind" in cluster.line("d"), timeout_s=60, what="d to wait behind")
    assert cluster.holder() == "a"  # two on each revision: the working ones' wins

    cluster.daemons["b"].send_signal(signal.SIGTERM)
    assert cluster.daemons["b"].wait(timeout=30) == 0
    poll_until(lambda: cluster.holder() in {"c", "d"}, timeout_s=30, what="a to let go")
    assert cluster.daemons["a"].poll() is None  # still running: standing by
    assert "letting the work go, standing by again" in cluster.log("a").read_text()
    poll_until(lambda: "behind" in cluster.line("a"), timeout_s=30, what="a to wait behind")
    assert "stopped at" in cluster.line("b")

    first.write_text(second.read_text())  # a's config catches up
    poll_until(lambda: "working, heartbeat" in cluster.line("a"), timeout_s=30, what="a back")
    assert "revision sha256:" in cluster.line("a")


def test_two_daemons_share_the_campaigns_and_one_takes_over_the_others(
    tmp_path: Path, cluster: Cluster, smtp_server: SmtpServer
) -> None:
    """Two campaigns of their own mailboxes, two daemons: each holds one and sends its
    leads. One is stopped: the other takes its campaign at once and sends the rest."""
    campaigns = {}
    for name, login in (("north", "ada"), ("south", "box2")):
        write_leads(tmp_path / f"{name}.csv", [f"{name}{i}@example.net,N{i}" for i in range(3)])
        box = {"b": credential(smtp_server, login)}
        campaigns[name] = campaign_tree(box, steps=1, leads=f"{name}.csv", name=name)
    config = write_config(tmp_path, campaigns)
    cluster.start("a", config)
    poll_until(lambda: len(smtp_server.handler.messages) == 6, timeout_s=60, what="a alone")
    cluster.start("b", config)
    poll_until(
        lambda: {cluster.holder("north"), cluster.holder("south")} == {"a", "b"},
        timeout_s=60,
        what="each daemon to hold one campaign",
    )
    lines = {name: cluster.line(name) for name in ("a", "b")}
    assert {"holds north;", "holds south;"} == {
        "holds north;" if "holds north;" in line else "holds south;" for line in lines.values()
    }, lines
    kept = "north" if cluster.holder("north") == "b" else "south"
    cluster.daemons["a"].send_signal(signal.SIGTERM)
    assert cluster.daemons["a"].wait(timeout=30) == 0
    poll_until(
        lambda: cluster.holder("north") == cluster.holder("south") == "b",
        timeout_s=15,
        what="b to take a's campaign",
    )
    assert "holds north, south;" in cluster.line("b")
    assert "leases taken campaigns=" in cluster.log("b").read_text()
    assert kept in cluster.log("b").read_text()


def test_a_daemon_following_git_applies_a_push_while_another_holds_the_campaign(
    tmp_path: Path, cluster: Cluster
) -> None:
    """Two daemons follow one remote: after a push, each fetches and applies the new
    commit, the one that holds no campaign too, so it is ready to take over with it."""
    remote = make_remote(tmp_path, lambda _port: BASE + "        status: sandbox\n")
    following = (
        *("--git", remote.url, "--git-path", "mailops", "--git-interval", "0.5"),
        *("--age-key-file", str(remote.key.path)),
    )
    cluster.start_with("a", *following)
    poll_until(lambda: cluster.holder("acme-q4") == "a", timeout_s=60, what="a to hold it")
    cluster.start_with("b", *following)
    poll_until(lambda: "holds no campaign now" in cluster.line("b"), timeout_s=60, what="b")
    remote.edit("daily_limit: 100", "daily_limit: 120")
    pushed = remote.push("Raise the limit")[:12]
    poll_until(
        lambda: f"revision git:{pushed}" in cluster.line("a"), timeout_s=60, what="a to apply it"
    )
    poll_until(
        lambda: (
            "holds no campaign now" in cluster.line("b")
            and f"revision git:{pushed}" in cluster.line("b")
        ),
        timeout_s=60,
        what="b to work on the pushed commit",
    )
