"""README's "Install as a service", run as written under a real systemd in a container.

The test takes the section's ``sh`` blocks from README.md and runs each one where its
first line says: "# on the server" inside a container booted with systemd-nspawn over
this machine's own OS (a throwaway overlay: nothing it writes reaches the machine), "# in
your config repository" in a clone of an operator's config repository made by the test.
Between blocks it does what the prose asks a person to do (put the server's recipient in
``.sops.yaml``; push a change before the pull). What the operator would look at, the
command output, the unit's state, the sandbox copy and ``status``, is what it asserts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailopsd.config.models import SECRET_FIELDS
from tests.configs import BASE, CANARY, LEADS
from tests.waiting import poll_until

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = "## Install as a service"

# The placeholder address of the operator's config repository, and where the test's is.
REPOSITORY_URL = "https://git.example.com/you/mailops-config.git"
REMOTE_DIR = "/srv/git"
REMOTE = f"{REMOTE_DIR}/mailops-config.git"
SOURCE = "/usr/local/src/mailopsd"  # the checkout of mailopsd, in the container

# A root login shell on a fresh Debian: no variables of this test run leak in.
SERVER_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
)
# A mount namespace of the container's own, where "$1" gets / without its submounts.
UNSHARE = ("unshare", "--mount", "--propagation", "private", "sh", "-euc")
WAIT_S = 60.0
STEP_TIMEOUT_S = 300

CONFIG = BASE.replace("leads: leads.csv", "leads: leads/acme-q4.csv") + "        status: sandbox\n"
SECRET_RULE = f"^({'|'.join(sorted(SECRET_FIELDS))})$"  # what the demo .sops.yaml encrypts


@dataclass(frozen=True)
class Block:
    """One ``sh`` block of the section: where it runs, and its commands."""

    where: str
    script: str

    @property
    def on_server(self) -> bool:
        return self.where.startswith("on the server")

    @property
    def in_source(self) -> bool:
        return "checkout of mailopsd" in self.where


def install_blocks() -> list[Block]:
    """The ``sh`` blocks under the section's heading, with their "# where" first line."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks = []
    for match in re.finditer(r"^( *)```sh\n(.*?)^\1```$", section, re.MULTILINE | re.DOTALL):
        indent = len(match.group(1))
        lines = [line[indent:] for line in match.group(2).splitlines()]
        assert lines[:1] != [], "an empty sh block"
        assert lines[0].startswith("# "), f"a block without a '# where' line: {lines}"
        blocks.append(Block(lines[0][2:], "\n".join(lines[1:]) + "\n"))
    return blocks


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT_S,
        **kwargs,  # type: ignore[arg-type]
    )


class Container:
    """systemd booted by systemd-nspawn over this machine's root, on a throwaway overlay.

    ``/`` is bound without its submounts in a mount namespace of its own, so the
    container sees the OS as installed; ``--volatile=overlay`` keeps every write in
    memory. ``/etc/systemd/system`` is an empty directory of the test's: the machine's
    own enabled services stay off, and the README's unit is the only one installed.
    """

    def __init__(self, scratch: Path, binds: dict[str, Path]) -> None:
        root = scratch / "root"
        root.mkdir()
        self.log = scratch / "boot.log"
        nspawn = [
            "systemd-nspawn",
            f"--directory={root}",
            "--volatile=overlay",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--machine=mailopsd-install",
            *(f"--bind={source}:{target}" for target, source in binds.items()),
            "--boot",
        ]
        with self.log.open("w") as stream:
            self.process = subprocess.Popen(
                [*UNSHARE, 'mount --bind / "$1"; shift; exec "$@"', "sh", str(root), *nspawn],
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        self.leader = self._wait_for_init()

    def _wait_for_init(self) -> int:
        deadline = time.monotonic() + WAIT_S
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            for pid in children.read_text().split() if children.exists() else []:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            time.sleep(0.1)
        raise AssertionError(f"the container's systemd did not start: {self.log.read_text()}")

    def shell(self, script: str, cwd: str = "/root") -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash as root in the container, in a login-like environment."""
        return _run(
            [
                *("nsenter", f"--target={self.leader}", "--all", "env", "-i", *SERVER_ENV),
                *("bash", "-euo", "pipefail", "-c", f"cd {cwd}\n{script}"),
            ]
        )

    def wait_until_booted(self) -> None:
        """Wait until systemd has finished starting the container's boot units."""
        deadline = time.monotonic() + WAIT_S
        while True:  # until its manager answers at all, systemctl cannot wait on it
            state = self.shell("systemctl is-system-running --wait || true")
            if state.stdout.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state.stdout.strip() == "running", state.stdout + state.stderr + self.log.read_text()

    def stop(self) -> None:
        """Power the container off (SIGTERM to systemd-nspawn), killing it if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Workstation:
    """The operator's own machine: a clone of their config repository and their key."""

    def __init__(self, scratch: Path, remote: Path) -> None:
        self.home = scratch / "home"
        self.clone = scratch / "workstation" / "mailops-config"
        shim = scratch / "bin" / "mailopsd"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mailopsd "$@"\n')
        shim.chmod(0o755)
        self.env = {
            "PATH": f"{shim.parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "PYTHONPATH": str(REPO),
            "LANG": "C.UTF-8",
            "GIT_AUTHOR_NAME": "Ada Operator",
            "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada Operator",
            "GIT_COMMITTER_EMAIL": "ada@example.com",
        }
        self.remote = remote

    def shell(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash in the clone, as the operator."""
        return _run(["bash", "-euo", "pipefail", "-c", script], cwd=self.clone, env=self.env)

    def must(self, script: str) -> str:
        """Run ``script``, which must succeed; return what it printed."""
        done = self.shell(script)
        assert done.returncode == 0, f"{script}\n{done.stdout}{done.stderr}"
        return done.stdout

    def create_repository(self) -> None:
        """The operator's config repository as it is before the install: their key only."""
        (self.home / ".config" / "sops" / "age").mkdir(parents=True)
        (self.clone / "leads").mkdir(parents=True)
        created = _run(["git", "init", "--quiet", "--bare", "-b", "main", str(self.remote)])
        assert created.returncode == 0, created.stderr
        recipient = self.must("mailopsd secrets keygen -o ~/.config/sops/age/keys.txt").strip()
        (self.clone / ".sops.yaml").write_text(
            "creation_rules:\n"
            "  - path_regex: \\.ya?ml$\n"
            f"    age: {recipient}\n"
            f"    encrypted_regex: {SECRET_RULE}\n"
            "    mac_only_encrypted: true\n"
        )
        (self.clone / "acme.yaml").write_text(CONFIG)
        (self.clone / "leads" / "acme-q4.csv").write_text(LEADS)
        self.must("mailopsd secrets encrypt -i acme.yaml")
        self.must(
            f"git init --quiet -b main && git remote add origin {self.remote} && git add -A"
            " && git commit --quiet -m 'ACME Q4 campaign' && git push --quiet -u origin main"
        )

    def add_recipient(self, recipient: str) -> None:
        """What step 3's prose asks: the server's recipient after ours in ``.sops.yaml``."""
        rules = self.clone / ".sops.yaml"
        text = rules.read_text()
        mine = re.search(r"age: (\S+)", text)
        assert mine
        rules.write_text(text.replace(mine.group(0), f"age: {mine.group(1)},{recipient}"))

    def push_change(self, old: str, new: str) -> str:
        """Commit and push an edit of ``acme.yaml``; return the new commit."""
        path = self.clone / "acme.yaml"
        path.write_text(path.read_text().replace(old, new))
        self.must("git commit --quiet -am 'ACME Q4: a higher daily limit' && git push --quiet")
        return self.head()

    def head(self) -> str:
        """The commit the operator last pushed."""
        return self.must("git rev-parse HEAD").strip()


def _copy_source(target: Path) -> None:
    """Copy this checkout of mailopsd (its files as they are now, without .git or .venv)."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[tuple[Container, Workstation]]:
    """A booted server (container) and the operator's workstation with their repository."""
    for tool in ("systemd-nspawn", "nsenter", "unshare", "git"):
        assert shutil.which(tool), f"{tool} is missing: the test command installs it"
    assert os.geteuid() == 0, "booting a container needs root"
    remote = tmp_path / "remote"
    remote.mkdir()
    workstation = Workstation(tmp_path, remote / "mailops-config.git")
    workstation.create_repository()
    source = tmp_path / "src"
    _copy_source(source)
    units = tmp_path / "units"
    units.mkdir()
    binds = {SOURCE: source, REMOTE_DIR: remote, "/etc/systemd/system": units}
    container = Container(tmp_path, binds)
    try:
        container.wait_until_booted()
        yield container, workstation
    finally:
        container.stop()


def _eventually(check: Callable[[], object], what: str) -> None:
    poll_until(check, timeout_s=WAIT_S, interval_s=0.5, what=what)


def _status(server: Container) -> dict[str, object]:
    done = server.shell("/opt/mailopsd/bin/mailopsd status --json --state-dir /var/lib/mailopsd")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _daily_limit(server: Container) -> object:
    campaign = _status(server)["campaigns"][0]  # type: ignore[index]
    return campaign["smtp_credentials"][0]["daily_limit"]


def _sandbox_copies(server: Container) -> list[str]:
    """The messages the sandbox credential "sent": Maildir files in the state directory."""
    where = "/var/lib/mailopsd/sandbox/acme-q4/primary"
    done = server.shell(f'find {where} -type f -exec sh -c \'cat "$1"; printf "\\0"\' sh {{}} \\;')
    return [text for text in done.stdout.split("\0") if text] if done.returncode == 0 else []


def _journal(server: Container) -> str:
    return server.shell("journalctl -u mailopsd --no-pager -o cat").stdout


def _unit_value(key: str) -> str:
    lines = (REPO / "systemd" / "mailopsd.service").read_text().splitlines()
    return next(line for line in lines if line.startswith(f"{key}="))[len(key) + 1 :]


def test_install_section_uses_the_units_paths() -> None:
    """The section puts the key, config and program where the unit looks, copying no demo file."""
    scripts = "".join(block.script for block in install_blocks())
    key = _unit_value("LoadCredential").removeprefix("age-key:")
    program, _, _, config = _unit_value("ExecStart").split()[:4]
    assert f"keygen -o {key}\n" in scripts
    assert f"validate {config} --age-key-file {key}\n" in scripts
    assert f"git clone {REPOSITORY_URL} {config}\n" in scripts
    assert f"python3 -m venv {program.removesuffix('/bin/mailopsd')} " in scripts
    assert f"{program} status --state-dir /var/lib/{_unit_value('StateDirectory')}\n" in scripts
    assert "config/" not in scripts


def test_install_section_runs_as_written(machines: tuple[Container, Workstation]) -> None:
    """Every command of "Install as a service" works as written and the service sends."""
    server, workstation = machines
    blocks = install_blocks()
    assert [b.on_server for b in blocks] == [True, True, False, True, True, True]
    outputs: list[str] = []
    first_commit = pushed = ""
    for block in blocks:
        if " pull" in block.script:
            pushed = workstation.push_change("daily_limit: 100", "daily_limit: 150")
        if block.on_server:
            script = block.script.replace(REPOSITORY_URL, REMOTE)
            done = server.shell(script, SOURCE if block.in_source else "/root")
        else:
            done = workstation.shell(block.script)
        assert done.returncode == 0, (
            f"{block.script}\n{done.stdout}{done.stderr}\n{_journal(server)}"
        )
        outputs.append(done.stdout + done.stderr)
        if "secrets keygen" in block.script:
            workstation.add_recipient(done.stdout.strip().splitlines()[-1])
        if "enable --now" in block.script:
            first_commit = workstation.head()
    keygen, updatekeys, start, look = outputs[1], outputs[2], outputs[3], outputs[4]

    recipient, note = keygen.splitlines()  # the recipient on stdout, a note on stderr
    assert re.fullmatch(r"age1[0-9a-z]{58}", recipient), keygen
    assert note == "wrote a new age identity to /etc/credstore/mailopsd-age-key (mode 0600)"
    assert "acme.yaml: now encrypted for age1" in updatekeys
    assert "ok: 1 campaign, 1 credential" in start
    assert "Active: active (running)" in look
    assert f"revision git:{first_commit[:12]}" in look
    assert "campaign acme-q4 'ACME Q4 outreach'" in look

    _eventually(lambda: bool(_sandbox_copies(server)), "a sandbox copy of the first send")
    assert "To: grace@example.com" in _sandbox_copies(server)[0]

    _eventually(lambda: _daily_limit(server) == 150, "the pulled change to be applied")
    assert _status(server)["revision"] == f"git:{pushed[:12]}"
    assert server.shell("systemctl is-active mailopsd").stdout == "active\n"
    journal = _journal(server)
    assert CANARY not in journal + "".join(outputs), journal


FOLLOW_SECTION = "## Following a git remote"
FOLLOW_URL = "ssh://git@git.example.com/you/mailops-config.git"


def follow_block() -> Block:
    """The drop-in block of "Following a git remote", which replaces the install's step 4."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{FOLLOW_SECTION}\n")
    match = re.search(r"^```sh\n(.*?)^```$", text[start:], re.MULTILINE | re.DOTALL)
    assert match, "no sh block under the section"
    lines = match.group(1).splitlines()
    assert lines[0].startswith("# "), lines
    return Block(lines[0][2:], "\n".join(lines[1:]) + "\n")


def test_following_section_runs_under_systemd(machines: tuple[Container, Workstation]) -> None:
    """The install's steps 1 to 3, then the follow drop-in instead of step 4, as written:
    the service follows the remote (not a checkout), and applies a push.

    What the test changes in the block: the remote is served by ``git daemon`` on
    loopback in the container (git:// needs no SSH: the deploy key is a stand-in file,
    and there is no host to scan); and the fetch interval is 1 second, where a person
    would use the webhook or wait the default minute."""
    server, workstation = machines
    install = install_blocks()
    for block in install[:3]:
        if block.on_server:
            done = server.shell(block.script, SOURCE if block.in_source else "/root")
        else:
            done = workstation.shell(block.script)
        assert done.returncode == 0, f"{block.script}\n{done.stdout}{done.stderr}"
        if "secrets keygen" in block.script:
            workstation.add_recipient(done.stdout.strip().splitlines()[-1])
    block = follow_block()
    assert block.on_server
    assert block.in_source
    assert FOLLOW_URL in block.script
    assert "ssh-keyscan git.example.com > " in block.script
    url = _serve_remote(server)
    script = (
        block.script.replace(FOLLOW_URL, url)
        .replace("ssh-keyscan git.example.com > ", ": > ")
        .replace("--git-branch main", "--git-branch main --git-interval 1")
    )
    stand_in = "install -d -m 0700 ~/.ssh && echo stand-in > ~/.ssh/mailops-deploy-key\n"
    done = server.shell(stand_in + script, SOURCE)
    assert done.returncode == 0, f"{script}\n{done.stdout}{done.stderr}\n{_journal(server)}"

    head = workstation.head()
    _eventually(lambda: _git_state(server).get("applied_commit") == head, "the head applied")
    assert _status(server)["revision"] != ""
    assert server.shell("test -e /etc/mailopsd").returncode != 0  # no checkout is used
    pushed = workstation.push_change("daily_limit: 100", "daily_limit: 150")
    _eventually(lambda: _daily_limit(server) == 150, "the pushed change to be applied")
    assert _git_state(server)["applied_commit"] == pushed
    assert server.shell("systemctl is-active mailopsd").stdout == "active\n"
    journal = _journal(server)
    assert f"git commit applied commit={pushed[:12]}" in journal
    assert CANARY not in journal


def _serve_remote(server: Container) -> str:
    """Serve the remote read-only with ``git daemon`` on loopback; its git:// URL.

    A path would not do: the service's dynamic user does not own the repository, and git
    refuses to read a repository of another owner (``safe.directory``).
    """
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = int(probe.getsockname()[1])
    started = server.shell(
        "systemd-run --unit=git-daemon --quiet /usr/lib/git-core/git-daemon --export-all "
        f"--base-path={REMOTE_DIR} --listen=127.0.0.1 --port={port} --reuseaddr"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"git://127.0.0.1:{port}/{Path(REMOTE).name}"
    _eventually(
        lambda: server.shell(f"git ls-remote {url} >/dev/null 2>&1").returncode == 0,
        "git daemon serving the remote",
    )
    return url


def _git_state(server: Container) -> dict[str, object]:
    found = _status(server).get("git")
    return found if isinstance(found, dict) else {}
