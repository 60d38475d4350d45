"""The native parse gives what the general one gives, values and types, or steps aside."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailopsd import goyaml, nativeyaml

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests/data/sops").glob("*.yaml"))


def _general(text: str) -> object:
    return goyaml._parse_general(text).data


def _native(text: str) -> object | None:
    return nativeyaml.parse(text, goyaml.resolve_plain)


def _same(native: object, general: object) -> None:
    """Equal values of equal types, down to every scalar (1 is not 1.0 nor True)."""
    assert native == general
    assert repr(native) == repr(general)


@pytest.mark.parametrize("path", VECTORS, ids=[path.name for path in VECTORS])
def test_sops_vectors(path: Path) -> None:
    """Every file the real sops tool wrote takes the native path, to the same values."""
    text = path.read_text()
    native = _native(text)
    assert native is not None
    _same(native, _general(text))


def test_example_config() -> None:
    """The example config (encrypted, every field used) takes the native path."""
    text = (ROOT / "config/campaigns.example.yaml").read_text()
    native = _native(text)
    assert native is not None
    _same(native, _general(text))


def test_generated_config(tmp_path: Path) -> None:
    """A generated config of many campaigns and credentials gives the same values."""
    from bench.generate import generate_credentials

    text = generate_credentials(tmp_path, 200).read_text()
    native = _native(text)
    assert native is not None
    _same(native, _general(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 0o17\nb: '0o17'\nc: \"0o17\"\n", {"a": 15, "b": "0o17", "c": "0o17"}),
        ("a: ~\nb: '~'\nc:\nd: ''\n", {"a": None, "b": "~", "c": None, "d": ""}),
        ("- 2024-01-31\n- '2024-01-31'\n- 1_000\n- .inf\n- True\n- 'NULL'\n", None),
        ("a: 12345678901234567890\nb: -9223372036854775808\nc: 99999999999999999999\n", None),
        ("a: |\n  2024-01-31\nb: >-\n  0x1F\n", {"a": "2024-01-31\n", "b": "0x1F"}),
        ("a: [1, '2', 3.5, -.5, 1e3, 12., 0x1f]\nb: {c: 'd', e: f}\n", None),
    ],
)
def test_plain_and_quoted_scalars_typed_apart(text: str, expected: object) -> None:
    """A scalar JSON writes as a string is typed by its style, plain or not."""
    native = _native(text)
    assert native is not None
    _same(native, _general(text))
    if expected is not None:
        assert native == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # a key twice: reported with its lines
        "a: &x 1\nb: *x\n",  # an alias
        "a: !!str 12\n",  # a tag
        "%YAML 1.2\n---\na: 1\n",  # a directive
        "a: 1\n---\nb: 2\n",  # two documents
        "---\na: 1\n",  # a document marker
        "1: a\n",  # a key typed as a number
        "a: \x07\n",  # a character YAML refuses
        "a: \u0085x\u0080\n",  # a C1 control
        "",
        "# only a comment\n",
        "just a scalar\n",
        "a: 'unclosed\n",
        "a: [1, 2\n",
        "a:\n\tb: 1\n",
        "a: +5\n",  # JSON cannot hold it
        "a: @x\n",  # a reserved indicator starts no plain scalar
        "a: `x\n",
        "a: [b, @c]\n",
        # What rapidyaml reads and YAML 1.1 refuses, or reads otherwise:
        "a:\n  b: 1\n  : value\n",  # a key left out
        "- : value\n",
        "a: ]x\n",  # a plain scalar may not start with a closing bracket
        "]x: 1\n",
        "a: {b: %5}\n",
        "a: [:x]\n",
        "a: [?x]\n",  # a key in a flow sequence, for YAML 1.1
        "- b:\n  - 'x'\n   e: 1\n",  # a line indented too deep after a quoted scalar
        "a: >  - x\n",  # not a block scalar's header
        "a: >2 x\n",
        "...\na: 1\n",  # a document's end before any document
        "a:\n  \t\n  b: 1\n",  # a tab where YAML 1.1 allows none
        "a:\tb\n",
        "a: & b\n",  # an anchor without a name
        "- * b\n",
        "  & value: 1\n",
    ],
)
def test_steps_aside(text: str) -> None:
    """What JSON cannot carry, and every invalid text, is left to the general parser."""
    assert _native(text) is None


def test_property_inside_text_only_costs_speed() -> None:
    """An ampersand in a sentence sends the file the general way; the value is the same."""
    text = "a: Tom & Jerry\nb: 'R&D or *now*'\n"
    assert _native(text) is None
    assert goyaml.parse_yaml(text).data == {"a": "Tom & Jerry", "b": "R&D or *now*"}


def test_parse_error_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """The native parser's own error output never reaches standard error; the error the
    person reads is the general parser's, with its position."""
    with pytest.raises(goyaml.YamlSyntaxError) as caught:
        goyaml.parse_yaml("a: 'unclosed\nb: 2\n")
    assert (caught.value.line, caught.value.column) == (3, 1)
    assert capfd.readouterr().err == ""


def test_other_output_during_a_parse_is_kept(capfd: pytest.CaptureFixture[str]) -> None:
    """What another thread writes to standard error while a file is parsed still appears."""
    text = "a: 1\n" * 50_000 + "b: [unclosed\n"
    writer = threading.Thread(
        target=lambda: [
            print(f"line {n}", file=__import__("sys").stderr, flush=True) for n in range(200)
        ]
    )
    writer.start()
    for _ in range(3):
        assert _native(text) is None
    writer.join()
    err = capfd.readouterr().err.splitlines()
    assert err == [f"line {n}" for n in range(200)]


# A strategy for documents of block mappings and sequences, flow collections, and
# scalars in every style, with plain texts chosen where go-yaml's typing is subtle.
_TRICKY_PLAIN = [
    *("0", "-0", "+12", "012", "0o17", "0x1F", "0b101", "1_000", "9223372036854775808"),
    *("99999999999999999999", "-9223372036854775809", "18446744073709551616"),
    *(".5", "-.5", "12.", "1e3", "1E3", "1.5e-7", "1e400", ".inf", "-.Inf", ".NaN", "NaN"),
    *("true", "True", "TRUE", "false", "yes", "No", "on", "~", "null", "Null", "NULL"),
    *("2024-01-31", "2024-1-3", "2026-11-23T12:00:00.123456789Z", "2001-12-14 21:59:43.10 -5"),
    *("2024-02-30", "09:00", "0:30:00", "1 hour", "4 months 5:00:00", "5%", "3.9.0", "-"),
    *("a b", "x-y", "ENC[AES256_GCM,data:abc=,iv:x,tag:y,type:str]", "é", "日本", "@x", "`x"),
]
_plain = st.sampled_from(_TRICKY_PLAIN) | st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9 _@./%+=()-]{0,15}[A-Za-z0-9]", fullmatch=True
)
_printable = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
_any_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\n\t\"'\\#:-"),
    max_size=12,
)
_line = st.text(_printable, max_size=12).map(str.strip)


@st.composite
def _scalar(draw: st.DrawFn, indent: int) -> str:
    style = draw(st.sampled_from(["plain", "single", "double", "literal", "folded"]))
    if style == "plain":
        return draw(_plain)
    if style == "single":
        return "'" + draw(st.text(_printable, max_size=12)).replace("'", "''") + "'"
    if style == "double":
        return json.dumps(draw(_any_text), ensure_ascii=draw(st.booleans()))
    lines = draw(st.lists(_line, min_size=1, max_size=4))
    chomp = draw(st.sampled_from(["", "-", "+"]))
    pad = " " * (indent + 2)
    body = "".join(f"{pad}{line}\n" if line else "\n" for line in lines)
    return ("|" if style == "literal" else ">") + chomp + "\n" + body.rstrip(" ")


_key = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


def _flow(draw: st.DrawFn) -> str:
    items = draw(st.lists(_plain | st.text(_printable, max_size=6).map(json.dumps), max_size=4))
    if draw(st.booleans()):
        return "[" + ", ".join(items) + "]"
    keys = draw(st.lists(_key, min_size=len(items), max_size=len(items), unique=True))
    return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"


@st.composite
def _block(draw: st.DrawFn, indent: int = 0, depth: int = 0) -> str:
    pad = " " * indent
    is_map = depth == 0 or draw(st.booleans())
    count = draw(st.integers(1, 4))
    keys = draw(st.lists(_key, min_size=count, max_size=count, unique=True))
    out = []
    for key in keys:
        head = f"{pad}{key}:" if is_map else f"{pad}-"
        kind = draw(
            st.sampled_from(["scalar", "scalar", "flow", "block"] if depth < 3 else ["scalar"])
        )
        if kind == "block":
            out.append(head + "\n" + draw(_block(indent + 2, depth + 1)))
        elif kind == "flow":
            out.append(f"{head} {_flow(draw)}\n")
        else:
            value = draw(_scalar(indent))
            out.append(f"{head} {value}" + ("" if value.endswith("\n") else "\n"))
    return "".join(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_block())
def test_native_and_general_agree(text: str) -> None:
    """On any document of this shape, both paths give identical values and types; where
    the general parser refuses the text, the native one steps aside."""
    try:
        general = _general(text)
    except goyaml.YamlSyntaxError:
        assert _native(text) is None
        return
    native = _native(text)
    assume(native is not None)
    _same(native, general)


_BASES = [
    (ROOT / "config/campaigns.example.yaml").read_text(),
    *(path.read_text() for path in VECTORS),
]
_SNIPPETS = [": value", "}", "]", "{", "[", "   extra: 1", "%YAML 9.9", "- x", "? a", "- : x"]
_SNIPPETS += ["a: b: c", "'x", "|", ">  - x", "...", "---", "a: [b", "a: {b: %c}", "\t", "& x"]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A real config file with a few lines broken the way a hurried edit breaks them."""
    lines = draw(st.sampled_from(_BASES)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        op = draw(st.sampled_from(["insert", "dedent", "indent", "character", "delete"]))
        if op == "insert":
            indent = max(0, len(line) - len(line.lstrip(" ")) + draw(st.integers(-3, 3)))
            lines.insert(at, " " * indent + draw(st.sampled_from(_SNIPPETS)) + "\n")
        elif op == "dedent":
            lines[at] = line.removeprefix(" ")
        elif op == "indent":
            lines[at] = " " + line
        elif len(line) > 1:
            where = draw(st.integers(0, len(line) - 2))
            new = draw(st.sampled_from(":-?{}[],#'\"|> \t%@`&*!")) if op == "character" else ""
            lines[at] = line[:where] + new + line[where + (op == "delete") :]
    return "".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_a_broken_file_is_never_read_natively(text: str) -> None:
    """Whatever a hurried edit does to a real file, the native parse either steps aside
    or gives what the general parser gives: it never reads a file YAML refuses."""
    native = _native(text)
    if native is None:
        return
    try:
        general = _general(text)
    except goyaml.YamlSyntaxError as err:
        pytest.fail(f"read natively, refused generally ({err}):\n{text}")
    _same(native, general)
