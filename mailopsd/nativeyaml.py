"""The common case of a YAML document parsed natively, in a fraction of PyYAML's time.

A config file is block mappings and sequences of plain and quoted scalars. rapidyaml
(C++) parses such a document and writes it out as JSON, which the standard library's C
decoder reads back; together that is more than ten times faster than PyYAML's C loader,
whose node objects are built in Python. JSON keeps a value's text but not its scalar
style, and go-yaml's typing needs it only where they differ: a plain scalar JSON can
represent (a number, ``true``, ``false``, ``null``) is written bare and typed here from
its text; any other scalar is a JSON string, which a plain scalar types as itself unless
it reads as something else (``0o17``, ``~``, ``2024-01-31``...). Those few are looked up
in the parsed tree for their style. What JSON cannot carry (tags, anchors and aliases,
several documents, a key given twice, characters YAML refuses) makes :func:`parse` answer
``None``: the caller parses the text the general way, which also words every error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator

import ryml

__all__ = ["parse"]

# A tag (!), an anchor (&name) or an alias (*name) starts a node: at the document's
# start, after white space, a flow indicator or a colon. One inside a quoted or block
# scalar ("R&D", "a *bold* move") only sends the document the general way.
_BEFORE_PROPERTY = frozenset(" \t\r\n[{,:")
# The bytes of the characters YAML does not allow, once the allowed ASCII ones are
# deleted: C0 controls and DEL (the rest of ASCII), C1 controls, U+FFFE, U+FFFF.
_ALLOWED_ASCII = bytes([9, 10, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])
_SURROGATE_ESCAPE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F]")
# Also NEL, LS and PS, which PyYAML (YAML 1.1) reads as line breaks: the two parsers
# would fold them apart, so they go the general way too.
_REFUSED_UTF8 = re.compile(rb"\xc2[\x80-\x9f]|\xef\xbf[\xbe\xbf]|\xe2\x80[\xa8\xa9]")
# The texts a plain scalar may not keep as a string: numbers, timestamps, booleans,
# nulls, .inf and .nan start so (the typing itself decides).
_LONG = 19  # digits, sign included, from which an integer may not fit 64 bits
_MAYBE_RETYPED = re.compile(
    r"[-+.~0-9@`\]}:?% ]|(?:true|True|TRUE|false|False|FALSE|null|Null|NULL)\Z"
)
# rapidyaml reads a plain scalar starting with these where YAML 1.1 does not: the
# reserved indicators and "%", a closing bracket, and (in a flow) ":" or "?" with no space
# after; and a space, which starts no plain scalar, but does one of rapidyaml's when a
# line is indented too deep after a quoted one. A string that starts so is looked up,
# and if it was plain, the document goes the general way, which refuses it with its
# message or reads it its own way.
_RESERVED = ("@", "`", "%", "]", "}", ":", "?", " ")

# A block scalar's header, wherever one may start (a line's first node, or after an
# indicator); rapidyaml reads some headers YAML refuses (">  - x"), so a header that is
# not one of YAML's sends the document the general way, which words the error.
_HEADER_REST = re.compile(r"(?:[1-9][-+]?|[-+][1-9]?)?(?:[ ]+#.*)?[ ]*\r?\Z")
# A document marker: rapidyaml reads "..." first as an empty document, YAML 1.1 not.
_MARKERS = ("---", "...")

# rapidyaml writes a parse error to the process's standard error before raising it, with
# no way to turn that off from Python; the message the operator reads is the general
# parser's, so that output is held back (see _HeldStderr).
_RYML_LINE = re.compile(rb"^(?:line=\d+ col=\d+ .*ERROR: |.*\(detected here\)$)")


class _Unsuitable(Exception):  # noqa: N818 - a signal, not an error
    """The document needs the general parser."""


def parse(text: str, type_plain: Callable[[str], object]) -> object | None:
    """Parse a document of mappings, sequences and scalars, typing plain scalars.

    Args:
        text: The document.
        type_plain: Types a plain scalar's text (go-yaml's rules).

    Returns:
        The document's value (a dict or a list), or ``None`` when the document needs
        the general parser: it is invalid, empty, a single scalar, or uses what JSON
        cannot carry.
    """
    raw = text.encode()
    if "\t" in text:
        return None  # YAML 1.1 allows a tab in fewer places than rapidyaml reads one
    if _has_properties(text) or text.startswith("%") or "\n%" in text or _refused(raw):
        return None
    if text.startswith(_MARKERS) or "\n---" in text or "\n..." in text:
        return None  # a document marker: the general parser knows where documents end
    if not _headers_valid(text):
        return None
    if ("\\u" in text or "\\U" in text) and _SURROGATE_ESCAPE.search(text):
        return None  # "\ud800" makes no character: the general parser says so
    with _STDERR.held():
        try:
            tree = ryml.parse_in_arena(raw)
        except ryml.ExceptionBasic:  # the general parser words it
            return None
    root = tree.root_id()
    if tree.is_stream(root) or not (tree.is_map(root) or tree.is_seq(root)):
        return None  # empty, a scalar, or a stream of documents
    try:
        data = json.loads(
            ryml.emit_json(tree),
            # A JSON number is a plain scalar in JSON's syntax, which go-yaml types as
            # Python does; only an integer beyond 64 bits becomes a float there.
            parse_int=lambda digits: int(digits) if len(digits) < _LONG else type_plain(digits),
            parse_constant=_unsuitable,
        )
        for path, step in _retyped(data, type_plain, tree.size()):
            _retype(tree, data, path, step, type_plain)
    except (_Unsuitable, ValueError):
        return None
    assert isinstance(data, dict | list)  # noqa: S101 - the root was a mapping or sequence
    return data


def _has_properties(text: str) -> bool:
    """Whether a tag, an anchor or an alias may start a node, named or not.

    Each character is found by ``str.find`` and its place looked at here: a pattern,
    even a character class, scans a large file ten times slower.
    """
    for char in "!&*":
        at = text.find(char)
        while at >= 0:
            named = char == "!" or not text[at + 1 : at + 2].isspace()
            if named and (at == 0 or text[at - 1] in _BEFORE_PROPERTY):
                return True
            if not named and _starts_node(text, at, flow=True):
                return True  # "& x": no name, which YAML refuses; "R & D" is text
            at = text.find(char, at + 1)
    return False


def _headers_valid(text: str) -> bool:
    """Whether every "|" or ">" where a node may start is followed by a valid header."""
    for indicator in "|>":
        at = text.find(indicator)
        while at >= 0:
            if _starts_node(text, at, flow=False):
                end = text.find("\n", at)
                if not _HEADER_REST.match(text, at + 1, len(text) if end < 0 else end):
                    return False
            at = text.find(indicator, at + 1)
    return True


def _starts_node(text: str, at: int, *, flow: bool) -> bool:
    """Whether a node may start at ``at``.

    That is after a line's indentation, after an indicator and a space, or (``flow``)
    after a flow indicator.
    """
    start = text.rfind("\n", 0, at) + 1
    before = text[start:at].rstrip(" ")
    if not before:
        return True
    return (before[-1] in "-?:" and len(before) < at - start) or (flow and before[-1] in "[{,")


def _refused(raw: bytes) -> bool:
    """Whether the text has a character YAML refuses, or a line break beyond ASCII."""
    if raw.translate(None, _ALLOWED_ASCII):
        return True
    maybe = b"\xc2" in raw or b"\xef\xbf" in raw or b"\xe2\x80" in raw
    return maybe and _REFUSED_UTF8.search(raw) is not None


def _unsuitable(_: str) -> object:
    raise _Unsuitable


def _retyped(
    data: object, type_plain: Callable[[str], object], nodes: int
) -> list[tuple[tuple[str | int, ...], str | int]]:
    """Where a string value would type as something else if it was plain.

    This walk visits every value, so it is kept to the bare loop (a fifth of the parse).
    It also counts them: fewer than the tree's ``nodes`` (the root aside) means that a
    mapping gave a key twice, which JSON's decoder kept once.

    Raises:
        _Unsuitable: A key would type as something else if it was plain (a number or a
            date as a key: rare, and left to the general parser), or was given twice.
    """
    found: list[tuple[tuple[str | int, ...], str | int]] = []
    keys: set[str] = set()  # the same keys recur in every campaign and credential
    maybe = _MAYBE_RETYPED.match
    counted = [0]

    def walk(value: object, path: tuple[str | int, ...]) -> None:
        items: Iterable[tuple[str | int, object]]
        counted[0] += len(value)  # type: ignore[arg-type]
        if type(value) is dict:
            if not keys.issuperset(value):
                _check_keys(value, keys, type_plain)
            items = value.items()
        else:
            items = enumerate(value)  # type: ignore[arg-type]
        for step, child in items:
            kind = type(child)
            if kind is str:
                text: str = child  # type: ignore[assignment]
                if maybe(text) and (
                    text.startswith(_RESERVED) or not isinstance(type_plain(text), str)
                ):
                    found.append((path, step))
            elif kind is dict or kind is list:
                walk(child, (*path, step))

    walk(data, ())
    if counted[0] != nodes - 1:
        raise _Unsuitable  # a key given twice: the general parser reports where
    return found


def _check_keys(
    mapping: dict[str, object], keys: set[str], type_plain: Callable[[str], object]
) -> None:
    for key in mapping:
        if key not in keys:
            if not key:
                # rapidyaml reads a key left out (": value") as an empty one, which YAML
                # 1.1 refuses; a quoted empty key is rare enough to go the general way too.
                raise _Unsuitable
            if _MAYBE_RETYPED.match(key) and (
                key.startswith(_RESERVED) or not isinstance(type_plain(key), str)
            ):
                raise _Unsuitable  # a key typed otherwise, or one to refuse if plain
            keys.add(key)


def _retype(
    tree: ryml.Tree,
    data: object,
    path: tuple[str | int, ...],
    step: str | int,
    type_plain: Callable[[str], object],
) -> None:
    """Give a string its plain typing when its scalar was plain."""
    container = data
    node = tree.root_id()
    for part in path:
        node = _child(tree, node, part)
        container = container[part]  # type: ignore[index]
    child = _child(tree, node, step)
    value = container[step]  # type: ignore[index]
    if type(value) is str and tree.has_val(child) and tree.is_val_plain(child):
        if value.startswith(_RESERVED):
            raise _Unsuitable
        typed = type_plain(value)
        if not isinstance(typed, str):
            container[step] = typed  # type: ignore[index]


def _child(tree: ryml.Tree, node: int, step: str | int) -> int:
    found: int = (
        tree.child(node, step) if isinstance(step, int) else tree.find_child(node, step.encode())
    )
    if found == ryml.NONE:
        raise _Unsuitable
    return found


class _HeldStderr:
    """Holds what is written to file descriptor 2 during a parse, then writes it out.

    rapidyaml's own lines are left out; other threads' output written meanwhile is kept,
    in order, and written when the parse ends (a tenth of a second for the largest
    configs). Standard error is one per process, so is this: one parse at a time holds
    it, into one file kept for the process's life (a new file per parse would cost more
    than parsing a small config file).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._fd is None:
                # A descriptor, not a file object: it stays open until the process ends.
                self._fd, name = tempfile.mkstemp(prefix="mailopsd-stderr-")
                os.unlink(name)
            try:
                saved = os.dup(2)
            except OSError:  # no standard error: nothing to hold
                yield
                return
            try:
                os.dup2(self._fd, 2)
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                self._release(self._fd)

    @staticmethod
    def _release(fd: int) -> None:
        size = os.lseek(fd, 0, os.SEEK_END)
        if not size:
            return
        os.lseek(fd, 0, os.SEEK_SET)
        written = b""
        while len(written) < size:
            chunk = os.read(fd, size - len(written))
            if not chunk:
                break
            written += chunk
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        kept = b"".join(
            line for line in written.splitlines(keepends=True) if not _RYML_LINE.match(line)
        )
        while kept:
            kept = kept[os.write(2, kept) :]


_STDERR = _HeldStderr()
