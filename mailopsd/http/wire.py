"""What the daemon and its HTTP process say to each other: JSON frames on a socket pair.

The HTTP process (:mod:`mailopsd.http.process`) faces the network; the daemon holds the
secrets. So the frames are JSON, never pickle: nothing the HTTP process sends can run
code in the daemon, and every frame the daemon reads is checked field by field and
bounded in size. ``multiprocessing.connection`` gives the framing (a length, then the
bytes) over the socket pair; only its ``send_bytes`` and ``recv_bytes`` are used, which
pickle nothing.

From the HTTP process:

- ``{"ask": id, "environ": {...}, "body": base64}``: a request the daemon answers
  (see :func:`mailopsd.http.app.needs_daemon`);
- ``{"now": id}``: the time, when the daemon runs on a clock of its own (tests, ``--now``);
- ``{"log": logger name, "level": number, "message": text}``: a log line, which the
  daemon writes with its own;
- ``{"keyed": true}``: the last signing key sent is the one in use.

From the daemon:

- ``{"key": signing key or null}``: the config's ``http.signing_key``, at the start and
  at each reload; the first also has ``"ledger"``, the shared ledger's address (with
  its password) or null for the state directory's own;
- ``{"answer": id, "status": ..., "body": base64, "content_type": ..., "headers": [...]}``;
- ``{"now": id, "at": ISO 8601}``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import socket
import threading
from datetime import datetime
from multiprocessing.connection import Connection
from typing import cast
from wsgiref.types import WSGIEnvironment

from mailopsd.http.app import HOOK_MAX_BYTES, MAX_BODY_BYTES, Response
from mailopsd.http.hooks import PATH as HOOK_PATH

__all__ = [
    "Channel",
    "WireError",
    "environ_from",
    "request_frame",
    "response_frame",
    "response_from",
    "time_from",
]

MAX_FRAME_BYTES = 2 * HOOK_MAX_BYTES
"""The largest frame either side reads: a webhook's body (base64) and headers fit."""

_ENVIRON_KEYS = frozenset(
    {
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REMOTE_ADDR",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "wsgi.url_scheme",
    }
)

Frame = dict[str, object]


class WireError(ValueError):
    """A frame that is not what the other side may send."""


class Channel:
    """One end of the socket pair: whole frames in, whole frames out, from any thread."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # one send at a time
        self._closing = threading.Lock()  # the descriptor is not closed under a shutdown

    def send(self, frame: Frame) -> None:
        """Send one frame (threads take turns).

        Raises:
            OSError: The other side is gone.
        """
        data = json.dumps(frame, separators=(",", ":")).encode("utf-8")
        with self._lock:
            self._connection.send_bytes(data)

    def receive(self) -> Frame:
        """The next frame (one thread reads).

        Raises:
            EOFError: The other side closed its end.
            OSError: The socket failed, or a frame was larger than ``MAX_FRAME_BYTES``.
            WireError: The frame is not a JSON object.
        """
        data = self._connection.recv_bytes(MAX_FRAME_BYTES)
        try:
            frame = json.loads(data)
        except ValueError as err:
            raise WireError(f"not JSON: {err}") from None
        if not isinstance(frame, dict):
            raise WireError("not a JSON object")
        return cast(Frame, frame)

    def shutdown(self) -> None:
        """End both directions at once, from any thread, any number of times.

        The other side reads end-of-file, and so does a thread of ours reading this end;
        a send blocked on a full socket fails.

        A plain close while a thread reads would not do: the kernel keeps the socket
        open until that read returns, and the file descriptor's number could be reused
        under the reader.
        """
        with self._closing:
            try:
                fd = self._connection.fileno()
            except OSError:
                return  # closed already
            try:
                with socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM) as end:
                    end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the other side is gone already

    def close(self) -> None:
        """Shut down and release this end: by the thread that reads it, once it is done."""
        self.shutdown()
        with self._lock, self._closing:  # no send is under way (the shutdown ended any)
            self._connection.close()


def request_frame(ask: int, environ: WSGIEnvironment) -> Frame:
    """The frame that carries a request to the daemon: its CGI variables and body."""
    picked = {
        key: value
        for key, value in environ.items()
        if isinstance(value, str) and (key in _ENVIRON_KEYS or key.startswith("HTTP_"))
    }
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = HOOK_MAX_BYTES if picked.get("PATH_INFO") == HOOK_PATH else MAX_BODY_BYTES
    body = environ["wsgi.input"].read(min(length, limit)) if length > 0 else b""
    return {"ask": ask, "environ": picked, "body": base64.b64encode(body).decode("ascii")}


def environ_from(frame: Frame) -> WSGIEnvironment:
    """The WSGI environ of a request frame, checked: text variables only, a bounded body.

    Raises:
        WireError: The frame is not a request as :func:`request_frame` makes them.
    """
    variables = frame.get("environ")
    if not isinstance(variables, dict) or not all(
        isinstance(key, str)
        and isinstance(value, str)
        and (key in _ENVIRON_KEYS or key.startswith("HTTP_"))
        for key, value in variables.items()
    ):
        raise WireError("a request's environ must map CGI variable names to text")
    body = _bytes(frame.get("body"))
    if len(body) > HOOK_MAX_BYTES:
        raise WireError("a request's body is larger than the server reads")
    environ: WSGIEnvironment = dict(variables)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def response_frame(answer: int, response: Response) -> Frame:
    """The frame that carries the daemon's response back."""
    return {
        "answer": answer,
        "status": response.status,
        "body": base64.b64encode(response.body).decode("ascii"),
        "content_type": response.content_type,
        "headers": [list(pair) for pair in response.headers],
    }


def response_from(frame: Frame) -> Response:
    """The response in an answer frame.

    Raises:
        WireError: The frame is not an answer as :func:`response_frame` makes them.
    """
    status, content_type, headers = (
        frame.get("status"),
        frame.get("content_type"),
        frame.get("headers"),
    )
    if not isinstance(status, str) or not isinstance(content_type, str):
        raise WireError("an answer needs a status and a content type")
    if not isinstance(headers, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
        for pair in headers
    ):
        raise WireError("an answer's headers must be pairs of text")
    pairs = tuple((str(name), str(value)) for name, value in headers)
    return Response(status, _bytes(frame.get("body")), content_type, pairs)


def time_from(frame: Frame) -> datetime:
    """The time in a ``now`` answer.

    Raises:
        WireError: It holds no aware ISO 8601 time.
    """
    at = frame.get("at")
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise WireError("a time must be an aware ISO 8601 time")
    return moment


def _bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise WireError("a body must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as err:
        raise WireError(f"a body must be base64 text: {err}") from None
