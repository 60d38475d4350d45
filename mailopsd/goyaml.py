"""YAML text to plain values, typed the way ``sops`` (go-yaml v3) types them.

Parsing is behind :func:`parse_yaml` alone. The common document (mappings, sequences,
plain and quoted scalars) is parsed natively by :mod:`mailopsd.nativeyaml`, typed with
:func:`resolve_plain`; the rest (tags, aliases, invalid text...) by PyYAML, here, which
also words every error. Neither keeps positions: when there is an error to show,
:func:`compose_yaml` parses the text again into nodes that carry line and column, and
:func:`locate` walks them.

Typing follows go-yaml v3, so a file means the same to mailopsd and to ``sops``:
``yes``/``on`` are strings, ``0o17`` and ``012`` are ints, ``1e3`` is a float,
``2024-01-31`` is a timestamp (midnight UTC), ``09:00`` is a string. Merge keys (``<<``)
are not merged (``sops`` keeps them as ordinary keys). Duplicate keys are reported,
not silently overwritten, and alias expansion is bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailopsd import nativeyaml

__all__ = [
    "NUMBER_TAG",
    "DuplicateKey",
    "GoTime",
    "ParsedYaml",
    "YamlSyntaxError",
    "compose_yaml",
    "format_go_time",
    "locate",
    "parse_go_timestamp",
    "parse_yaml",
    "path_to",
    "resolve_plain",
]

if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:  # the C parser when PyYAML was built with libyaml; same interface
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

NUMBER_TAG = "tag:mailopsd,2026:number"
_MAP_VALUES: dict[str, object] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?(Z|[-+]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?))?\Z"
)
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_EXPANSION_BASE = 1_000_000


@dataclass(frozen=True)
class DuplicateKey:
    """A mapping key given twice in one mapping (1-based positions)."""

    key: str
    line: int
    column: int
    first_line: int


@dataclass(frozen=True)
class ParsedYaml:
    """The value of a YAML document and the duplicate keys found in it."""

    data: object
    duplicates: tuple[DuplicateKey, ...]


class YamlSyntaxError(ValueError):
    """The text is not YAML mailopsd can use; ``line``/``column`` are 1-based (0: unknown)."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        """Record the message and where it applies."""
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _go_int(plain: str) -> int | None:
    match = _INT.match(plain)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567":
        digits = "0o" + digits[1:]  # Go reads a leading zero as octal
    value = int(digits, 0) * (-1 if sign == "-" else 1)
    if _INT64_MIN <= value <= _UINT64_MAX and not (sign == "+" and value > 2**63 - 1):
        return value
    return None


class GoTime(datetime):
    """A timestamp that keeps nanoseconds, which ``datetime`` cannot hold.

    Only made when a timestamp has more than six fractional digits, so that its text
    (and so a SOPS MAC over it) is reproduced exactly.
    """

    nanosecond: int

    @classmethod
    def from_datetime(cls, moment: datetime, nanosecond: int) -> GoTime:
        """Return ``moment`` carrying ``nanosecond`` (0 to 999,999,999) as its fraction."""
        made = cls(
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            nanosecond // 1000,
            tzinfo=moment.tzinfo,
        )
        made.nanosecond = nanosecond
        return made


def _fraction_us(text: str | None) -> int:
    return int((text or "0")[:6].ljust(6, "0"))


def format_go_time(moment: datetime) -> str:
    """Format like Go's RFC3339Nano: trailing fraction zeros trimmed, ``Z`` for UTC."""
    nanos = getattr(moment, "nanosecond", moment.microsecond * 1000)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_go_timestamp(text: str) -> datetime | None:
    """Read a timestamp as go-yaml v3 does (date only, or date and time); else ``None``."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    year, month, day, th, tm, ts, tf, zone, sh, sm, ss, sf = match.groups()
    hour, minute, second, fraction = (th, tm, ts, tf) if th is not None else (sh, sm, ss, sf)
    tzinfo: timezone = UTC
    if zone not in (None, "Z"):
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        tzinfo = timezone(sign * offset)
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            _fraction_us(fraction),
            tzinfo=tzinfo,
        )
    except ValueError:
        return None
    if fraction is not None and len(fraction.rstrip("0")) > 6:
        return GoTime.from_datetime(moment, int(fraction[:9].ljust(9, "0")))
    return moment


def resolve_plain(text: str) -> object:
    """Type one plain (unquoted, untagged) scalar as go-yaml v3 does.

    Args:
        text: The scalar's text.

    Returns:
        ``None``, a bool, int, float, aware ``datetime`` or the text itself.
    """
    if text in _MAP_VALUES:
        return _MAP_VALUES[text]
    if text[:1] == ".":
        return float(text) if _YAML_STYLE_FLOAT.match(text) else text
    stamp = parse_go_timestamp(text)
    if stamp is not None:
        return stamp
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_STYLE_FLOAT.match(plain):
        return float(plain)
    return text


class _Loader(_BaseLoader):
    """A safe loader with go-yaml v3 typing that records duplicate keys."""

    # Start from no resolvers (not PyYAML's YAML 1.1 set); the ones below are added.
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's class protocol
    duplicates: list[DuplicateKey]

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Build a mapping, recording keys given twice (the last value wins for now)."""
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                self.duplicates.append(
                    DuplicateKey(
                        key_node.value, line, key_node.start_mark.column + 1, seen[key_node.value]
                    )
                )
            else:
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)

    def construct_plain(self, node: ScalarNode) -> object:
        """Construct a scalar tagged by the implicit number resolver."""
        return resolve_plain(node.value)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"(?:~|null|Null|NULL|)\Z"), ["~", "n", "N", ""]
)
_Loader.add_implicit_resolver(NUMBER_TAG, re.compile(r"."), list("-+.0123456789"))
_Loader.add_constructor(NUMBER_TAG, _Loader.construct_plain)


def _count_expanded(data: object, limit: int) -> None:
    """Count the nodes of ``data`` with aliases expanded; stop past ``limit``."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(value: object) -> int:
        if not isinstance(value, dict | list):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YamlSyntaxError("recursive alias: an anchor refers to itself")
        in_progress.add(key)
        children = value.values() if isinstance(value, dict) else value
        total = 1 + sum(size(child) for child in children)
        if total > limit:
            raise YamlSyntaxError(
                f"aliases expand to more than {limit:,} values; "
                "refusing to expand (a 'billion laughs' file?)"
            )
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(data)


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _Unusual(Exception):  # noqa: N818 - a signal, not an error
    """The document uses aliases, merge keys or tags: build it the general way."""


_KEY_TAGS = frozenset({_STR_TAG, NUMBER_TAG, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


def _plain_key(loader: _Loader, node: Node) -> Hashable:
    """A mapping key that is a plain scalar; raise ``_Unusual`` for anything else."""
    if not isinstance(node, ScalarNode) or node.tag not in _KEY_TAGS:
        raise _Unusual
    key = node.value if node.tag == _STR_TAG else loader.construct_object(node)
    if not isinstance(key, Hashable):
        raise _Unusual
    return key


def _build(loader: _Loader, root: Node) -> object:
    """Build plain values from nodes, fast, for documents without aliases or merges.

    The same values as PyYAML's constructor with the go-yaml typing above (plain strings
    taken as they are, every other scalar through the loader), in a fraction of the time.

    Raises:
        _Unusual: A node is reached twice (an alias), or a merge key or an explicit
            collection tag is used.
    """
    seen: set[int] = set()
    duplicates = loader.duplicates

    def build(node: Node) -> object:
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            return loader.construct_object(node)
        if id(node) in seen:
            raise _Unusual
        seen.add(id(node))
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                raise _Unusual
            mapping: dict[Hashable, object] = {}
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = _plain_key(loader, key_node)
                line = key_node.start_mark.line + 1
                first = lines.get(key_node.value)
                if first is None:
                    lines[key_node.value] = line
                else:
                    duplicates.append(
                        DuplicateKey(key_node.value, line, key_node.start_mark.column + 1, first)
                    )
                mapping[key] = build(value_node)
            return mapping
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            return [build(item) for item in node.value]
        raise _Unusual

    return build(root)


def _construct(loader: _Loader) -> object:
    """The document's values: the fast builder, or PyYAML's constructor when needed."""
    node = loader.get_single_node()
    if node is None:
        return None
    try:
        return _build(loader, node)
    except _Unusual:
        loader.duplicates = []
        return loader.construct_document(node)


def _refused_character(text: str, err: yaml.reader.ReaderError) -> YamlSyntaxError:
    """Locate a character YAML does not allow (a control character, say).

    The reader stops at the first one; its position counts bytes in the C reader and
    characters in the Python one, so the character is looked up in the text instead.
    """
    problem = f"invalid YAML: unacceptable character #x{err.character:04x}: {err.reason}"
    at = text.find(chr(err.character)) if isinstance(err.character, int) else -1
    if at < 0:
        return YamlSyntaxError(problem)
    line_start = text.rfind("\n", 0, at) + 1
    return YamlSyntaxError(problem, line=text.count("\n", 0, at) + 1, column=at - line_start + 1)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document into plain values.

    Args:
        text: The document.

    Returns:
        The value (``None`` for an empty document) and the duplicate keys found.

    Raises:
        YamlSyntaxError: The text is not one valid YAML document, or its aliases
            expand beyond a bound.
    """
    native = nativeyaml.parse(text, resolve_plain)
    if native is not None:
        return ParsedYaml(data=native, duplicates=())
    return _parse_general(text)


def _parse_general(text: str) -> ParsedYaml:
    """Parse with PyYAML: every YAML construct, duplicate keys, and every error worded."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = _construct(loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or "invalid YAML"
        if err.context and err.context.startswith("expected a single document"):
            problem = "a file holds one document, but a second one starts here"
        elif err.context:
            problem = f"{problem} ({err.context})"
        if mark is None:
            raise YamlSyntaxError(f"invalid YAML: {problem}") from err
        raise YamlSyntaxError(
            f"invalid YAML: {problem}", line=mark.line + 1, column=mark.column + 1
        ) from err
    except yaml.reader.ReaderError as err:
        raise _refused_character(text, err) from err
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {err}") from err
    except RecursionError as err:
        raise YamlSyntaxError("invalid YAML: nested too deeply") from err
    finally:
        loader.dispose()
    if "*" in text:
        _count_expanded(data, _EXPANSION_BASE + len(text))
    duplicates = sorted(loader.duplicates, key=lambda dup: (dup.line, dup.column))
    return ParsedYaml(data=data, duplicates=tuple(duplicates))


def compose_yaml(text: str) -> Node | None:
    """Parse ``text`` into nodes that carry positions (for error reports only)."""
    return yaml.compose(text, Loader=_Loader)


def _child(node: Node, step: str | int) -> tuple[Node, Node] | None:
    """Return (key node, value node) of ``step`` under ``node``, or ``None``."""
    if isinstance(node, MappingNode):
        found = None
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == str(step):
                found = (key_node, value_node)
        return found
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        item: Node = node.value[step]
        return item, item
    return None


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def locate(
    root: Node | None, path: Sequence[str | int], *, key: bool = False
) -> tuple[int, int, int]:
    """Find the position of ``path`` in a composed document.

    Args:
        root: The document's root node.
        path: Keys and indexes from the root.
        key: Point at the last key rather than at its value.

    Returns:
        ``(line, column, depth)``: 1-based position of the value (or key) at ``path``;
        when the path goes on past what exists, the last key found and how many steps
        of ``path`` were found.
    """
    if root is None:
        return 1, 1, 0
    node: Node = root
    last_key: Node = root
    for depth, step in enumerate(path):
        pair = _child(node, step)
        if pair is None:
            return (*_position(last_key), depth)
        last_key, node = pair
    return (*_position(last_key if key else node), len(path))


def path_to(root: Node | None, line: int, column: int) -> list[str | int]:
    """Return the path of the mapping key at 1-based ``line``/``column`` ([] if none)."""
    stack: list[tuple[Node, list[str | int]]] = [(root, [])] if root is not None else []
    while stack:
        node, path = stack.pop()
        pairs: list[tuple[str | int, Node | None, Node]] = []
        if isinstance(node, MappingNode):
            pairs = [(k.value, k, v) for k, v in node.value if isinstance(k, ScalarNode)]
        elif isinstance(node, SequenceNode):
            pairs = [(i, None, v) for i, v in enumerate(node.value)]
        for step, key_node, value_node in pairs:
            if key_node is not None and (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            ) == (line, column):
                return [*path, step]
            stack.append((value_node, [*path, step]))
    return []
