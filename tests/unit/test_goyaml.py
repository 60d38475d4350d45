"""YAML typing as sops (go-yaml v3) sees it, duplicate keys, and bounded aliases."""

from __future__ import annotations

import math
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailopsd import goyaml
from mailopsd.goyaml import YamlSyntaxError, compose_yaml, locate, parse_yaml


def _value(text: str) -> object:
    data = parse_yaml(f"v: {text}\n").data
    assert isinstance(data, dict)
    return data["v"]


class TestTyping:
    """Plain scalars are typed like go-yaml v3, not like PyYAML's YAML 1.1."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("yes", "yes"),
            ("No", "No"),
            ("on", "on"),
            ("off", "off"),
            ("y", "y"),
            ("true", True),
            ("FALSE", False),
            ("~", None),
            ("null", None),
            ("", None),
            ("123", 123),
            ("-17", -17),
            ("+12", 12),
            ("1_000", 1000),
            ("0x1F", 31),
            ("0o17", 15),
            ("012", 10),
            ("12.5", 12.5),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("1.5e-7", 1.5e-7),
            ("09:00", "09:00"),
            ("0:30:00", "0:30:00"),
            ("1 hour", "1 hour"),
            ('"123"', "123"),
            ("'true'", "true"),
            ("5%", "5%"),
            ("9223372036854775808", 9223372036854775808),
            ("99999999999999999999", 1e20),
        ],
    )
    def test_plain_scalar(self, text: str, expected: object) -> None:
        """Each form gets the go-yaml v3 type and value."""
        value = _value(text)
        assert value == expected
        assert type(value) is type(expected)

    def test_special_floats(self) -> None:
        """.inf, -.inf and .nan are floats."""
        assert _value(".inf") == math.inf
        assert _value("-.Inf") == -math.inf
        assert math.isnan(_value(".NaN"))  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),
            ("2024-01-31T10:20:30Z", datetime(2024, 1, 31, 10, 20, 30, tzinfo=UTC)),
            ("2024-01-31 10:20:30", datetime(2024, 1, 31, 10, 20, 30, tzinfo=UTC)),
            (
                "2024-02-29T01:02:03.45+01:00",
                datetime(2024, 2, 29, 1, 2, 3, 450000, tzinfo=timezone(timedelta(hours=1))),
            ),
        ],
    )
    def test_timestamps(self, text: str, expected: datetime) -> None:
        """Timestamps are aware datetimes; a date or a zone-less time is UTC."""
        assert _value(text) == expected

    def test_invalid_date_stays_text(self) -> None:
        """A timestamp-shaped scalar that is no real date stays a string."""
        assert _value("2024-02-30") == "2024-02-30"


class TestStructure:
    """Duplicate keys, aliases and syntax errors."""

    def test_duplicate_keys_recorded(self) -> None:
        """A key given twice in one mapping is reported with both lines."""
        parsed = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
        found = [(d.key, d.line, d.column, d.first_line) for d in parsed.duplicates]
        assert found == [("c", 4, 3, 3), ("a", 5, 1, 1)]

    def test_same_key_in_sibling_mappings_is_fine(self) -> None:
        """Keys only clash within one mapping."""
        assert parse_yaml("a: {x: 1}\nb: {x: 2}\n").duplicates == ()

    def test_anchor_reuse_loads(self) -> None:
        """An ordinary anchor and alias expand to equal copies."""
        data = parse_yaml("base: &b {port: 587}\nother: *b\n").data
        assert data == {"base": {"port": 587}, "other": {"port": 587}}

    def test_merge_key_is_not_merged(self) -> None:
        """<< stays an ordinary key, as sops keeps it."""
        data = parse_yaml("base: &b {port: 587}\nchild:\n  <<: *b\n").data
        assert data == {"base": {"port": 587}, "child": {"<<": {"port": 587}}}

    def test_billion_laughs_fails_fast(self) -> None:
        """Nine levels of nine aliases (10^9 values) fail with an error, in little memory."""
        lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for level in range(1, 10):
            refs = ", ".join([f"*a{level - 1}"] * 9)
            lines.append(f"a{level}: &a{level} [{refs}]")
        tracemalloc.start()
        try:
            with pytest.raises(YamlSyntaxError, match="aliases expand to more than"):
                parse_yaml("\n".join(lines) + "\n")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 20 * 2**20

    def test_recursive_alias(self) -> None:
        """An anchor that contains itself is refused."""
        with pytest.raises(YamlSyntaxError, match="recursive alias"):
            parse_yaml("a: &a [*a]\n")

    def test_syntax_error_position(self) -> None:
        """A syntax error carries its 1-based line and column."""
        with pytest.raises(YamlSyntaxError) as caught:
            parse_yaml("a: 1\nb: c: d\n")
        err = caught.value
        assert (err.message, err.line, err.column) == (
            "invalid YAML: mapping values are not allowed in this context",
            2,
            5,
        )

    def test_control_character_position(self) -> None:
        """A character YAML does not allow is located by line and column, not by offset."""
        with pytest.raises(YamlSyntaxError) as caught:
            parse_yaml("é: 1\nb: x\x07y\n")
        err = caught.value
        assert err.message.startswith("invalid YAML: unacceptable character #x0007: ")
        assert "\n" not in err.message
        assert (err.line, err.column) == (2, 5)

    def test_two_documents_refused(self) -> None:
        """A config file holds one YAML document."""
        with pytest.raises(
            YamlSyntaxError, match="a file holds one document, but a second one starts here"
        ):
            parse_yaml("a: 1\n---\nb: 2\n")


class TestLocate:
    """Positions are recovered from composed nodes only when needed."""

    TEXT = "top:\n  items:\n    - name: x\n      port: 1\n"

    def test_value_and_key_positions(self) -> None:
        """A path points at its value, or at its key when asked."""
        root = compose_yaml(self.TEXT)
        assert locate(root, ["top", "items", 0, "port"]) == (4, 13, 4)
        assert locate(root, ["top", "items", 0, "port"], key=True) == (4, 7, 4)

    def test_missing_tail_points_at_last_key(self) -> None:
        """A path that goes past what exists points at the deepest key found."""
        root = compose_yaml(self.TEXT)
        assert locate(root, ["top", "items", 0, "host"], key=True) == (3, 7, 3)


@pytest.mark.parametrize(
    "text",
    [
        Path(__file__).resolve().parents[2].joinpath("config/campaigns.example.yaml").read_text(),
        "a: 1\nb: [true, null, ~, 0x1f, 1_000, .5, -.inf, 2026-11-23, '7', \"8\"]\nc: {d: e}\n",
        "a: 1\na: 2\nb: {x: 1, x: 3}\n",
        "base: &b {k: v}\nuse: *b\n",
        "base: &b {k: v}\nmerged: {<<: *b, j: w}\n",
        "1: int key\ntrue: bool key\nnull: null key\n",
        "tagged: !!str 12\nset: !!set {a, b}\n",
        "- 2026-11-23T12:00:00.123456789Z\n- 2001-12-14 21:59:43.10 -5\n- |\n  block\n",
    ],
)
def test_fast_builder_gives_what_the_constructor_gives(text: str) -> None:
    """The fast path and PyYAML's constructor (with the go-yaml typing) agree, duplicate
    keys included; documents the fast path does not handle take the general one."""
    general = goyaml._Loader(text)
    general.duplicates = []
    try:
        expected = general.get_single_data()
    finally:
        general.dispose()
    parsed = goyaml.parse_yaml(text)
    assert parsed.data == expected
    assert repr(parsed.data) == repr(expected)
    assert list(parsed.duplicates) == sorted(general.duplicates, key=lambda d: (d.line, d.column))
