"""The inbox: polls every mailbox on its own schedule, off the main thread.

Each credential with the four imap_* fields (and a first send) is polled every
``imap_poll_interval`` by a small pool of worker threads; the daemon's main thread hands
out the cursors, then records the results (``record``) and checks the credentials'
health. A slow or dead server only ever holds a worker, never the dispatcher. A failed
poll is retried with exponential backoff; the first failure and the recovery are logged
once each, and the credential's ``inbox_error`` in the state file says what is wrong
meanwhile. With ``imap_idle: true`` a thread per mailbox waits in IMAP IDLE and asks
for a poll as soon as mail arrives.

A mailbox shared by campaigns (top-level ``mailboxes``) is polled once, keyed by its
own pair (``refs.mailbox_ref``) whichever campaigns name it, so a campaign that starts
or stops naming it never makes it read again: as often as the most eager of its
campaigns asks, from the first send of any of them. Its ``inbox_error`` is written on
the state-file entry of every campaign credential that names it, and its log lines say
``mailbox=<id>``.

Processed reports are disposed of as ``bounce_notifications`` says: ``from`` leaves them,
``drop`` moves them to the Trash folder (or flags them deleted), an address gets them
forwarded through the credential's SMTP.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import make_msgid
from pathlib import Path

from mailopsd import backoff
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import Credential
from mailopsd.errors import StateError, describe_unexpected
from mailopsd.health import autodisable
from mailopsd.inbox.imap import (
    BATCH,
    Cursor,
    ImapError,
    MailboxAccess,
    PollResult,
    dispose,
    fetch_full,
    poll,
    wait_for_mail,
)
from mailopsd.inbox.record import Recorded, mailbox_senders, poll_uses, record_poll
from mailopsd.lifecycle import SendOutcome
from mailopsd.progress import Progress, Work
from mailopsd.refs import CredentialRef, credential_key, is_shared, sender_ref
from mailopsd.smtp.message import forwarded_report
from mailopsd.smtp.transport import SmtpTransport
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import CredentialState, StateFile

__all__ = ["Inbox", "PollStats"]

logger = logging.getLogger(__name__)


def _named(key: CredentialRef) -> str:
    """The ``key=value`` words naming a polled mailbox in a log line."""
    return f"mailbox={key[1]}" if is_shared(key) else f"campaign={key[0]} credential={key[1]}"


@dataclass(frozen=True)
class _Wanted:
    """A mailbox the config asks to read: how, how often (s), with IDLE or not."""

    access: MailboxAccess
    interval_s: float
    idle: bool
    campaign_id: str  # one campaign that names it (all that do share one lease)


@dataclass
class _Mailbox:
    """What the inbox keeps between polls for one mailbox."""

    access: MailboxAccess
    interval_s: float
    campaign_id: str
    due: float = 0.0
    failures: int = 0
    error: str | None = None
    running: Future[PollResult] | None = None
    idle: _Idler | None = None
    started: float = 0.0  # monotonic times of the running (or last) poll
    finished: float = 0.0
    stats: PollStats = field(default_factory=lambda: PollStats())


@dataclass(frozen=True)
class PollStats:
    """How a mailbox's polls went since the daemon began to follow it.

    Attributes:
        ok: Polls that read the mailbox.
        failed: Polls that could not (connect, login, a server error, a timeout).
        seconds: Their time in all, from the start of a poll to its end.
        last_seconds: The time of the last one.
    """

    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    last_seconds: float | None = None

    def add(self, seconds: float, *, ok: bool) -> PollStats:
        """These stats with one more poll."""
        return PollStats(
            self.ok + ok, self.failed + (not ok), self.seconds + seconds, last_seconds=seconds
        )


@dataclass
class _Idler:
    """A thread waiting in IDLE; it asks for a poll when mail arrives."""

    access: MailboxAccess
    on_mail: Callable[[], None]
    retry_s: float
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                arrived = wait_for_mail(self.access, self.stop.is_set)
            except ImapError as err:
                failures += 1
                if failures == 1:
                    logger.warning("imap idle failed %s error=%s", _named(self._key), err)
                self.stop.wait(backoff.imap_idle(self.retry_s).delay_s(failures))
                continue
            failures = 0
            if arrived:
                self.on_mail()

    @property
    def _key(self) -> CredentialRef:
        return (self.access.campaign_id, self.access.credential_id)

    def start(self) -> None:
        name = f"mailopsd-idle-{'/'.join(part for part in self._key if part)}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=self.access.timeout_s + 5)


class _Scan:
    """The polls of one :meth:`Inbox.poll_all` told to ``progress`` as one piece of work.

    Each poll reports its folders from its own thread; what they have read and what they
    found to read, summed over every folder, go on as one report, so a terminal shows one
    bar however many mailboxes are read at once.
    """

    what = "reading mailboxes"

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._folders: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._report(finished=False)  # the polls connect and search before they count

    def __call__(self, work: Work) -> None:
        with self._lock:
            self._folders[work.what] = (work.done, work.total or 0)
            self._report(finished=False)

    def finish(self) -> None:
        with self._lock:
            self._report(finished=True)

    def _report(self, *, finished: bool) -> None:
        done = sum(read for read, _ in self._folders.values())
        total = sum(found for _, found in self._folders.values()) if self._folders else None
        self._progress(Work(self.what, done, total, "message", finished=finished))


@dataclass
class Inbox:
    """Schedules polls, records their results, disposes of processed reports."""

    ledger: Ledger
    workers: int = 4
    timeout_s: float = 30.0
    retry_s: float = 60.0
    wake: Callable[[], None] = lambda: None
    smtp: SmtpTransport = field(default_factory=SmtpTransport)
    send_key: bytes | None = field(default=None, repr=False)
    """The send-token key (``state.sendkey``) that reports' send tokens are checked with;
    without it they are not looked at."""
    _mailboxes: dict[CredentialRef, _Mailbox] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _chores: list[Future[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _synced: LoadedConfig | None = None
    _wants: dict[CredentialRef, tuple[object, Credential, _Wanted]] = field(default_factory=dict)
    _senders: tuple[LoadedConfig, dict[CredentialRef, frozenset[CredentialRef]]] | None = None
    _held: frozenset[str] | None = None  # see hold()
    unrecorded: BaseException | None = None
    """Why the last :meth:`collect` left a finished poll unrecorded (the ledger took no
    write); that poll waits to be recorded by a later call."""

    def hold(self, campaigns: frozenset[str] | None) -> None:
        """Read only these campaigns' mailboxes (None: every campaign's).

        On a shared ledger, the campaigns this daemon holds (see
        :mod:`mailopsd.daemon.leases`): the others' mailboxes are their holders' to
        poll, and to keep an IDLE connection to.
        """
        if campaigns != self._held:
            self._held = campaigns
            self._synced = None  # IDLE connections follow at the next sync

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="mailopsd-imap"
            )
        return self._pool

    # Which mailboxes -------------------------------------------------------------------

    def _wanted(self, loaded: LoadedConfig) -> dict[CredentialRef, _Wanted]:
        """Every mailbox to read, once: a campaign's own credential, or a shared mailbox.

        What a credential needs is kept while the credential and its campaign are the same
        objects (a reload keeps the unchanged ones): ten thousand of them took a tenth of
        a second to work out again after each reload.
        """
        wanted: dict[CredentialRef, _Wanted] = {}
        kept, self._wants = self._wants, {}
        for campaign_id, campaign in loaded.config.campaigns.items():
            for credential_id, credential in campaign.smtp_credentials.items():
                if not credential.has_imap or credential.status == "sandbox":
                    continue
                ref = (campaign_id, credential_id)
                found = kept.get(ref)
                if found is None or found[0] is not campaign or found[1] is not credential:
                    found = (campaign, credential, self._want(loaded, ref, credential))
                self._wants[ref] = found
                want = found[2]
                key = want.access.campaign_id, want.access.credential_id
                known = wanted.get(key)
                if known is not None:  # a shared mailbox named again: the shortest interval
                    wanted[key] = replace(known, interval_s=min(want.interval_s, known.interval_s))
                    continue
                wanted[key] = want
        return wanted

    def _want(self, loaded: LoadedConfig, ref: CredentialRef, credential: Credential) -> _Wanted:
        campaign = loaded.config.campaigns[ref[0]]
        key = sender_ref(ref, credential.shared_as)
        interval = float(credential.poll_interval(campaign).approx_seconds)
        base = loaded.credential_dir(ref[0], credential)
        access = MailboxAccess.of(key, credential, base, timeout_s=self.timeout_s)
        return _Wanted(access, interval, credential.imap_idle, ref[0])

    def _sync(self, loaded: LoadedConfig) -> None:
        """Follow the config: new mailboxes, changed ones, removed ones (once per load)."""
        if loaded is self._synced:
            return
        self._synced = loaded
        wanted = self._wanted(loaded)
        for key in list(self._mailboxes):
            access = self._mailboxes[key].access
            if key not in wanted or (
                access is not wanted[key].access and access != wanted[key].access
            ):
                self._forget(key)
        for key, want in wanted.items():
            mailbox = self._mailboxes.get(key)
            if mailbox is None:
                mailbox = self._mailboxes[key] = _Mailbox(
                    want.access, want.interval_s, want.campaign_id
                )
            mailbox.interval_s, mailbox.campaign_id = want.interval_s, want.campaign_id
            idle = want.idle and (self._held is None or want.campaign_id in self._held)
            if idle and mailbox.idle is None:
                poll_soon = functools.partial(self._poll_soon, key)
                mailbox.idle = _Idler(want.access, poll_soon, self.retry_s)
                mailbox.idle.start()
            elif not idle and mailbox.idle is not None:
                mailbox.idle.close()
                mailbox.idle = None

    def _forget(self, key: CredentialRef) -> None:
        mailbox = self._mailboxes.pop(key)
        if mailbox.idle is not None:
            mailbox.idle.close()

    def _poll_soon(self, key: CredentialRef) -> None:
        with self._lock:
            mailbox = self._mailboxes.get(key)
            if mailbox is not None:
                mailbox.due = 0.0
        self.wake()

    # Polls -----------------------------------------------------------------------------

    def _submit(
        self, key: CredentialRef, mailbox: _Mailbox, since: datetime, progress: Progress | None
    ) -> None:
        cursors = {
            folder: Cursor(*cursor) for folder, cursor in self.ledger.inbox.cursors(*key).items()
        }
        mailbox.started = time.monotonic()
        future = self._executor().submit(poll, mailbox.access, cursors, since, progress=progress)

        def done(_: Future[PollResult]) -> None:
            mailbox.finished = time.monotonic()
            self.wake()

        future.add_done_callback(done)
        mailbox.running = future

    def start_due(self, loaded: LoadedConfig, *, progress: Progress | None = None) -> int:
        """Start the polls that are due; return how many started.

        ``progress`` is told how far each poll's folders are read (from its thread).
        """
        self._sync(loaded)
        now = time.monotonic()
        started = 0
        held = self._held
        for key, mailbox in self._mailboxes.items():
            with self._lock:
                due = mailbox.due <= now
            if mailbox.running is not None or not due:
                continue
            if held is not None and mailbox.campaign_id not in held:
                continue  # another daemon's
            since = self._first_send(loaded, key)
            if since is None:
                mailbox.due = now + mailbox.interval_s
                continue
            self._submit(key, mailbox, since, progress)
            started += 1
        return started

    def _first_send(self, loaded: LoadedConfig, key: CredentialRef) -> datetime | None:
        """When the first of the credentials that read the mailbox first sent, if any did."""
        firsts = (self.ledger.sends.first_at(*use) for use in poll_uses(loaded, key))
        return min((at for at in firsts if at is not None), default=None)

    def _failed(
        self,
        key: CredentialRef,
        mailbox: _Mailbox,
        error: str,
        uses: tuple[CredentialRef, ...],
        state: StateFile,
        at: datetime,
    ) -> StateFile:
        mailbox.failures += 1
        delay = backoff.imap_poll(self.retry_s, mailbox.interval_s).delay_s(mailbox.failures)
        mailbox.due = time.monotonic() + delay
        if mailbox.error is None:  # one line when the mailbox becomes unreadable
            logger.warning("imap unavailable %s error=%s retry_in_s=%d", _named(key), error, delay)
        mailbox.error = error
        with self.ledger.transaction():
            for folder in mailbox.access.folders:
                self.ledger.inbox.set_cursor(*key, folder, None, at=at, result=f"error: {error}")
        return _with_inbox_error(state, uses, error, at)

    def _succeeded(
        self,
        key: CredentialRef,
        mailbox: _Mailbox,
        result: PollResult,
        loaded: LoadedConfig,
        state: StateFile,
        at: datetime,
    ) -> StateFile:
        if mailbox.error is not None:
            logger.info("imap reachable again %s", _named(key))
        mailbox.failures = 0
        mailbox.error = None
        with self._lock:
            mailbox.due = max(mailbox.due, time.monotonic() + mailbox.interval_s)
        done = record_poll(
            self.ledger,
            loaded,
            key,
            result,
            at,
            senders=self._senders_of(loaded, key),
            send_key=self.send_key,
        )
        if done.new:
            logger.info(
                "inbox read %s %s",
                _named(key),
                " ".join(f"{kind}={n}" for kind, n in sorted(done.by_kind.items())),
            )
        if done.unconfirmed:
            logger.warning(
                "bounce reports not counted %s addresses=%d: they quote none of this "
                "mailbox's messages (status lists them as unconfirmed)",
                _named(key),
                done.unconfirmed,
            )
        self._dispose(key, loaded, done)
        state = _with_inbox_error(state, poll_uses(loaded, key), None, at)
        return autodisable.check_credentials(self.ledger, loaded, state, done.check, at)

    def _record(
        self,
        key: CredentialRef,
        mailbox: _Mailbox,
        future: Future[PollResult],
        loaded: LoadedConfig,
        state: StateFile,
        at: datetime,
    ) -> StateFile:
        seconds = max(0.0, (mailbox.finished or time.monotonic()) - mailbox.started)
        uses = poll_uses(loaded, key)
        try:
            result = future.result()
        except ImapError as err:
            state = self._failed(key, mailbox, str(err), uses, state, at)
        except Exception as err:  # a poller bug must not stop the daemon
            # Its type and place only: an exception's text may quote a password.
            what = describe_unexpected(err)
            logger.error("imap poll crashed %s error=%s", _named(key), what)
            state = self._failed(key, mailbox, f"internal error: {what}", uses, state, at)
        else:
            state = self._succeeded(key, mailbox, result, loaded, state, at)
            mailbox.stats = mailbox.stats.add(seconds, ok=True)
            return state
        mailbox.stats = mailbox.stats.add(seconds, ok=False)
        return state

    def _senders_of(self, loaded: LoadedConfig, key: CredentialRef) -> frozenset[CredentialRef]:
        """The credentials whose sends the mailbox polled as ``key`` speaks of (once per load)."""
        if self._senders is None or self._senders[0] is not loaded:
            self._senders = (loaded, mailbox_senders(loaded))
        return self._senders[1].get(key, frozenset({key}))

    def poll_stats(self) -> dict[CredentialRef, PollStats]:
        """How each mailbox's polls went, by poll (``refs.sender_ref``; thread-safe)."""
        return {key: mailbox.stats for key, mailbox in list(self._mailboxes.items())}

    def collect(self, loaded: LoadedConfig, state: StateFile, at: datetime) -> StateFile:
        """Record every finished poll; return the state with health and errors updated.

        A poll whose recording fails because the ledger takes no write (disk full,
        read-only) is kept for a later call, and :attr:`unrecorded` says why; the polls
        recorded before it stay recorded.
        """
        self.unrecorded = None
        for key, mailbox in list(self._mailboxes.items()):
            future = mailbox.running
            if future is None or not future.done():
                continue
            mailbox.running = None
            try:
                state = self._record(key, mailbox, future, loaded, state, at)
            except StateError as err:
                mailbox.running = future  # recorded once the ledger takes writes
                self.unrecorded = err
                break
        self._finish_chores()
        return state

    def poll_all(
        self,
        loaded: LoadedConfig,
        state: StateFile,
        at: datetime,
        *,
        progress: Progress | None = None,
    ) -> StateFile:
        """Poll every mailbox now and wait for the results (``run --once``, tests).

        ``progress`` is told how many of the messages the polls found to read are read,
        every mailbox together (a first poll of a big mailbox reads many).
        """
        self._sync(loaded)
        for mailbox in self._mailboxes.values():
            with self._lock:
                mailbox.due = 0.0
        scan = _Scan(progress) if progress is not None else None
        self.start_due(loaded, progress=scan)
        for mailbox in self._mailboxes.values():
            if mailbox.running is not None:
                mailbox.running.exception()
        if scan is not None:
            scan.finish()
        state = self.collect(loaded, state, at)
        for chore in self._chores:
            chore.exception()
        self._finish_chores()
        return state

    # Disposal --------------------------------------------------------------------------

    def _dispose(self, key: CredentialRef, loaded: LoadedConfig, done: Recorded) -> None:
        credential = _polled_credential(loaded, key)
        if credential is None or not done.reports:
            return
        route = credential.bounce_notifications
        if route == "from":
            return
        access = self._mailboxes[key].access
        by_folder: dict[tuple[str, int], list[int]] = {}
        for arrival in done.reports:
            by_folder.setdefault((arrival.folder, arrival.uidvalidity), []).append(arrival.uid)
        base = loaded.credential_dir(key[0], credential)
        for (folder, validity), uids in by_folder.items():
            if route == "drop":
                chore = self._executor().submit(dispose, access, folder, validity, uids)
            else:
                chore = self._executor().submit(
                    self._forward, key, credential, base, access, folder, validity, uids, route
                )
            self._chores.append(chore)

    def _forward(
        self,
        key: CredentialRef,
        credential: Credential,
        base: Path,
        access: MailboxAccess,
        folder: str,
        validity: int,
        uids: list[int],
        to: str,
    ) -> str:
        ca_file = base / credential.tls_ca_file if credential.tls_ca_file else None
        sent = 0
        for start in range(0, len(uids), BATCH):  # a batch of whole messages in memory
            for raw in fetch_full(access, folder, validity, uids[start : start + BATCH]):
                outgoing = forwarded_report(
                    sender=credential.from_email,
                    to=to,
                    raw=raw,
                    message_id=make_msgid(domain=credential.from_email.rpartition("@")[2]),
                    now=datetime.now(UTC),
                )
                if credential.status == "sandbox":
                    continue
                outcome = self.smtp.deliver(key, credential, ca_file, outgoing)
                if outcome.kind != SendOutcome.SENT:
                    return f"forward to {to} failed: {outcome.code} {outcome.detail}"
                sent += 1
        return f"forwarded {sent} to {to}"

    def _finish_chores(self) -> None:
        for chore in [c for c in self._chores if c.done()]:
            self._chores.remove(chore)
            try:
                logger.info("bounce reports %s", chore.result())
            except ImapError as err:
                logger.warning("bounce reports not disposed of error=%s", err)
            except Exception as err:  # a disposal bug must not stop the daemon
                logger.error("bounce reports not disposed of error=%s", describe_unexpected(err))

    def close(self) -> None:
        """Stop IDLE threads, wait for running polls, close connections."""
        self._synced = None
        for key in list(self._mailboxes):
            self._forget(key)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.smtp.close_all()


def _polled_credential(loaded: LoadedConfig, key: CredentialRef) -> Credential | None:
    """The credential a poll reads for: a shared mailbox, or a campaign's own one."""
    if is_shared(key):
        return loaded.config.mailboxes.get(key[1])
    campaign = loaded.config.campaigns.get(key[0])
    return None if campaign is None else campaign.smtp_credentials.get(key[1])


def _with_inbox_error(
    state: StateFile, uses: tuple[CredentialRef, ...], error: str | None, at: datetime
) -> StateFile:
    """``state`` with a poll's error (``None``: it read the mailbox) on each use's entry.

    Each campaign credential that reads the mailbox has the error in its own entry, so
    status shows it wherever the mailbox is used; its ``inbox_error_since`` is when it
    became unreadable.
    """
    changed: dict[str, CredentialState] = {}
    for use in uses:
        entry = state.credential(credential_key(*use))
        if entry.inbox_error == error:
            continue
        since = entry.inbox_error_since if entry.inbox_error is not None else at
        update = {"inbox_error": error, "inbox_error_since": since if error is not None else None}
        changed[credential_key(*use)] = entry.model_copy(update=update)
    if not changed:
        return state
    return state.model_copy(update={"credentials": {**state.credentials, **changed}})
