"""The write side of a git remote: edit, check, commit and push, on real repositories."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import mailopsd.remote.writer
from mailopsd.remote import Author, Conflict, Pushed, RemoteError, Source, Writer
from tests.unit.remote.upstream import (
    TOKEN,
    Upstream,
    daemon_environment,
    logging_git,
    run_git,
    serving,
)

AUTHOR = Author(name="ci-bot", email="ci-bot@mailopsd.invalid")
MESSAGE = "api: add credential smtp-3\n\nRequested by ci-bot.\n# not a comment"
REVIEW = "mailopsd/api-20261204-1"


def _writer(
    tmp_path: Path, url: str, *, environment: dict[str, str] | None = None, **source: object
) -> Writer:
    return Writer(
        tmp_path / "state" / "git" / "write",
        Source(url=url, branch="main", **source),  # type: ignore[arg-type]
        environment or daemon_environment(tmp_path),
        push_timeout_s=30,
    )


def _clone(tmp_path: Path) -> Path:
    return tmp_path / "state" / "git" / "write" / "clone"


def _write(files: dict[str, str]) -> Callable[[Path], None]:
    """An edit that writes ``files`` in the config directory."""

    def edit(config: Path) -> None:
        for name, text in files.items():
            (config / name).write_text(text)

    return edit


def _accept(config: Path) -> None:
    """A check that accepts any config."""


def _commit_of(upstream: Upstream, ref: str, pretty: str) -> str:
    """A commit of the remote, shown in a ``git log --format``."""
    return run_git(
        upstream.env, "--git-dir", str(upstream.bare), "log", "-1", f"--format={pretty}", ref
    )


def _other_push(upstream: Upstream, files: dict[str, str]) -> Callable[[Path], None]:
    """A callback that pushes ``files`` from the Upstream's work repository, the first time."""
    pushed: list[str] = []

    def push(config: Path) -> None:
        if not pushed:
            upstream.pull()
            pushed.append(upstream.commit(files))
            upstream.push()

    return push


@pytest.fixture
def remote(upstream: Upstream) -> Upstream:
    """An Upstream whose main branch holds a config in ``mailops/``."""
    upstream.commit({"mailops/c.yaml": "a: 1\nb: 2\n", "README": "r\n"})
    upstream.push()
    return upstream


class TestChange:
    def test_change_is_pushed_as_the_author(self, tmp_path: Path, remote: Upstream) -> None:
        """The edit is committed in the config directory, as the author, with the message."""
        before = remote.head()
        writer = _writer(tmp_path, str(remote.bare), path="mailops")
        seen: list[Path] = []
        pushed = writer.change(
            _write({"c.yaml": "a: 1\nb: 3\n"}), author=AUTHOR, message=MESSAGE, check=seen.append
        )
        assert pushed == Pushed(commit=remote.head(), branch="main", rebased_onto=None)
        assert seen == [_clone(tmp_path) / "mailops"]
        assert remote.show(pushed.commit, "mailops/c.yaml") == "a: 1\nb: 3"
        assert _commit_of(remote, "main", "%an <%ae>|%cn <%ce>|%P") == (
            f"ci-bot <ci-bot@mailopsd.invalid>|ci-bot <ci-bot@mailopsd.invalid>|{before}"
        )
        assert _commit_of(remote, "main", "%B") == MESSAGE
        assert (tmp_path / "state" / "git" / "write").stat().st_mode & 0o777 == 0o700

    def test_clone_keeps_no_url(self, tmp_path: Path, remote: Upstream) -> None:
        """No file of the write clone names the remote (fetch and push go by URL)."""
        _writer(tmp_path, str(remote.bare)).change(
            _write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept
        )
        for path in (tmp_path / "state").rglob("*"):
            assert not path.is_file() or str(remote.bare).encode() not in path.read_bytes(), path

    @pytest.mark.parametrize("failing", ["edit", "check"])
    def test_failure_pushes_nothing(self, tmp_path: Path, remote: Upstream, failing: str) -> None:
        """An edit or check that raises: its exception, nothing pushed, and a next change
        without the failed edit's files."""
        before = remote.head()
        writer = _writer(tmp_path, str(remote.bare))

        def fail(config: Path) -> None:
            (config / "half.yaml").write_text("x")
            raise KeyError("no such credential")

        edit, check = (fail, _accept) if failing == "edit" else (_write({"half": "x"}), fail)
        with pytest.raises(KeyError, match="no such credential"):
            writer.change(edit, author=AUTHOR, message="m", check=check)
        assert remote.head() == before
        pushed = writer.change(_write({"other": "y\n"}), author=AUTHOR, message="m", check=_accept)
        changed = run_git(
            remote.env,
            "--git-dir",
            str(remote.bare),
            "show",
            "--name-only",
            "--format=",
            pushed.commit,
        )
        assert changed == "other"

    def test_no_change_pushes_nothing(self, tmp_path: Path, remote: Upstream) -> None:
        """An edit that leaves the files as they were commits nothing: the head as found."""
        before = remote.head()
        writer = _writer(tmp_path, str(remote.bare), path="mailops")
        pushed = writer.change(
            _write({"c.yaml": "a: 1\nb: 2\n"}), author=AUTHOR, message="m", check=_accept
        )
        assert pushed == Pushed(commit=before, branch="main", rebased_onto=None)
        assert remote.head() == before

    def test_review_branch(self, tmp_path: Path, remote: Upstream) -> None:
        """With a review branch, the change goes there, on top of main, and main stays."""
        before = remote.head()
        writer = _writer(tmp_path, str(remote.bare))
        pushed = writer.change(
            _write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept, branch=REVIEW
        )
        assert pushed == Pushed(commit=remote.head(REVIEW), branch=REVIEW, rebased_onto=None)
        assert _commit_of(remote, REVIEW, "%P") == before
        assert remote.head() == before

    def test_invalid_requests(self, tmp_path: Path, remote: Upstream) -> None:
        """A bad branch name, an empty message or a bad author are refused before any git."""
        writer = _writer(tmp_path, str(remote.bare))
        with pytest.raises(ValueError, match="not a valid branch name"):
            writer.change(
                _write({"x": "1"}), author=AUTHOR, message="m", check=_accept, branch="a..b"
            )
        with pytest.raises(ValueError, match="commit message"):
            writer.change(_write({"x": "1"}), author=AUTHOR, message=" \n", check=_accept)
        with pytest.raises(ValueError, match="not a valid commit author part"):
            Author(name="ci <bot>", email="ci@mailopsd.invalid")
        assert not (tmp_path / "state").exists()

    def test_refused_push(self, tmp_path: Path, remote: Upstream) -> None:
        """A push the remote refuses (a hook) is one line naming the branch, URL and why."""
        hook = remote.bare / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho protected >&2\nexit 1\n")
        hook.chmod(0o755)
        before = remote.head()
        writer = _writer(tmp_path, str(remote.bare))
        with pytest.raises(RemoteError) as caught:
            writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
        message = str(caught.value)
        assert message.startswith("cannot push commit ")
        assert message.endswith(
            f"to branch 'main' of {remote.bare}: [remote rejected] (pre-receive hook declined); "
            "check that the credentials may push to the branch"
        )
        assert remote.head() == before


class TestAnotherPush:
    def test_rebased_and_pushed(self, tmp_path: Path, remote: Upstream) -> None:
        """Another push first (another file): the change is rebased onto it, checked again
        and pushed, so both are on the remote."""
        writer = _writer(tmp_path, str(remote.bare), path="mailops")
        edit = _write({"c.yaml": "a: 1\nb: 3\n"})
        push = _other_push(remote, {"mailops/d.yaml": "d: 1\n"})
        seen: list[bool] = []

        def check(config: Path) -> None:
            seen.append((config / "d.yaml").exists())
            push(config)

        pushed = writer.change(edit, author=AUTHOR, message=MESSAGE, check=check)
        other = _commit_of(remote, "main~1", "%H")
        assert pushed == Pushed(commit=remote.head(), branch="main", rebased_onto=other)
        assert seen == [False, True]
        assert remote.show("main", "mailops/c.yaml") == "a: 1\nb: 3"
        assert remote.show("main", "mailops/d.yaml") == "d: 1"
        assert _commit_of(remote, "main", "%an|%cn|%B") == f"ci-bot|ci-bot|{MESSAGE}"

    def test_conflict(self, tmp_path: Path, remote: Upstream) -> None:
        """Another push changed the same line: a Conflict naming its head, which alone is on
        the remote, and the next change works."""
        writer = _writer(tmp_path, str(remote.bare), path="mailops")
        push = _other_push(remote, {"mailops/c.yaml": "a: 1\nb: 4\n"})
        with pytest.raises(Conflict) as caught:
            writer.change(
                _write({"c.yaml": "a: 1\nb: 3\n"}), author=AUTHOR, message="m", check=push
            )
        other = remote.head()
        assert caught.value.commit == other
        assert str(caught.value) == (
            f"cannot rebase the change onto commit {other[:12]}, which another push put on "
            f"branch 'main' of {remote.bare}: both change the same lines; send the request "
            "again to change the new config"
        )
        assert remote.show("main", "mailops/c.yaml") == "a: 1\nb: 4"
        pushed = writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
        assert _commit_of(remote, "main", "%P") == other
        assert pushed.rebased_onto is None

    def test_check_fails_after_rebase(self, tmp_path: Path, remote: Upstream) -> None:
        """The other push makes the change invalid: check's exception, nothing pushed."""
        writer = _writer(tmp_path, str(remote.bare), path="mailops")
        push = _other_push(remote, {"mailops/d.yaml": "d: 1\n"})

        def check(config: Path) -> None:
            push(config)
            if (config / "d.yaml").exists():
                raise ValueError("d.yaml and c.yaml disagree")

        with pytest.raises(ValueError, match="disagree"):
            writer.change(_write({"c.yaml": "b: 3\n"}), author=AUTHOR, message="m", check=check)
        assert remote.show("main", "mailops/c.yaml") == "a: 1\nb: 2"
        assert _commit_of(remote, "main", "%an") == "Ada"

    def test_same_change_pushed_first(self, tmp_path: Path, remote: Upstream) -> None:
        """Another push made the very same change: nothing more is pushed, its head is given."""
        writer = _writer(tmp_path, str(remote.bare))
        push = _other_push(remote, {"x": "1\n"})
        pushed = writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=push)
        other = remote.head()
        assert pushed == Pushed(commit=other, branch="main", rebased_onto=other)
        assert _commit_of(remote, "main", "%an") == "Ada"

    def test_moved_at_every_attempt(self, tmp_path: Path, remote: Upstream) -> None:
        """A branch that moves before each of the 3 pushes: an error saying to try again."""
        writer = _writer(tmp_path, str(remote.bare))
        pushes: list[str] = []

        def check(config: Path) -> None:
            remote.pull()
            pushes.append(remote.commit({f"other-{len(pushes)}": "o\n"}))
            remote.push()

        with pytest.raises(Conflict) as caught:
            writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=check)
        assert len(pushes) == 3
        assert remote.head() == pushes[-1] == caught.value.commit
        assert str(caught.value) == (
            f"cannot push a change to branch 'main' of {remote.bare}: other pushes came first "
            f"at each of 3 attempts, the last one commit {pushes[-1][:12]}; try again"
        )

    @pytest.mark.parametrize("writers", [1, 2])
    def test_concurrent_changes(self, tmp_path: Path, remote: Upstream, writers: int) -> None:
        """Two threads (one writer, or two on one directory): one change after the other."""
        instances = [_writer(tmp_path, str(remote.bare)) for _ in range(writers)]
        spans: list[tuple[float, float]] = []
        results: dict[str, Pushed] = {}

        def change(name: str, writer: Writer) -> None:
            def edit(config: Path) -> None:
                started = time.monotonic()
                (config / name).write_text(f"{name}\n")
                time.sleep(0.2)
                spans.append((started, time.monotonic()))

            results[name] = writer.change(edit, author=AUTHOR, message=name, check=_accept)

        threads = [
            threading.Thread(target=change, args=(name, instances[i % writers]))
            for i, name in enumerate(("one", "two"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert set(results) == {"one", "two"}
        first, second = sorted(spans)
        assert first[1] <= second[0]
        assert sorted(_commit_of(remote, ref, "%s") for ref in ("main", "main~1")) == ["one", "two"]
        assert {pushed.rebased_onto for pushed in results.values()} == {None}


class TestCrash:
    def test_leftovers_are_cleared(self, tmp_path: Path, remote: Upstream) -> None:
        """A half-done rebase, an index.lock, a ref lock and an unpushed commit left in the
        clone are cleared by the next change, which pushes its own change alone."""
        writer = _writer(tmp_path, str(remote.bare))
        writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
        clone = _clone(tmp_path)
        env = {**remote.env, "GIT_DIR": str(clone / ".git"), "GIT_WORK_TREE": str(clone)}
        run_git(env, "commit", "--quiet", "--allow-empty", "-m", "unpushed")
        unpushed = run_git(env, "rev-parse", "HEAD")
        (clone / "x").write_text("2\n")
        run_git(env, "commit", "--quiet", "-am", "mine")
        mine = run_git(env, "rev-parse", "HEAD")
        run_git(env, "checkout", "--quiet", "--detach", unpushed)
        (clone / "x").write_text("3\n")
        run_git(env, "commit", "--quiet", "-am", "theirs")
        with pytest.raises(subprocess.CalledProcessError):
            run_git(env, "rebase", "--onto", "HEAD", unpushed, mine)
        assert (clone / ".git" / "rebase-merge").is_dir()
        (clone / ".git" / "index.lock").write_text("")
        (clone / ".git" / "refs" / "mailopsd" / "head.lock").write_text("")
        before = remote.head()
        pushed = writer.change(_write({"y": "1\n"}), author=AUTHOR, message="m", check=_accept)
        assert _commit_of(remote, "main", "%P") == before
        assert remote.show(pushed.commit, "x") == "1"
        assert not (clone / ".git" / "rebase-merge").exists()

    @pytest.mark.parametrize("damage", ["index", "git"])
    def test_broken_clone_is_made_again(
        self, tmp_path: Path, remote: Upstream, damage: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A clone whose index is garbage, or whose .git is empty, is made again (and git
        never falls back on a repository in a parent directory)."""
        writer = _writer(tmp_path, str(remote.bare))
        writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
        clone = _clone(tmp_path)
        if damage == "index":
            (clone / ".git" / "index").write_bytes(b"DIRC garbage")
        else:
            run_git(remote.env, "init", "--quiet", str(tmp_path))
            shutil.rmtree(clone / ".git")
            (clone / ".git").mkdir()
        pushed = writer.change(_write({"y": "1\n"}), author=AUTHOR, message="m", check=_accept)
        assert remote.head() == pushed.commit
        assert remote.show(pushed.commit, "x") == "1"
        assert "redoing a broken write clone" in caplog.text
        if damage == "git":  # the parent repository was left alone: no index, no commit
            assert not (tmp_path / ".git" / "index").exists()
            assert not list((tmp_path / ".git" / "refs" / "heads").iterdir())

    @pytest.mark.parametrize("when", ["before", "after"])
    def test_killed_at_the_push(self, tmp_path: Path, remote: Upstream, when: str) -> None:
        """A writer killed (SIGKILL) just before or after its push, then the same change
        sent again: the remote has the change once."""
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        git = shutil.which("git")
        assert git is not None
        push = f'"{git}" "$@"; ' if when == "after" else ""
        (bin_dir / "git").write_text(
            "#!/bin/sh\n"
            f'case " $* " in *" push "*) {push}kill -9 $PPID; exit 1;; esac\n'
            f'exec "{git}" "$@"\n'
        )
        (bin_dir / "git").chmod(0o755)
        root = Path(mailopsd.remote.writer.__file__).parents[2]
        script = (
            "import sys; from pathlib import Path\n"
            "from mailopsd.remote.writer import Author, Writer\n"
            "from mailopsd.remote.git import Source\n"
            "w = Writer(Path(sys.argv[1]), Source(url=sys.argv[2], branch='main'), "
            "{'PATH': sys.argv[3], 'HOME': sys.argv[4]})\n"
            "w.change(lambda c: (c / 'x').write_text('1\\n'), author=Author('a', 'a@b'), "
            "message='m', check=lambda c: None)\n"
        )
        home = daemon_environment(tmp_path)["HOME"]
        before = remote.head()
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                str(tmp_path / "state" / "git" / "write"),
                str(remote.bare),
                f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                home,
            ],
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -9, child.stderr
        assert (remote.head() != before) == (when == "after")
        writer = _writer(tmp_path, str(remote.bare))
        pushed = writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
        assert remote.head() == pushed.commit
        log = run_git(
            remote.env, "--git-dir", str(remote.bare), "log", "--format=%s", f"{before}..main"
        )
        assert log == "m"


@contextlib.contextmanager
def _smart_http(root: Path, token: str, env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Serve the repositories under ``root`` over smart HTTP (``git http-backend``, pushes
    allowed) on loopback, to requests bearing ``token``."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._backend()

        def do_POST(self) -> None:
            self._backend()

        def _backend(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            cgi = {
                **env,
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": "writer",  # receive-pack is served to a known user only
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            answer = subprocess.run(
                ["git", "http-backend"],  # noqa: S607 - git from PATH
                input=body,
                env=cgi,
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout
            split = b"\r\n\r\n" if b"\r\n\r\n" in answer else b"\n\n"
            head, _, payload = answer.partition(split)
            fields = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
            status = next((int(v.split()[0]) for k, v in fields if k.lower() == "status"), 200)
            self.send_response(status)
            for name, value in fields:
                if name.lower() != "status":
                    self.send_header(name, value.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen


class TestToken:
    def test_token_is_sent_and_never_shown(self, tmp_path: Path, remote: Upstream) -> None:
        """Over smart HTTP the token authorizes fetch and push, yet is in no git command
        line, trace, file or message."""
        (tmp_path / "token").write_text(f"{TOKEN}\n")
        trace, argvs = tmp_path / "trace.log", tmp_path / "argv.log"
        environment = daemon_environment(
            tmp_path, GIT_TRACE=str(trace), PATH=logging_git(tmp_path / "bin", argvs)
        )
        with _smart_http(tmp_path, TOKEN, remote.env) as (base, seen):
            url = f"{base}/upstream.git"
            writer = _writer(tmp_path, url, environment=environment, token_file=tmp_path / "token")
            pushed = writer.change(_write({"x": "1\n"}), author=AUTHOR, message="m", check=_accept)
            (tmp_path / "token").write_text("another-token\n")
            with pytest.raises(RemoteError) as caught:
                writer.change(_write({"x": "2\n"}), author=AUTHOR, message="m", check=_accept)
        assert remote.head() == pushed.commit
        assert set(seen) == {f"Bearer {TOKEN}", "Bearer another-token"}
        assert f"push --porcelain --quiet --no-verify --no-recurse-submodules -- {url}" in (
            argvs.read_text()
        )
        assert str(caught.value).startswith(f"cannot fetch branch 'main' of {url}: ")
        assert "another-token" not in str(caught.value)
        assert TOKEN not in argvs.read_text()
        assert TOKEN not in trace.read_text()
        for path in (tmp_path / "state").rglob("*"):
            assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
