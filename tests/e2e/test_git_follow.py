"""The daemon following a git remote: pushes, a webhook, a bad push, a force-push, signatures.

A bare repository on this machine is the remote; a clone of it is the operator's
checkout, which commits and pushes. The daemon runs as ``python -m mailopsd run --git``
and is only ever told about a push by the webhook (or its fetch interval): the test
never touches its files.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.configs import BASE, CANARY, LEADS
from tests.e2e.test_daemon import WAIT_S, NotifySocket, _encrypt, _mailopsd, _status
from tests.sops_tools import AgeKey, make_key
from tests.waiting import poll_until

SECRET = "webhook-secret-canary-0123456789"  # noqa: S105 - a canary
SIGNING_KEY = "signing-key-canary-0123456789abcdefghij"


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args],  # noqa: S607 - git from PATH
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@dataclass
class Remote:
    """A bare remote and the operator's clone that pushes to it."""

    bare: Path
    work: Path
    key: AgeKey
    port: int

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    @property
    def config(self) -> Path:
        return self.work / "mailops" / "c.yaml"

    def push(self, message: str, *, sign: Path | None = None, force: bool = False) -> str:
        """Commit everything under the clone and push it; the new head."""
        _git("add", "-A", cwd=self.work)
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign}"] if sign else []
        _git(*signing, "commit", "-q", *(["-S"] if sign else []), "-m", message, cwd=self.work)
        _git("push", "-q", *(["--force"] if force else []), "origin", "main", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)

    def edit(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text
        self.config.write_text(text.replace(old, new))


def http_section(port: int) -> str:
    """An ``http`` section listening on ``port``."""
    return (
        f"http:\n  listen: 127.0.0.1:{port}\n  public_base_url: https://mail.example.com\n"
        f"  signing_key: {SIGNING_KEY}\n"
    )


def make_remote(tmp_path: Path, config_text: Callable[[int], str]) -> Remote:
    """A remote whose one commit holds ``config_text(port)`` encrypted in ``mailops/c.yaml``."""
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    _git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    _git("config", "user.name", "Operator", cwd=work)
    _git("config", "user.email", "operator@example.com", cwd=work)
    port = _free_port()
    config = work / "mailops"
    config.mkdir()
    (config / "leads.csv").write_text(LEADS)
    (config / "c.yaml").write_text(config_text(port))
    key = make_key(tmp_path)
    _encrypt(key, config / "c.yaml")
    found = Remote(bare, work, key, port)
    found.push("First config")
    return found


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """A remote whose one commit holds a valid, encrypted config in ``mailops/``."""
    return make_remote(
        tmp_path, lambda port: BASE + "        status: sandbox\n" + http_section(port)
    )


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    state: Path
    log: Path
    port: int

    def git(self) -> dict[str, object]:
        found = _status(self.state)["git"]
        assert isinstance(found, dict)
        return found

    def limit(self) -> object:
        campaigns = _status(self.state)["campaigns"]
        return campaigns[0]["smtp_credentials"][0]["daily_limit"]  # type: ignore[index]

    def hook(self, body: bytes, secret: str = SECRET) -> int:
        """POST the webhook as GitHub signs it; the status code."""
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/hooks/git",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-Hub-Signature-256": f"sha256={signature}",
                },
            )
            return connection.getresponse().status
        finally:
            connection.close()

    def applied(self, commit: str) -> None:
        poll_until(
            lambda: self.git()["applied_commit"] == commit,
            timeout_s=WAIT_S,
            interval_s=0.2,
            what=f"commit {commit[:12]} applied",
        )


@contextmanager
def _following(
    remote: Remote, tmp_path: Path, notify: NotifySocket, *extra: str
) -> Iterator[Daemon]:
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET + "\n")
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    arguments = [
        *("run", "--git", remote.url, "--git-path", "mailops", "--state-dir", str(state)),
        *("--git-webhook-secret-file", str(secret), "--age-key-file", str(remote.key.path)),
        *extra,
    ]
    with log.open("w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailopsd", *arguments], env=env, stderr=stream
        )
    try:
        yield Daemon(process, state, log, remote.port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def test_pushes_are_applied_bad_ones_refused(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """Each signed webhook makes the daemon fetch; a good push is applied, a bad one is
    refused and the last good one keeps running, a force-push is applied and logged."""
    first = _git("rev-parse", "HEAD", cwd=remote.work)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        git = daemon.git()
        assert (git["applied_commit"], git["fetched_commit"]) == (first, first)
        assert git["remote"] == remote.url
        assert daemon.limit() == 100

        remote.edit("daily_limit: 100", "daily_limit: 150")
        second = remote.push("Raise the limit")
        assert daemon.hook(b'{"ref": "refs/heads/main"}', secret="wrong") == 401  # noqa: S106
        assert daemon.hook(b'{"ref": "refs/heads/main"}') == 202
        daemon.applied(second)
        assert daemon.limit() == 150

        remote.edit("daily_limit: 150", "daily_limit: 0")
        bad = remote.push("A bad limit")
        assert daemon.hook(b"{}") == 202
        poll_until(
            lambda: daemon.git()["refused_commit"] == bad,
            timeout_s=WAIT_S,
            interval_s=0.2,
            what="the bad commit refused",
        )
        git = daemon.git()
        assert git["applied_commit"] == second
        assert "daily_limit: must be an integer ≥ 1 (got 0)" in str(git["refused_reason"])
        assert daemon.limit() == 150
        shown = _mailopsd("status", "--state-dir", str(daemon.state)).stdout
        assert f"git: following {remote.url} branch main (mailops/): applied commit " in shown
        assert (
            f"  not applied: commit {bad[:12]}: 1 config error(s): mailops/c.yaml:18:22: "
            "campaigns.acme-q4.smtp_credentials.primary.daily_limit: must be an integer ≥ 1 "
            "(got 0)\n"
        ) in shown

        _git("reset", "-q", "--hard", second, cwd=remote.work)
        remote.edit("daily_limit: 150", "daily_limit: 175")
        rewritten = remote.push("Another limit", force=True)
        assert daemon.hook(b"{}") == 202
        daemon.applied(rewritten)
        assert daemon.limit() == 175
        assert daemon.git()["refused_commit"] == bad  # until another is refused
        assert daemon.process.poll() is None
    assert daemon.process.returncode == 0
    log = daemon.log.read_text()
    assert f"git history rewritten remote={remote.url} branch=main from={bad[:12]}" in log
    assert log.count(f"git commit not applied commit={bad[:12]}") == 1
    assert "git webhook refused: no valid signature client=127.0.0.1" in log
    for secret in (SECRET, SIGNING_KEY, CANARY):
        assert secret not in log


def test_an_interval_fetch_applies_a_push(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """Without a webhook, the next fetch of the interval finds the push."""
    with _following(remote, tmp_path, notify, "--git-interval", "0.5") as daemon:
        notify.wait_for("READY=1")
        remote.edit("daily_limit: 100", "daily_limit: 120")
        pushed = remote.push("Raise the limit")
        daemon.applied(pushed)
        assert daemon.limit() == 120


def test_without_the_remote_nothing_starts_and_with_an_applied_commit_it_runs_on(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """A first start needs the remote; a restart runs on the applied commit without it."""
    missing = _mailopsd(
        *("run", "--once", "--git", f"file://{tmp_path}/nowhere.git", "--state-dir"),
        *(str(tmp_path / "other"), "--age-key-file", str(remote.key.path)),
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        f"error: cannot fetch branch 'main' of file://{tmp_path}/nowhere.git: fatal: "
        f"'{tmp_path}/nowhere.git' does not appear to be a git repository; check the URL, "
        "the branch and the credentials\n"
    )

    first = _git("rev-parse", "HEAD", cwd=remote.work)
    with _following(remote, tmp_path, notify, "--git-interval", "3600"):
        notify.wait_for("READY=1")
    remote.bare.rename(remote.bare.with_name("moved.git"))
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        poll_until(
            lambda: daemon.git()["fetch_error"],
            timeout_s=WAIT_S,
            interval_s=0.2,
            what="the fetch error in the state",
        )
        assert daemon.git()["applied_commit"] == first
        assert daemon.limit() == 100
        assert daemon.process.poll() is None


def test_only_commits_signed_by_an_allowed_key_are_applied(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """With --git-allowed-signers, an unsigned head is refused, a signed one applied."""
    keys = {}
    for name in ("allowed", "other"):
        keys[name] = tmp_path / f"{name}-key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys[name])],  # noqa: S607
            check=True,
            timeout=30,
        )
    signers = tmp_path / "allowed_signers"
    public = Path(f"{keys['allowed']}.pub").read_text().strip()
    signers.write_text(f"operator@example.com {public}\n")
    remote.edit("daily_limit: 100", "daily_limit: 101")
    signed = remote.push("Signed", sign=keys["allowed"])
    options = ("--git-interval", "3600", "--git-allowed-signers", str(signers))
    with _following(remote, tmp_path, notify, *options) as daemon:
        notify.wait_for("READY=1")
        assert daemon.git()["applied_commit"] == signed
        head = signed
        for message, key, old, new in (
            ("Unsigned", None, "101", "102"),
            ("Signed by another key", keys["other"], "102", "103"),
        ):
            remote.edit(f"daily_limit: {old}", f"daily_limit: {new}")
            head = remote.push(message, sign=key)
            assert daemon.hook(b"{}") == 202
            poll_until(
                lambda head=head: daemon.git()["refused_commit"] == head,  # type: ignore[misc]
                timeout_s=WAIT_S,
                interval_s=0.2,
                what=f"{message!r} refused",
            )
            assert daemon.git()["applied_commit"] == signed
            assert daemon.limit() == 101
            if key is None:
                assert daemon.git()["refused_reason"] == f"commit {head[:12]} is not signed"
        reason = str(daemon.git()["refused_reason"])
        assert reason.startswith(f"commit {head[:12]} is signed by a key not in {signers}")


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.3])
def test_a_kill_while_a_push_is_applied_loses_nothing(
    remote: Remote, tmp_path: Path, notify: NotifySocket, delay_s: float
) -> None:
    """SIGKILL right after the webhook, at a few moments of the fetch and the apply: the
    restarted daemon runs on the pushed commit, its work tree holds exactly that commit,
    and it applies it once."""
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        remote.edit("daily_limit: 100", "daily_limit: 150")
        pushed = remote.push("Raise the limit")
        assert daemon.hook(b"{}") == 202
        time.sleep(delay_s)
        daemon.process.kill()
        daemon.process.wait()
    before = len(notify.messages)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1", after=before)
        daemon.applied(pushed)
        assert daemon.limit() == 150
        tree = daemon.state / "git" / "tree"
        assert _git("rev-parse", "HEAD", cwd=tree) == pushed
        assert _git("status", "--porcelain", cwd=tree) == ""
    log = daemon.log.read_text()
    assert log.count(f"git commit applied commit={pushed[:12]}") <= 1


def test_a_lost_local_copy_starts_on_the_head(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """The state directory's copy of the remote is gone and the applied commit with it
    (a force-push dropped it): the daemon starts on the head instead of not at all."""
    first = _git("rev-parse", "HEAD", cwd=remote.work)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        assert daemon.git()["applied_commit"] == first
    remote.edit("daily_limit: 100", "daily_limit: 130")
    _git("commit", "-q", "--amend", "-am", "First config, amended", cwd=remote.work)
    _git("push", "-q", "--force", "origin", "main", cwd=remote.work)
    _git("gc", "-q", "--prune=now", cwd=remote.bare)
    head = _git("rev-parse", "HEAD", cwd=remote.work)
    shutil.rmtree(tmp_path / "state" / "git" / "repo.git")
    before = len(notify.messages)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1", after=before)
        assert daemon.git()["applied_commit"] == head
        assert daemon.limit() == 130
    assert "git applied commit not at hand, starting on the head" in daemon.log.read_text()
