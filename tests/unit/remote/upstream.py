"""A remote to follow and write to, on real repositories: the Upstream and its helpers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

TOKEN = "tok-3f9a1c7e5b2d4068"  # noqa: S105 - a made-up token to look for


def run_git(env: dict[str, str], *args: str) -> str:
    """Run git (from PATH, as the daemon runs it); its stdout, stripped."""
    result = subprocess.run(
        ["git", *args],  # noqa: S607 - git from PATH, as the daemon runs it
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


class Upstream:
    """A bare repository (the remote) and a work repository that commits and pushes to it."""

    def __init__(self, root: Path) -> None:
        (root / "home").mkdir()
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(root / "home"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Ada",
            "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada",
            "GIT_COMMITTER_EMAIL": "ada@example.com",
        }
        self.bare = root / "upstream.git"
        self.work = root / "work"
        run_git(self.env, "init", "--quiet", "--bare", "-b", "main", str(self.bare))
        run_git(self.env, "init", "--quiet", "-b", "main", str(self.work))

    def git(self, *args: str) -> str:
        return run_git(self.env, "-C", str(self.work), *args)

    def commit(self, files: dict[str, str], *, key: Path | None = None, amend: bool = False) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "--all")
        options = ["--amend"] if amend else []
        if key is not None:
            options += ["-S"]
            self.git("config", "gpg.format", "ssh")
            self.git("config", "user.signingkey", f"{key}.pub")
        self.git("commit", "--quiet", "--allow-empty", "-m", "change", *options)
        return self.git("rev-parse", "HEAD")

    def push(self, *, force: bool = False) -> None:
        self.git("push", "--quiet", *(["--force"] if force else []), str(self.bare), "main")
        run_git(self.env, "--git-dir", str(self.bare), "update-server-info")  # for dumb HTTP

    def pull(self) -> None:
        """Make the work repository hold the remote's main branch (others pushed to it)."""
        self.git("fetch", "--quiet", str(self.bare), "+main:refs/remotes/upstream/main")
        self.git("reset", "--quiet", "--hard", "refs/remotes/upstream/main")

    def head(self, branch: str = "main") -> str:
        """The remote's head of ``branch``."""
        return run_git(self.env, "--git-dir", str(self.bare), "rev-parse", f"refs/heads/{branch}")

    def show(self, commit: str, path: str) -> str:
        """A file's text at a commit of the remote."""
        return run_git(self.env, "--git-dir", str(self.bare), "show", f"{commit}:{path}")


def daemon_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The daemon's environment: PATH, a HOME of its own, and ``extra``."""
    home = tmp_path / "daemon-home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), **extra}


def logging_git(directory: Path, log: Path) -> str:
    """A PATH whose ``git`` writes its argv (global options included) to ``log``, then runs git."""
    directory.mkdir()
    real = shutil.which("git")
    assert real is not None
    wrapper = directory / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port in a thread; its base URL (no slash).

    The server is shut down and its thread joined on the way out.
    """
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
