"""Reading a sending mailbox over IMAP: incremental, read-only, headers first.

A poll opens each folder with ``EXAMINE`` (read-only, so no flag can change) and reads
only messages it has not seen: the ledger keeps ``UIDVALIDITY`` and the last UID per
folder. When the server's ``UIDNEXT`` says nothing arrived, the poll costs one command
per folder whatever the mailbox holds. Without a cursor (first poll) or after the server
changed ``UIDVALIDITY``, it searches from the day of the credential's first send. Headers
come first (``BODY.PEEK[HEADER]``, at most ``HEADER_LIMIT`` bytes); only messages that
look like delivery or feedback reports have their body read, and never more than
``BODY_LIMIT`` bytes of it. Messages are fetched and classified ``BATCH`` at a time and
only their classification (and the send tokens they carry, :mod:`mailopsd.sendtokens`)
is kept, so a poll's memory does not grow with the mailbox.

Implicit TLS on 993, STARTTLS elsewhere, certificates verified; a server that does not
offer STARTTLS gets no password unless it is on loopback and TLS is turned off.
A username or password beyond ASCII logs in with ``AUTHENTICATE PLAIN`` in UTF-8
(RFC 4616), never with ``LOGIN``.
Errors are ``ImapError`` with a message that never holds a secret; an unexpected
exception is named by its type and place only, as its text may quote a password.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import imaplib
import re
import select
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from mailopsd import sendtokens
from mailopsd.config.models import Credential
from mailopsd.config.scalars import is_loopback_host
from mailopsd.errors import describe_unexpected
from mailopsd.inbox.classify import Classification, classify
from mailopsd.progress import Progress, Tally
from mailopsd.refs import CredentialRef

__all__ = [
    "BATCH",
    "BODY_LIMIT",
    "HEADER_LIMIT",
    "Arrival",
    "Cursor",
    "ImapError",
    "MailboxAccess",
    "PollResult",
    "connect",
    "dispose",
    "fetch_full",
    "poll",
    "wait_for_mail",
]

BODY_LIMIT = 256 * 1024
HEADER_LIMIT = 256 * 1024  # what the classifier reads of a header block, at most
_CHUNK = 200
BATCH = 32  # messages fetched and classified at a time: they are held in memory meanwhile
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FETCH_HEAD = re.compile(rb"UID (\d+)|RFC822\.SIZE (\d+)")
_REPORT_HINTS = re.compile(
    rb"(?im)^(content-type:[^\r\n]*multipart/report|x-failed-recipients:|return-path:\s*<>|"
    rb"from:[^\r\n]*(mailer-daemon|postmaster|mail delivery)|"
    rb"subject:[^\r\n]*(undeliver|delivery status|returned mail|failure notice|"
    rb"delivery (has )?failed|non-?delivery|could not be delivered|not delivered|"
    rb"abuse report|complaint))"
)
_ERROR_MAX = 200


class ImapError(Exception):
    """A poll failed; ``stage`` is where (connect, tls, login, folder, fetch)."""

    def __init__(self, stage: str, message: str) -> None:
        """Keep the stage and a one-line message (no secrets: never the login)."""
        flat = " ".join(message.split())
        super().__init__(f"{stage}: {flat[:_ERROR_MAX]}")
        self.stage = stage


@dataclass(frozen=True)
class MailboxAccess:
    """What a poll needs to reach one credential's mailbox."""

    campaign_id: str
    credential_id: str
    host: str
    port: int
    username: SecretStr
    password: SecretStr
    tls: str
    ca_file: Path | None
    folders: tuple[str, ...]
    timeout_s: float = 30.0

    @classmethod
    def of(
        cls, key: CredentialRef, credential: Credential, base: Path, *, timeout_s: float = 30.0
    ) -> MailboxAccess:
        """Build from a credential with the four imap_* fields (paths relative to ``base``)."""
        if (
            credential.imap_host is None
            or credential.imap_port is None
            or credential.imap_username is None
            or credential.imap_password is None
        ):
            raise ValueError("the credential has no IMAP fields")
        ca_file = base / credential.imap_tls_ca_file if credential.imap_tls_ca_file else None
        return cls(
            campaign_id=key[0],
            credential_id=key[1],
            host=credential.imap_host,
            port=credential.imap_port,
            username=credential.imap_username,
            password=credential.imap_password,
            tls=credential.imap_tls_mode,
            ca_file=ca_file,
            folders=credential.imap_folders,
            timeout_s=timeout_s,
        )


@dataclass(frozen=True)
class Cursor:
    """Where a folder was read up to."""

    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class Arrival:
    """One new message of a folder, classified.

    ``send_tokens`` are the send tokens (VERP) found in it, not yet verified
    (:func:`mailopsd.sendtokens.candidates`).
    """

    folder: str
    uidvalidity: int
    uid: int
    key: str
    size: int
    complete: bool
    classification: Classification
    send_tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class PollResult:
    """What one poll found: new cursors, new messages, and what it cost."""

    cursors: dict[str, Cursor]
    arrivals: tuple[Arrival, ...]
    headers_fetched: int
    bodies_fetched: int
    missing_folders: tuple[str, ...]
    seconds: float


def _quote(folder: str) -> str:
    return '"' + folder + '"'


def _say(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({err.verify_message})"
    if isinstance(err, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = err.args[0] if err.args else type(err).__name__
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or type(err).__name__


def connect(access: MailboxAccess) -> imaplib.IMAP4:
    """Open, secure and log in; raise ``ImapError`` on any failure."""
    context = ssl.create_default_context(cafile=str(access.ca_file) if access.ca_file else None)
    stage = "connect"
    client: imaplib.IMAP4 | None = None
    try:
        if access.tls == "implicit":
            stage = "tls"
            client = imaplib.IMAP4_SSL(
                access.host, access.port, ssl_context=context, timeout=access.timeout_s
            )
        else:
            client = imaplib.IMAP4(access.host, access.port, timeout=access.timeout_s)
            if access.tls == "starttls":
                stage = "tls"
                if "STARTTLS" not in client.capabilities:
                    raise ImapError("tls", "the server does not offer STARTTLS; not logging in")
                client.starttls(ssl_context=context)
            elif not is_loopback_host(access.host):
                raise ImapError("tls", "refusing a login in clear to a non-loopback host")
        stage = "login"
        _login(client, access.username.get_secret_value(), access.password.get_secret_value())
        # Servers announce more (MOVE, IDLE, ...) once logged in.
        status, data = client.capability()
        if status == "OK" and data and isinstance(data[-1], bytes):
            client.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
    except ImapError:
        _close(client)
        raise
    except (OSError, imaplib.IMAP4.error, EOFError) as err:
        _close(client)
        raise ImapError(stage, _say(err)) from None
    except Exception as err:  # a misbehaving server, or a bug: this mailbox's trouble
        _close(client)
        raise ImapError(stage, f"unexpected {describe_unexpected(err)}") from None
    return client


def _login(client: imaplib.IMAP4, username: str, password: str) -> None:
    """Log in; a username or password beyond ASCII goes as ``AUTHENTICATE PLAIN``.

    imaplib sends ``LOGIN``'s arguments as ASCII and raises on anything else, and
    ``LOGIN`` fixes no charset; RFC 4616 defines PLAIN's strings as UTF-8.

    Raises:
        ImapError: The login has non-ASCII characters and the server offers no PLAIN.
        imaplib.IMAP4.error: The server refused the login.
    """
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    if "AUTH=PLAIN" not in client.capabilities:
        raise ImapError(
            "login",
            "non-ASCII username or password, sent only with AUTHENTICATE PLAIN (UTF-8, "
            "RFC 4616), which this server does not offer; use an ASCII password, or a "
            "server with AUTH=PLAIN",
        )
    response = f"\0{username}\0{password}".encode()
    client.authenticate("PLAIN", lambda _: response)


def _close(client: imaplib.IMAP4 | None) -> None:
    if client is None:
        return
    try:
        client.logout()
    except (OSError, imaplib.IMAP4.error, EOFError):
        try:
            client.shutdown()
        except OSError:
            return


def _number(client: imaplib.IMAP4, name: str) -> int | None:
    _, data = client.response(name)
    try:
        return int(data[0]) if data and data[0] is not None else None
    except (TypeError, ValueError):
        return None


def _uids(data: list[bytes | None]) -> list[int]:
    return [int(uid) for uid in b" ".join(item or b"" for item in data).split() if uid.isdigit()]


def _search_since(day: datetime) -> str:
    return f"SINCE {day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def _fetch(client: imaplib.IMAP4, uids: list[int], item: str) -> dict[int, tuple[int, bytes]]:
    """UID FETCH ``item`` for ``uids``: by UID, (size, bytes)."""
    found: dict[int, tuple[int, bytes]] = {}
    for start in range(0, len(uids), _CHUNK):
        chunk = ",".join(str(uid) for uid in uids[start : start + _CHUNK])
        status, data = client.uid("FETCH", chunk, f"(UID RFC822.SIZE {item})")
        if status != "OK":
            raise ImapError("fetch", f"FETCH answered {status}")
        for part in data:
            if not isinstance(part, tuple):
                continue
            head, body = part
            uid = size = 0
            for match in _FETCH_HEAD.finditer(head):
                if match.group(1):
                    uid = int(match.group(1))
                else:
                    size = int(match.group(2))
            if uid:
                found[uid] = (size, bytes(body))
    return found


def needs_body(headers: bytes) -> bool:
    """Tell whether the headers look like a delivery or feedback report."""
    return _REPORT_HINTS.search(headers) is not None


def _key(headers: bytes) -> str:
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(headers)
    message_id = str(parsed.get("Message-ID", "") or "").strip()
    if message_id and len(message_id) < 300:
        return "mid:" + message_id
    return "sha:" + hashlib.sha256(headers).hexdigest()


def _read_folder(
    client: imaplib.IMAP4,
    folder: str,
    cursor: Cursor | None,
    since: datetime,
    counts: list[int],
    *,
    progress: Progress | None,
    mailbox: str,
) -> tuple[Cursor | None, list[Arrival]]:
    status, _ = client.select(_quote(folder), readonly=True)
    if status != "OK":
        return None, []
    validity = _number(client, "UIDVALIDITY")
    next_uid = _number(client, "UIDNEXT")
    if validity is None:
        raise ImapError("folder", f"{folder}: the server gave no UIDVALIDITY")
    if cursor is not None and cursor.uidvalidity == validity:
        if next_uid is not None and next_uid <= cursor.last_uid + 1:
            return cursor, []
        status, data = client.uid("SEARCH", f"UID {cursor.last_uid + 1}:*")
        floor = cursor.last_uid
    else:
        status, data = client.uid("SEARCH", _search_since(since - timedelta(days=1)))
        floor = 0
    if status != "OK":
        raise ImapError("fetch", f"{folder}: SEARCH answered {status}")
    uids = sorted(uid for uid in _uids(data) if uid > floor)
    last = max([floor, *uids, (next_uid - 1) if next_uid and cursor is None else 0])
    if cursor is not None and cursor.uidvalidity != validity and next_uid:
        last = max(last, next_uid - 1)
    arrivals: list[Arrival] = []
    read = Tally(
        progress, f"reading {mailbox} {folder}", total=len(uids), unit="message", every=BATCH
    )
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        arrivals += _read_batch(client, folder, validity, batch, counts)
        read.add(len(batch))
    read.finish()
    return Cursor(validity, last), arrivals


def _read_batch(
    client: imaplib.IMAP4, folder: str, validity: int, uids: list[int], counts: list[int]
) -> list[Arrival]:
    """Fetch and classify a few messages: their headers, and the bodies of reports."""
    headers = _fetch(client, uids, f"BODY.PEEK[HEADER]<0.{HEADER_LIMIT}>")
    counts[0] += len(headers)
    wanted = [uid for uid, (_, head) in headers.items() if needs_body(head)]
    bodies = _fetch(client, wanted, f"BODY.PEEK[]<0.{BODY_LIMIT}>") if wanted else {}
    counts[1] += len(bodies)
    arrivals = []
    for uid in sorted(headers):
        size, head = headers[uid]
        raw = bodies.get(uid, (size, head + b"\r\n"))[1]
        complete = uid not in bodies or size <= BODY_LIMIT
        arrivals.append(
            Arrival(
                folder,
                validity,
                uid,
                _key(head),
                size,
                complete,
                classify(raw),
                sendtokens.candidates(raw),
            )
        )
    return arrivals


def _named(access: MailboxAccess) -> str:
    """The mailbox as a person knows it: ``campaign/credential``, or a shared mailbox's id."""
    return "/".join(part for part in (access.campaign_id, access.credential_id) if part)


def poll(
    access: MailboxAccess,
    cursors: Mapping[str, Cursor],
    since: datetime,
    *,
    progress: Progress | None = None,
) -> PollResult:
    """Read what is new in each folder since ``cursors`` (or since the day of ``since``).

    ``progress`` is told, folder by folder, how many of the messages to read are read
    (a first poll of a big mailbox reads many).

    Raises:
        ImapError: The server could not be reached, refused the login, or failed a command.
    """
    started = time.monotonic()
    client = connect(access)
    counts = [0, 0]
    found: dict[str, Cursor] = {}
    arrivals: list[Arrival] = []
    missing: list[str] = []
    try:
        for folder in access.folders:
            cursor, new = _read_folder(
                client,
                folder,
                cursors.get(folder),
                since,
                counts,
                progress=progress,
                mailbox=_named(access),
            )
            if cursor is None:
                missing.append(folder)
                continue
            found[folder] = cursor
            arrivals.extend(new)
    except (OSError, imaplib.IMAP4.error, EOFError) as err:
        raise ImapError("fetch", _say(err)) from None
    finally:
        _close(client)
    return PollResult(
        found, tuple(arrivals), counts[0], counts[1], tuple(missing), time.monotonic() - started
    )


def fetch_full(
    access: MailboxAccess, folder: str, uidvalidity: int, uids: list[int]
) -> list[bytes]:
    """The whole messages (``BODY.PEEK[]``) still in ``folder`` under ``uidvalidity``."""
    client = connect(access)
    try:
        status, _ = client.select(_quote(folder), readonly=True)
        if status != "OK" or _number(client, "UIDVALIDITY") != uidvalidity:
            return []
        return [body for _, body in _fetch(client, uids, "BODY.PEEK[]").values()]
    except (OSError, imaplib.IMAP4.error, EOFError) as err:
        raise ImapError("fetch", _say(err)) from None
    finally:
        _close(client)


def _trash(client: imaplib.IMAP4) -> str | None:
    status, data = client.list()
    if status != "OK":
        return None
    names: list[tuple[bytes, str]] = []
    for line in data:
        if not isinstance(line, bytes):
            continue
        match = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) "?([^"]*)"?$', line)
        if match:
            names.append((match.group(1), match.group(2).decode("utf-8", "replace")))
    for flags, name in names:
        if b"\\Trash" in flags:
            return name
    return next((name for _, name in names if name.lower() in ("trash", "deleted items")), None)


def dispose(access: MailboxAccess, folder: str, uidvalidity: int, uids: list[int]) -> str:
    """Move processed reports to the Trash folder, or flag them deleted if there is none.

    Returns:
        What was done (``moved to Trash``, ``flagged deleted``, ``folder changed``).
    """
    client = connect(access)
    try:
        status, _ = client.select(_quote(folder))
        if status != "OK" or _number(client, "UIDVALIDITY") != uidvalidity:
            return "folder changed; left in place"
        chunk = ",".join(str(uid) for uid in uids)
        trash = _trash(client)
        if trash is not None and trash != folder and "MOVE" in client.capabilities:
            status, _ = client.uid("MOVE", chunk, _quote(trash))
            if status == "OK":
                return f"moved to {trash}"
        client.uid("STORE", chunk, "+FLAGS.SILENT", "(\\Deleted)")
        return "flagged deleted"
    except (OSError, imaplib.IMAP4.error, EOFError) as err:
        raise ImapError("dispose", _say(err)) from None
    finally:
        _close(client)


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    readable, _, _ = select.select([sock], [], [], timeout_s)
    return bool(readable)


def _line(client: imaplib.IMAP4) -> bytes:
    line = client.readline()
    if not line:
        raise ImapError("idle", "the server closed the connection")
    return line


def _idle(
    client: imaplib.IMAP4, should_stop: Callable[[], bool], rounds_s: float, renew_s: float
) -> bool:
    tag = b"MOPS1"
    client.send(tag + b" IDLE\r\n")
    if not _line(client).startswith(b"+"):
        raise ImapError("idle", "the server refused IDLE")
    deadline = time.monotonic() + renew_s
    arrived = False
    while not arrived and not should_stop() and time.monotonic() < deadline:
        if _readable(client.sock, rounds_s):
            line = _line(client)
            arrived = line.startswith(b"*") and line.rstrip().upper().endswith(b"EXISTS")
    client.send(b"DONE\r\n")
    while not _line(client).startswith(tag):
        pass
    return arrived


def wait_for_mail(
    access: MailboxAccess,
    should_stop: Callable[[], bool],
    *,
    rounds_s: float = 1.0,
    renew_s: float = 25 * 60,
) -> bool:
    """IDLE on INBOX until new mail (``True``), ``renew_s`` passed or ``should_stop()``.

    Raises:
        ImapError: The connection failed or the server does not offer IDLE.
    """
    client = connect(access)
    try:
        if "IDLE" not in client.capabilities:
            raise ImapError("idle", "the server does not offer IDLE")
        status, _ = client.select("INBOX", readonly=True)
        if status != "OK":
            raise ImapError("idle", "INBOX cannot be opened")
        return _idle(client, should_stop, rounds_s, renew_s)
    except ImapError:
        raise
    except (OSError, imaplib.IMAP4.error, EOFError) as err:
        raise ImapError("idle", _say(err)) from None
    finally:
        _close(client)
