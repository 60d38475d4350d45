"""The local copy of a git remote: fetch, verify and the work tree, on real repositories."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from mailopsd.remote import RemoteError, Repository, Source, redact_url
from tests.unit.remote.upstream import (
    TOKEN,
    Upstream,
    daemon_environment,
    logging_git,
    run_git,
    serving,
)


def _free_port() -> int:
    """A loopback port nothing listens on (taken and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair, ``name`` and ``name.pub``, without a passphrase."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path), "-C", name],  # noqa: S607
        capture_output=True,
        check=True,
        timeout=30,
    )
    return path


def _allowed_signers(path: Path, principal: str, key: Path) -> Path:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    path.write_text(f"{principal} {kind} {blob}\n")
    return path


def _repository(
    tmp_path: Path,
    url: str,
    *,
    environment: dict[str, str] | None = None,
    fetch_timeout_s: float = 30,
    **source: object,
) -> Repository:
    return Repository(
        tmp_path / "state" / "git",
        Source(url=url, branch=str(source.pop("branch", "main")), **source),  # type: ignore[arg-type]
        environment or daemon_environment(tmp_path),
        fetch_timeout_s=fetch_timeout_s,
    )


def _git_status(tree: Path) -> tuple[str, str]:
    env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tree)}
    return (
        run_git(env, "-C", str(tree), "rev-parse", "HEAD"),
        run_git(env, "-C", str(tree), "status", "--porcelain"),
    )


@contextlib.contextmanager
def _token_server(directory: Path, token: str) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` over dumb HTTP on loopback to requests bearing ``token``."""
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_error(401)
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/", seen


class TestFetch:
    def test_fetch_after_a_push_gives_the_new_and_the_previous_head(
        self, tmp_path: Path, upstream: Upstream
    ) -> None:
        """The first fetch has no previous head; after a push the next one names both."""
        first = upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        assert repository.fetched() is None
        fetched = repository.fetch()
        assert (fetched.commit, fetched.previous, fetched.rewritten) == (first, None, False)
        second = upstream.commit({"campaigns.yaml": "a: 2\n"})
        upstream.push()
        fetched = repository.fetch()
        assert (fetched.commit, fetched.previous, fetched.rewritten) == (second, first, False)
        assert repository.fetched() == second
        assert repository.fetch().previous == second  # nothing new: the same head again

    def test_force_push_is_reported_as_rewritten(self, tmp_path: Path, upstream: Upstream) -> None:
        """A force-push replacing the last commit gives rewritten=True and the lost head."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        last = upstream.commit({"campaigns.yaml": "a: 2\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        repository.fetch()
        replaced = upstream.commit({"campaigns.yaml": "a: 3\n"}, amend=True)
        upstream.push(force=True)
        fetched = repository.fetch()
        assert (fetched.commit, fetched.previous, fetched.rewritten) == (replaced, last, True)

    def test_local_copy_is_private_and_keeps_no_url(
        self, tmp_path: Path, upstream: Upstream
    ) -> None:
        """The copy's directory is 0700; nothing waits to be read before the first fetch."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        assert repository.fetched() is None
        assert not (tmp_path / "state").exists()
        repository.fetch()
        assert (tmp_path / "state" / "git").stat().st_mode & 0o777 == 0o700
        copy = tmp_path / "state" / "git" / "repo.git"
        assert str(upstream.bare) not in (copy / "config").read_text()
        assert not (copy / "FETCH_HEAD").exists()

    def test_missing_branch(self, tmp_path: Path, upstream: Upstream) -> None:
        """A branch the remote lacks: one line naming the branch, the URL and git's reason."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare), branch="prod")
        with pytest.raises(RemoteError) as caught:
            repository.fetch()
        assert str(caught.value) == (
            f"cannot fetch branch 'prod' of {upstream.bare}: fatal: couldn't find remote ref "
            "refs/heads/prod; check the URL, the branch and the credentials"
        )

    def test_unreachable_url(self, tmp_path: Path) -> None:
        """A remote that is not there: one line naming the URL, git's reason, no advice."""
        url = str(tmp_path / "nowhere.git")
        with pytest.raises(RemoteError) as caught:
            _repository(tmp_path, url).fetch()
        assert str(caught.value) == (
            f"cannot fetch branch 'main' of {url}: fatal: '{url}' does not appear to be a git "
            "repository; check the URL, the branch and the credentials"
        )

    def test_password_in_url_is_left_out(self, tmp_path: Path) -> None:
        """A password in the URL appears nowhere in the message; the user name does."""
        port = _free_port()
        url = f"http://deploy:pa55-w0rd@127.0.0.1:{port}/config.git"
        with pytest.raises(RemoteError) as caught:
            _repository(tmp_path, url).fetch()
        message = str(caught.value)
        assert message.startswith(
            f"cannot fetch branch 'main' of http://deploy@127.0.0.1:{port}/config.git: "
        )
        assert "Failed to connect" in message
        assert "pa55-w0rd" not in message
        assert "\n" not in message

    def test_silent_remote_times_out(self, tmp_path: Path) -> None:
        """A server that never answers: the fetch is killed at its timeout, with a message."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/config.git"
            repository = _repository(tmp_path, url, fetch_timeout_s=0.5)
            started = time.monotonic()
            with pytest.raises(RemoteError) as caught:
                repository.fetch()
        assert time.monotonic() - started < 10
        assert str(caught.value) == (
            f"cannot fetch branch 'main' of {url}: no answer within 0.5 s; "
            "check the URL, the branch and the credentials"
        )

    def test_ssh_key_reaches_ssh(self, tmp_path: Path) -> None:
        """The key (its path has a space) is given to ssh, which runs in batch mode."""
        keys = tmp_path / "deploy keys"
        keys.mkdir()
        key = _key(keys, "deploy")
        port = _free_port()
        trace = tmp_path / "trace.log"
        url = f"ssh://git@127.0.0.1:{port}/config.git"
        environment = daemon_environment(tmp_path, GIT_TRACE=str(trace))
        repository = _repository(tmp_path, url, environment=environment, ssh_key=key)
        with pytest.raises(RemoteError, match=f"connect to host 127.0.0.1 port {port}"):
            repository.fetch()
        assert "IdentitiesOnly=yes -o BatchMode=yes" in trace.read_text()


class TestToken:
    def test_token_is_sent_and_never_shown(self, tmp_path: Path, upstream: Upstream) -> None:
        """The token authorizes the fetch, yet is in no git command line, file or message."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        (tmp_path / "token").write_text(f"{TOKEN}\n")
        trace, argvs = tmp_path / "trace.log", tmp_path / "argv.log"
        environment = daemon_environment(
            tmp_path, GIT_TRACE=str(trace), PATH=logging_git(tmp_path / "bin", argvs)
        )
        with _token_server(upstream.bare, TOKEN) as (url, seen):
            repository = _repository(
                tmp_path, url, environment=environment, token_file=tmp_path / "token"
            )
            assert repository.fetch().commit == head
        assert f"Bearer {TOKEN}" in seen
        assert (
            f"fetch --force --no-tags --quiet --no-write-fetch-head -- {url}" in argvs.read_text()
        )
        assert "run_command: git-remote-http" in trace.read_text()  # and its helpers' argv
        assert TOKEN not in argvs.read_text()
        assert TOKEN not in trace.read_text()
        for path in (tmp_path / "state").rglob("*"):
            assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path

    def test_refused_token_is_not_in_the_message(self, tmp_path: Path, upstream: Upstream) -> None:
        """A token the server refuses: the message says so without quoting the token."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        (tmp_path / "token").write_text(TOKEN)
        with _token_server(upstream.bare, "another-token") as (url, seen):
            repository = _repository(tmp_path, url, token_file=tmp_path / "token")
            with pytest.raises(RemoteError) as caught:
                repository.fetch()
        assert seen[0] == f"Bearer {TOKEN}"
        message = str(caught.value)
        assert message.startswith(f"cannot fetch branch 'main' of {url}: fatal: ")
        assert "\n" not in message
        assert TOKEN not in message

    def test_empty_token_file(self, tmp_path: Path) -> None:
        """An empty token file is refused before any connection, naming the file."""
        (tmp_path / "token").write_text("\n")
        repository = _repository(
            tmp_path, "https://git.invalid/c.git", token_file=tmp_path / "token"
        )
        with pytest.raises(RemoteError, match=r"token file .*token is empty"):
            repository.fetch()


class TestSwitch:
    def test_the_tree_holds_each_commit_in_turn(self, tmp_path: Path, upstream: Upstream) -> None:
        """One tree, switched from commit to commit: a file unchanged is not rewritten,
        one removed is gone, and git sees the tree clean at the commit."""
        first = upstream.commit({"campaigns.yaml": "a: 1\n", "leads.csv": "email\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        repository.fetch()
        assert repository.current() is None
        tree = repository.switch(first)
        assert tree == tmp_path / "state" / "git" / "tree"
        inode = (tree / "campaigns.yaml").stat().st_ino
        upstream.git("rm", "--quiet", "leads.csv")
        second = upstream.commit({"body.txt": "Hi\n"})
        upstream.push()
        repository.fetch()
        assert repository.switch(second) == tree
        assert (tree / "campaigns.yaml").stat().st_ino == inode
        assert not (tree / "leads.csv").exists()
        assert (tree / "body.txt").read_text() == "Hi\n"
        assert _git_status(tree) == (second, "")
        assert repository.current() == second
        repository.switch(first)
        assert (tree / "leads.csv").read_text() == "email\n"
        assert repository.current() == first

    def test_subdirectory(self, tmp_path: Path, upstream: Upstream) -> None:
        """With a path, the tree's subdirectory is returned; the tree is still whole."""
        head = upstream.commit({"deploy/prod/campaigns.yaml": "a: 1\n", "README": "r\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare), path="deploy/prod/")
        repository.fetch()
        config = repository.switch(head)
        assert config == tmp_path / "state" / "git" / "tree" / "deploy" / "prod"
        assert (config / "campaigns.yaml").read_text() == "a: 1\n"
        assert _git_status(config) == (head, "")

    @pytest.mark.parametrize("path", ["deploy/staging", "README", "../elsewhere"])
    def test_path_not_a_directory(self, tmp_path: Path, upstream: Upstream, path: str) -> None:
        """A path missing from the commit (or a file, or outside) names the path and commit."""
        head = upstream.commit({"deploy/prod/campaigns.yaml": "a: 1\n", "README": "r\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare), path=path)
        repository.fetch()
        with pytest.raises(RemoteError) as caught:
            repository.switch(head)
        assert str(caught.value).startswith(
            f"path {path!r} is not a directory in commit {head[:12]} of {upstream.bare}"
        )
        assert repository.current() is None

    def test_unfetched_commit(self, tmp_path: Path, upstream: Upstream) -> None:
        """A commit the local copy lacks is refused with the next step."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        repository.fetch()
        later = upstream.commit({"campaigns.yaml": "a: 2\n"})
        with pytest.raises(RemoteError, match=f"commit {later[:12]} is not in the local copy"):
            repository.switch(later)

    def test_not_a_sha_is_refused(self, tmp_path: Path, upstream: Upstream) -> None:
        """Only a full sha is checked out: anything else (a path, a branch) is a caller's bug."""
        repository = _repository(tmp_path, str(upstream.bare))
        with pytest.raises(ValueError, match="not a full commit sha"):
            repository.switch("../../escape")
        with pytest.raises(RemoteError, match="is not in the local copy"):
            repository.switch("0" * 40)  # nothing fetched yet

    def test_a_broken_tree_is_made_again(self, tmp_path: Path, upstream: Upstream) -> None:
        """A tree a crash left without its index, a file missing and a stray one, is redone."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n", "leads.csv": "email\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        repository.fetch()
        tree = repository.switch(head)
        (tmp_path / "state" / "git" / "repo.git" / "worktrees" / "tree" / "index").unlink()
        (tree / "leads.csv").unlink()
        (tree / "campaigns.yaml.tmp").write_text("partial")
        assert repository.switch(head) == tree
        assert (tree / "leads.csv").read_text() == "email\n"
        assert not (tree / "campaigns.yaml.tmp").exists()
        assert _git_status(tree) == (head, "")

    def test_a_directory_without_git_is_made_again(
        self, tmp_path: Path, upstream: Upstream
    ) -> None:
        """A tree's directory holding only leftovers (no .git) is replaced by the real tree."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n"})
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare))
        repository.fetch()
        leftover = tmp_path / "state" / "git" / "tree"
        leftover.mkdir(parents=True)
        (leftover / "campaigns.yaml").write_text("half")
        tree = repository.switch(head)
        assert (tree / "campaigns.yaml").read_text() == "a: 1\n"
        assert _git_status(tree) == (head, "")


class TestVerify:
    @pytest.fixture
    def keys(self, tmp_path: Path) -> tuple[Path, Path, Path]:
        """An allowed key, another key, and an allowed_signers file listing the first."""
        allowed, other = _key(tmp_path, "allowed"), _key(tmp_path, "other")
        # the principal need not be the committer's email: git finds it by the key
        signers = _allowed_signers(tmp_path / "allowed_signers", "release-signer", allowed)
        return allowed, other, signers

    def _fetched(self, tmp_path: Path, upstream: Upstream, signers: Path | None) -> Repository:
        upstream.push()
        repository = _repository(tmp_path, str(upstream.bare), allowed_signers=signers)
        repository.fetch()
        return repository

    def test_signed_by_an_allowed_key(
        self, tmp_path: Path, upstream: Upstream, keys: tuple[Path, Path, Path]
    ) -> None:
        """A commit signed by a key in allowed_signers passes."""
        allowed, _, signers = keys
        head = upstream.commit({"campaigns.yaml": "a: 1\n"}, key=allowed)
        assert self._fetched(tmp_path, upstream, signers).verify(head) is None

    def test_unsigned(
        self, tmp_path: Path, upstream: Upstream, keys: tuple[Path, Path, Path]
    ) -> None:
        """An unsigned commit fails, saying so."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n"})
        reason = self._fetched(tmp_path, upstream, keys[2]).verify(head)
        assert reason == f"commit {head[:12]} is not signed"

    def test_signed_by_another_key(
        self, tmp_path: Path, upstream: Upstream, keys: tuple[Path, Path, Path]
    ) -> None:
        """A good signature by a key not in allowed_signers fails, naming the file."""
        _, other, signers = keys
        head = upstream.commit({"campaigns.yaml": "a: 1\n"}, key=other)
        reason = self._fetched(tmp_path, upstream, signers).verify(head)
        assert reason == f"commit {head[:12]} is signed by a key not in {signers}"

    def test_not_an_ssh_signature(
        self, tmp_path: Path, upstream: Upstream, keys: tuple[Path, Path, Path]
    ) -> None:
        """A PGP signature is refused unchecked: git would trust the daemon's gpg keyring."""
        upstream.commit({"campaigns.yaml": "a: 1\n"})
        raw = upstream.git("cat-file", "commit", "HEAD").split("\n\n", 1)
        pgp = "gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQ==\n -----END PGP SIGNATURE-----"
        signed = f"{raw[0]}\n{pgp}\n\n{raw[1]}\n"
        (tmp_path / "commit.txt").write_text(signed)
        head = upstream.git("hash-object", "-t", "commit", "-w", str(tmp_path / "commit.txt"))
        upstream.git("update-ref", "refs/heads/main", head)
        reason = self._fetched(tmp_path, upstream, keys[2]).verify(head)
        assert (
            reason
            == f"commit {head[:12]} is not signed with an SSH key (only SSH signatures count)"
        )

    def test_unreadable_allowed_signers(
        self, tmp_path: Path, upstream: Upstream, keys: tuple[Path, Path, Path]
    ) -> None:
        """A missing allowed_signers file fails the commit, naming the file."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n"}, key=keys[0])
        missing = tmp_path / "missing_signers"
        reason = self._fetched(tmp_path, upstream, missing).verify(head)
        assert reason == (
            f"commit {head[:12]} cannot be checked: cannot read {missing}: "
            "No such file or directory"
        )

    def test_no_allowed_signers_checks_nothing(self, tmp_path: Path, upstream: Upstream) -> None:
        """Without allowed_signers every commit passes, signed or not."""
        head = upstream.commit({"campaigns.yaml": "a: 1\n"})
        assert self._fetched(tmp_path, upstream, None).verify(head) is None


class TestRedactUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://ci:s3cret@git.example.com/c.git", "https://ci@git.example.com/c.git"),
            ("https://:s3cret@git.example.com/c.git", "https://@git.example.com/c.git"),
            ("https://ci@git.example.com/c.git", "https://ci@git.example.com/c.git"),
            ("git@git.example.com:ops/c.git", "git@git.example.com:ops/c.git"),
            ("/srv/git/c.git", "/srv/git/c.git"),
        ],
    )
    def test_password_removed(self, url: str, shown: str) -> None:
        """Only a password in a URL's userinfo is removed; the rest is shown as written."""
        assert redact_url(url) == shown
