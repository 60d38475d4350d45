"""The credentials API's writes, as commits to the git remote the daemon follows.

A bare repository on this machine is the remote; a clone of it is the operator's
checkout. The daemon runs as ``python -m mailopsd run --git`` with ``api.write`` set, and
an HTTP client makes every write of the reference API. What is checked is what the people
involved see: the answers, the commits on the remote (author, message, the YAML kept
as written, the secrets sealed so that ``sops`` opens them), and the daemon running on
the change.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case

from mailopsd.http.apikeys import hash_api_key
from mailopsd.state.statefile import CredentialState, StateFile, save_state
from tests.configs import BASE, CANARY
from tests.e2e.test_daemon import WAIT_S, NotifySocket, _status
from tests.e2e.test_git_follow import (
    SIGNING_KEY,
    Daemon,
    Remote,
    _following,
    _git,
    http_section,
    make_remote,
)
from tests.e2e.test_git_follow import notify as notify
from tests.integration.test_http_schema import CHECKS
from tests.sops_tools import run_sops
from tests.waiting import poll_until

WRITE_KEY = "mk_write-key-canary-0123456789abcdefghijklmnop"
READ_KEY = "mk_read-key-canary-0123456789abcdefghijklmnopq"
NEW_PASSWORD = "canary-Kq7mX2pL9wR4tV8nB3sJ"  # noqa: S105 - a canary, strong enough
NEW_LOGIN = "login-canary-backup@example.com"
COMMENT = "    # The relays this campaign sends through.\n"
SECRETS = (CANARY, NEW_PASSWORD, NEW_LOGIN, WRITE_KEY, READ_KEY, SIGNING_KEY)
BACKUP = {
    "label": "Backup relay",
    "smtp_host": "smtp.postmark.example",
    "smtp_port": 587,
    "smtp_username": NEW_LOGIN,
    "smtp_password": NEW_PASSWORD,
    "from_name": "Ada",
    "from_email": "ada@example.com",
    "daily_limit": 100,
}
CREDENTIALS = "/campaigns/acme-q4/smtp_credentials"


def _config(port: int, write: str) -> str:
    text = BASE.replace("    smtp_credentials:\n", COMMENT + "    smtp_credentials:\n")
    return (
        text
        + "        status: sandbox\n"
        + http_section(port)
        + f"api:\n  write: {write}\n"
        + "api_keys:\n"
        + f"  ci-bot: {{account: default, sha256: {hash_api_key(WRITE_KEY)}, scope: write}}\n"
        + f"  dashboard: {{account: default, sha256: {hash_api_key(READ_KEY)}}}\n"
    )


def _remote(tmp_path: Path, write: str) -> Remote:
    """A remote whose one commit holds an encrypted config with write and read keys."""
    return make_remote(tmp_path, lambda port: _config(port, write))


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return _remote(tmp_path, "commit")


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


def _call(
    port: int, method: str, path: str, body: object = None, *, key: str = WRITE_KEY
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S * 3)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        return Answer(
            response.status,
            json.loads(text) if response.getheader("Content-Type") == "application/json" else None,
            {name.lower(): value for name, value in response.getheaders()},
            text,
        )
    finally:
        connection.close()


def _head(remote: Remote) -> str:
    return _git("rev-parse", "main", cwd=remote.bare)


def _file_at(remote: Remote, commit: str) -> str:
    return _git("show", f"{commit}:mailops/c.yaml", cwd=remote.bare)


def _credentials(daemon: Daemon) -> dict[str, dict[str, Any]]:
    campaign = _status(daemon.state)["campaigns"][0]  # type: ignore[index]
    return {entry["id"]: entry for entry in campaign["smtp_credentials"]}


def _sops_opens(remote: Remote, commit: str, tmp_path: Path) -> str:
    """The plaintext ``sops decrypt`` gives of the config at ``commit``."""
    copy = tmp_path / f"c-{commit[:12]}.yaml"
    copy.write_text(_file_at(remote, commit) + "\n")
    opened = run_sops(["decrypt", str(copy)], remote.key.path)
    assert opened.returncode == 0, opened.stderr
    return opened.stdout


@pytest.fixture
def daemon(remote: Remote, tmp_path: Path, notify: NotifySocket) -> Iterator[Daemon]:
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as running:
        notify.wait_for("READY=1")
        yield running


def test_every_write_of_the_reference_api(remote: Remote, daemon: Daemon, tmp_path: Path) -> None:
    """Add, update, delete: each answered as the reference says once applied, each a
    commit by the key's name that keeps the YAML as written and that sops opens."""
    first = _head(remote)
    added = _call(remote.port, "POST", CREDENTIALS, {"smtp_credential": BACKUP})
    assert added.status == 201, added.text
    assert added.body == {
        "id": "backup-relay",
        "label": "Backup relay",
        "from_email": "ada@example.com",
        "from_name": "Ada",
        "smtp_host": "smtp.postmark.example",
        "smtp_port": 587,
        "daily_limit": 100,
        "reply_detection": False,
    }
    assert added.headers["location"] == f"{CREDENTIALS}/backup-relay"
    commit = added.headers["mailopsd-commit"]
    assert _head(remote) == commit
    assert _git("rev-parse", f"{commit}^", cwd=remote.bare) == first
    assert daemon.git()["applied_commit"] == commit
    assert _credentials(daemon)["backup-relay"]["daily_limit"] == 100
    author = _git("log", "-1", "--format=%an <%ae>", commit, cwd=remote.bare)
    assert author == "ci-bot <ci-bot@api.mailopsd.invalid>"
    message = _git("log", "-1", "--format=%B", commit, cwd=remote.bare)
    assert message.startswith(
        "Add SMTP credential acme-q4/backup-relay\n\nPOST /campaigns/acme-q4/smtp_credentials\n"
    )
    assert '"smtp_password": "(set, not shown)"' in message
    text = _file_at(remote, commit)
    assert COMMENT in text  # the file as written, with the new entry after the first
    assert text.index("      primary:") < text.index("      backup-relay:")
    opened = _sops_opens(remote, commit, tmp_path)
    assert f"smtp_password: {NEW_PASSWORD}" in opened
    assert f"smtp_username: {NEW_LOGIN}" in opened

    read = _call(remote.port, "GET", f"{CREDENTIALS}/backup-relay", key=READ_KEY)
    assert (read.status, read.body["status"]) == (200, "enabled")

    changed = _call(
        remote.port,
        "PATCH",
        f"{CREDENTIALS}/backup-relay",
        {"smtp_credential": {"daily_limit": 500}},
    )
    assert (changed.status, changed.body["daily_limit"]) == (200, 500), changed.text
    assert _credentials(daemon)["backup-relay"]["daily_limit"] == 500
    assert "daily_limit: 500" in _sops_opens(remote, changed.headers["mailopsd-commit"], tmp_path)
    message = _git("log", "-1", "--format=%B", "main", cwd=remote.bare)
    assert message.startswith("Update SMTP credential acme-q4/backup-relay\n")
    assert '{"smtp_credential": {"daily_limit": 500}}' in message

    deleted = _call(remote.port, "DELETE", f"{CREDENTIALS}/backup-relay")
    assert (deleted.status, deleted.text) == (204, "")
    assert "backup-relay" not in _credentials(daemon)
    final = _head(remote)
    assert deleted.headers["mailopsd-commit"] == final
    assert _sops_opens(remote, final, tmp_path).count("smtp_password:") == 1

    history = _git("log", "-p", "--format=%an %s", "main", cwd=remote.bare)
    shown = history + daemon.log.read_text() + added.text + changed.text + deleted.text
    for secret in SECRETS:
        assert secret not in shown
    assert daemon.process.poll() is None


def test_refused_writes_change_nothing(remote: Remote, daemon: Daemon) -> None:
    """A read key, a missing campaign or credential, missing fields, a weak password,
    a value the config refuses: each answered as the reference says, no commit made."""
    head = _head(remote)
    forbidden = _call(remote.port, "POST", CREDENTIALS, {"smtp_credential": BACKUP}, key=READ_KEY)
    assert forbidden.status == 403
    assert forbidden.body["error"]["code"] == "forbidden"
    assert (
        'the API key "dashboard" may only read (scope: read)' in forbidden.body["error"]["message"]
    )

    missing = _call(remote.port, "POST", "/campaigns/nope/smtp_credentials", {"x": 1})
    assert (missing.status, missing.body["error"]["code"]) == (404, "campaign_not_found")
    unknown = _call(
        remote.port, "PATCH", f"{CREDENTIALS}/nope", {"smtp_credential": {"daily_limit": 5}}
    )
    assert (unknown.status, unknown.body["error"]["code"]) == (404, "smtp_credential_not_found")

    partial = _call(
        remote.port, "POST", CREDENTIALS, {"smtp_credential": {"label": "x", "smtp_port": "587"}}
    )
    assert partial.status == 422
    assert partial.body["error"]["code"] == "validation_failed"
    errors = {error["field"]: error["message"] for error in partial.body["error"]["errors"]}
    assert errors == {
        "smtp_host": "required",
        "smtp_port": "must be an integer",
        "smtp_username": "required",
        "smtp_password": "required",
        "from_name": "required",
        "from_email": "required",
        "daily_limit": "required",
    }

    weak = _call(
        remote.port,
        "POST",
        CREDENTIALS,
        {"smtp_credential": {**BACKUP, "smtp_password": "password123"}},
    )
    assert weak.status == 422
    [error] = weak.body["error"]["errors"]
    assert error["field"] == "smtp_password"
    assert "bits of estimated entropy, under 64" in error["message"]
    assert "password123" not in weak.text

    zero = _call(
        remote.port,
        "PATCH",
        f"{CREDENTIALS}/primary",
        {"smtp_credential": {"daily_limit": 0, "from_email": "not an address"}},
    )
    assert zero.status == 422, zero.text
    errors = {error["field"]: error["message"] for error in zero.body["error"]["errors"]}
    assert errors["daily_limit"] == "must be an integer ≥ 1 (got 0)"
    assert "from_email" in errors

    not_json = _call(remote.port, "PATCH", f"{CREDENTIALS}/primary", None)
    assert not_json.status == 422  # no body: the envelope is required
    assert _head(remote) == head
    assert _git("for-each-ref", "--format=%(refname)", cwd=remote.bare) == "refs/heads/main"
    log = daemon.log.read_text()
    assert "api write refused key=dashboard status=403 code=forbidden" in log
    assert "api write refused key=ci-bot status=422 code=validation_failed" in log
    for secret in SECRETS:
        assert secret not in log


def test_reenable_sets_reenabled_at_and_the_credential_sends_again(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """An auto-disabled credential (disabled in the daemon's state) is re-enabled by the
    API as by ``mailopsd reenable``: reenabled_at in its YAML, committed, applied."""
    state = tmp_path / "state"
    state.mkdir()
    disabled = CredentialState(  # type: ignore[arg-type]
        disabled_at="2026-11-20T08:30:00Z", disabled_reason="bounce rate 7.1% (10/140) > 5%"
    )
    save_state(state, StateFile(credentials={"acme-q4/primary": disabled}))
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        assert _credentials(daemon)["primary"]["state"] == "disabled"
        answer = _call(remote.port, "POST", f"{CREDENTIALS}/primary/reenable")
        assert answer.status == 200, answer.text
        assert answer.body == {
            "id": "primary",
            "from_email": "ada@example.com",
            "status": "enabled",
        }
        assert _credentials(daemon)["primary"]["state"] != "disabled"
        text = _file_at(remote, _head(remote))
        assert "        reenabled_at: 20" in text
        reenabled = _head(remote)
        assert _git("log", "-1", "--format=%s", "main", cwd=remote.bare) == (
            "Re-enable SMTP credential acme-q4/primary"
        )
        assert "reenabled_at: 20" in _sops_opens(remote, reenabled, tmp_path)
        again = _call(remote.port, "POST", f"{CREDENTIALS}/primary/reenable")
        assert (again.status, again.body["status"]) == (200, "enabled")
        assert _head(remote) == reenabled  # enabled already: nothing committed


def test_branch_mode_pushes_a_review_branch(tmp_path: Path, notify: NotifySocket) -> None:
    """With api.write: branch, a write is a review branch answered 202; main and the
    daemon are unchanged until a person merges it."""
    remote = _remote(tmp_path, "branch")
    head = _head(remote)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        answer = _call(
            remote.port, "PATCH", f"{CREDENTIALS}/primary", {"smtp_credential": {"daily_limit": 7}}
        )
        assert answer.status == 202, answer.text
        branch = answer.body["branch"]
        assert branch.startswith("mailopsd/api/")
        assert branch.endswith("-ci-bot-update-acme-q4-primary")
        assert answer.body["status"] == "pushed"
        assert _git("rev-parse", f"refs/heads/{branch}", cwd=remote.bare) == answer.body["commit"]
        assert _head(remote) == head
        assert _credentials(daemon)["primary"]["daily_limit"] == 100
        assert "daily_limit: 7" in _file_at(remote, branch)


def test_writes_while_another_client_pushes(remote: Remote, daemon: Daemon) -> None:
    """The operator pushes to another file while the API writes: every write answered
    200 is on the remote once, every push of the operator too, and the daemon runs on
    the remote's head."""
    stop = threading.Event()
    pushes: list[str] = []

    def operator() -> None:
        notes = remote.work / "mailops" / "NOTES.md"
        number = 0
        while not stop.is_set():
            number += 1
            _git("pull", "-q", "--rebase", "origin", "main", cwd=remote.work)
            notes.write_text(f"note {number}\n")
            _git("add", "-A", cwd=remote.work)
            _git("commit", "-q", "-m", f"Note {number}", cwd=remote.work)
            if _push_quietly(remote):
                pushes.append(f"Note {number}")
            else:
                _git("reset", "-q", "--hard", "origin/main", cwd=remote.work)
            stop.wait(0.05)

    thread = threading.Thread(target=operator)
    thread.start()
    answers = []
    try:
        for limit in range(101, 109):
            answers.append(
                _call(
                    remote.port,
                    "PATCH",
                    f"{CREDENTIALS}/primary",
                    {"smtp_credential": {"daily_limit": limit}},
                )
            )
    finally:
        stop.set()
        thread.join()
    assert {answer.status for answer in answers} <= {200, 409}, [
        a.text for a in answers if a.status not in (200, 409)
    ]
    assert any(answer.status == 200 for answer in answers)
    subjects = _git("log", "--format=%s", "main", cwd=remote.bare).splitlines()
    for pushed in pushes:
        assert subjects.count(pushed) == 1
    updates = [s for s in subjects if s.startswith("Update SMTP credential")]
    assert len(updates) == sum(answer.status == 200 for answer in answers)
    last = max(
        limit
        for limit, answer in zip(range(101, 109), answers, strict=True)
        if answer.status == 200
    )
    assert f"daily_limit: {last}" in _file_at(remote, _head(remote))
    assert daemon.hook(b"{}") == 202
    daemon.applied(_head(remote))
    assert daemon.limit() == last


def _push_quietly(remote: Remote) -> bool:
    """Push the operator's commit; False when the branch moved first."""
    done = subprocess.run(
        ["git", "push", "-q", "origin", "main"],  # noqa: S607 - git from PATH
        cwd=remote.work,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.returncode == 0


def _hook(remote: Remote, name: str, gate: Path) -> None:
    """A hook of the remote that marks its start, then waits for ``gate`` to exist."""
    hook = remote.bare / "hooks" / name
    hook.write_text(
        "#!/bin/sh\n"
        f"touch {gate}.entered\n"
        f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
        + ("exit 1\n" if name == "pre-receive" else "exit 0\n")
    )
    hook.chmod(0o755)


@pytest.mark.parametrize("hook", ["pre-receive", "post-receive"])
def test_a_kill_amid_a_write_loses_nothing_and_applies_once(
    remote: Remote, tmp_path: Path, notify: NotifySocket, hook: str
) -> None:
    """SIGKILL between commit and push (the push is held by the remote), or between push
    and apply (the remote has the commit, the daemon not yet): after a restart the remote
    and the daemon agree, and the client's retry is applied once."""
    gate = tmp_path / "gate"
    _hook(remote, hook, gate)
    body = {"smtp_credential": {"daily_limit": 321}}
    path = f"{CREDENTIALS}/primary"
    outcome: list[Answer | BaseException] = []

    def client() -> None:
        try:
            outcome.append(_call(remote.port, "PATCH", path, body))
        except (OSError, http.client.HTTPException) as err:
            outcome.append(err)

    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1")
        thread = threading.Thread(target=client)
        thread.start()
        poll_until(
            lambda: Path(f"{gate}.entered").exists(),
            timeout_s=WAIT_S,
            interval_s=0.05,
            what=f"the remote's {hook} hook reached",
        )
        daemon.process.kill()
        daemon.process.wait()
        gate.touch()  # the remote finishes: refuses the push (pre) or has it (post)
        thread.join(WAIT_S)
    assert not thread.is_alive(), "the client was left waiting"
    [got] = outcome
    assert not isinstance(got, Answer) or got.status == 503, got  # never a success
    (remote.bare / "hooks" / hook).unlink()
    pushed = _head(remote)
    updates = _git("log", "--format=%s", "main", cwd=remote.bare).count("Update SMTP credential")
    assert updates == (1 if hook == "post-receive" else 0)

    before = len(notify.messages)
    with _following(remote, tmp_path, notify, "--git-interval", "3600") as daemon:
        notify.wait_for("READY=1", after=before)
        daemon.applied(pushed)  # what the remote has (a head newer than the applied
        # commit is taken in by the first tick after READY=1), and no more
        assert daemon.limit() == (321 if hook == "post-receive" else 100)
        retry = _call(remote.port, "PATCH", path, body)  # the client sends it again
        assert (retry.status, retry.body["daily_limit"]) == (200, 321), retry.text
        assert daemon.limit() == 321
        head = _head(remote)
        assert daemon.git()["applied_commit"] == head
    log = _git("log", "--format=%s", "main", cwd=remote.bare)
    assert log.count("Update SMTP credential acme-q4/primary") == 1
    clone = tmp_path / "state" / "git" / "write" / "clone"
    assert _git("status", "--porcelain", cwd=clone) == ""


WRITE_OPERATIONS = [
    ("/campaigns/{campaign_id}/smtp_credentials", "POST"),
    ("/campaigns/{campaign_id}/smtp_credentials/{id}", "PATCH"),
    ("/campaigns/{campaign_id}/smtp_credentials/{id}/reenable", "POST"),
    ("/campaigns/{campaign_id}/smtp_credentials/{id}", "DELETE"),
]


@pytest.mark.parametrize(("path", "method"), WRITE_OPERATIONS)
def test_writes_answer_as_documented(
    remote: Remote, daemon: Daemon, path: str, method: str
) -> None:
    """schemathesis' requests to each write, with the write key, against the served
    OpenAPI document: every answer is one it documents, none a server error, and the
    remote's head is what the daemon runs on."""
    base_url = f"http://127.0.0.1:{remote.port}"
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    operation = schema[path][method]
    known = {"campaign_id": "acme-q4", "id": "primary"}
    if method == "DELETE":  # the campaign's only credential cannot go (422): another can
        added = _call(remote.port, "POST", CREDENTIALS, {"smtp_credential": BACKUP})
        assert added.status == 201, added.text
        known["id"] = added.body["id"]
    known = {name: value for name, value in known.items() if f"{{{name}}}" in path}
    cases = operation.as_strategy() | operation.as_strategy(path_parameters=known)
    statuses: list[int] = []

    @given(case=cases)
    @settings(
        max_examples=12,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def check(case: Case) -> None:
        response = case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {WRITE_KEY}"},
            checks=CHECKS,
            timeout=WAIT_S * 3,
        )
        statuses.append(response.status_code)
        for secret in SECRETS:
            assert secret not in response.text

    check()
    if (path, method) != WRITE_OPERATIONS[0]:  # a generated password is seldom strong
        assert any(200 <= status < 300 for status in statuses), statuses
    assert daemon.hook(b"{}") == 202
    daemon.applied(_head(remote))


def test_a_daemon_that_applies_signed_commits_only_writes_review_branches(
    remote: Remote, tmp_path: Path, notify: NotifySocket
) -> None:
    """With --git-allowed-signers, an API commit (unsigned) would never be applied: a
    write says so and changes nothing, and names what works instead."""
    key = tmp_path / "signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "op", "-f", str(key)],  # noqa: S607
        check=True,
        timeout=30,
    )
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"operator@example.com {Path(f'{key}.pub').read_text().strip()}\n")
    remote.edit("daily_limit: 100", "daily_limit: 101")
    head = remote.push("Signed", sign=key)
    options = ("--git-interval", "3600", "--git-allowed-signers", str(signers))
    with _following(remote, tmp_path, notify, *options) as daemon:
        notify.wait_for("READY=1")
        answer = _call(
            remote.port, "PATCH", f"{CREDENTIALS}/primary", {"smtp_credential": {"daily_limit": 7}}
        )
        assert answer.status == 405
        assert answer.body["error"]["message"] == (
            "this daemon applies only signed commits (--git-allowed-signers), and an API "
            "write's commit is not signed: set api.write: branch, and merge its review "
            "branch with a signed commit"
        )
        assert _head(remote) == head
        assert daemon.limit() == 101
