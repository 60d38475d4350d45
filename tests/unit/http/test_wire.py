"""The frames between the daemon and its HTTP process: what goes through, what is refused."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
from multiprocessing import Pipe

import pytest

from mailopsd.http import wire
from mailopsd.http.app import HOOK_MAX_BYTES, Response


def _request(**environ: object) -> wire.Frame:
    body = b"List-Unsubscribe=One-Click"
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/campaigns",
        "QUERY_STRING": "a=1",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": "Bearer k",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": object(),  # not text: never sent
        "REMOTE_USER": "x",  # not a variable the daemon reads: never sent
    }
    return wire.request_frame(7, {**base, **environ})


def test_a_request_arrives_as_it_was_sent() -> None:
    frame = _request()
    assert json.loads(json.dumps(frame)) == frame  # plain JSON
    environ = wire.environ_from(frame)
    assert environ["wsgi.input"].read() == b"List-Unsubscribe=One-Click"
    assert {k: v for k, v in environ.items() if k != "wsgi.input"} == {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/campaigns",
        "QUERY_STRING": "a=1",
        "CONTENT_LENGTH": "26",
        "HTTP_AUTHORIZATION": "Bearer k",
    }


def test_a_response_arrives_as_it_was_sent() -> None:
    response = Response("302 Found", b"\x00\xff", "text/plain", (("Location", "https://x/"),))
    frame = wire.response_frame(3, response)
    assert frame["answer"] == 3
    assert wire.response_from(json.loads(json.dumps(frame))) == response


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"environ": {"PATH_INFO": 1}}, "must map CGI variable names to text"),
        ({"environ": {"wsgi.input": "x"}}, "must map CGI variable names to text"),
        ({"environ": []}, "must map CGI variable names to text"),
        ({"body": "not base64!"}, "a body must be base64 text"),
        ({"body": None}, "a body must be base64 text"),
        ({"body": "A" * (HOOK_MAX_BYTES * 2)}, "larger than the server reads"),
    ],
)
def test_a_bad_request_frame_is_refused(change: wire.Frame, message: str) -> None:
    """The daemon checks every field of what the HTTP process sends."""
    with pytest.raises(wire.WireError, match=message):
        wire.environ_from({**_request(), **change})


@pytest.mark.parametrize(
    "change",
    [{"status": None}, {"headers": [["a"]]}, {"headers": [["a", 1]]}, {"headers": "x"}],
)
def test_a_bad_answer_frame_is_refused(change: wire.Frame) -> None:
    frame = wire.response_frame(1, Response("200 OK"))
    with pytest.raises(wire.WireError):
        wire.response_from({**frame, **change})


def test_a_time_must_be_aware() -> None:
    assert wire.time_from({"at": "2026-12-04T10:00:00+00:00"}).utcoffset() is not None
    for at in ("2026-12-04T10:00:00", "yesterday", 5):
        with pytest.raises(wire.WireError, match="aware ISO 8601"):
            wire.time_from({"at": at})


def test_the_channel_carries_json_objects_only() -> None:
    ours, theirs = Pipe()
    channel, other = wire.Channel(ours), wire.Channel(theirs)
    try:
        channel.send({"key": "k"})
        assert other.receive() == {"key": "k"}
        theirs.send_bytes(b"[1, 2]")
        with pytest.raises(wire.WireError, match="not a JSON object"):
            channel.receive()
        theirs.send_bytes(b"\x80\x04pickle")
        with pytest.raises(wire.WireError, match="not JSON"):
            channel.receive()
        os.write(theirs.fileno(), struct.pack("!i", wire.MAX_FRAME_BYTES + 1))  # a length
        with pytest.raises(OSError, match="bad message length"):
            channel.receive()  # refused before a byte of it is read
    finally:
        channel.close()
        other.close()


def test_a_shutdown_ends_a_read_waiting_on_another_thread() -> None:
    """A stop shuts the channel down while a thread reads it: that read ends at once."""
    ours, theirs = Pipe()
    channel = wire.Channel(ours)
    ended: list[BaseException] = []

    def read() -> None:
        try:
            channel.receive()
        except (EOFError, OSError) as err:
            ended.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    channel.shutdown()
    channel.shutdown()  # any number of times
    reader.join(5)
    assert not reader.is_alive()
    assert ended
    with pytest.raises(EOFError):
        theirs.recv_bytes()  # and the other side reads end-of-file
    channel.close()
    channel.close()
