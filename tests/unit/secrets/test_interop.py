"""Round trips against the real sops: what mailopsd writes, sops reads, and back."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.secrets import DEFAULT_RULE, EncryptOptions, Rule, decrypt_text, encrypt_text
from mailopsd.secrets.yamltext import render_scalar
from tests.sops_tools import AgeKey, make_key, run_sops
from tests.unit.secrets.test_vectors import _jsonable

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

RICH = """\
# top comment: every type, unicode, lists, multi-line strings
smtp:
  host: smtp.example.test   # inline comment
  port: 587
  password: "s3cr3t: with colon & ünïcødé €"
  timeout_seconds: 12.5
  starttls: true
  empty: ""
  nothing: null
  # a comment inside a map
  octal: 0o17
  go_octal: 012
  exponent: 1e3
  sent_at: 2025-03-01T09:00:00Z
  day: 2025-03-01
  tricky: ["yes", "0o17", "1e3", "2024-01-31", "~", "null", "true"]
  yes_plain: yes
  on_plain: on
campaigns:
  - name: spring-sale
    tags: [promo, "2024"]
    weights: [0.75, 1.0, -3]
  - name: "newsletter 📰"
    body: |
      Hi,
      two lines and an emoji 🌍
    folded: >
      folded text
      on two lines
    keep: |+
      kept trailing newlines

clé_unicode: valeur
note_unencrypted: clear text
limits_unencrypted:
  max_per_hour: 500
"""

OPTIONS = {
    "default": (EncryptOptions((), DEFAULT_RULE), []),
    "encrypted_regex": (
        EncryptOptions((), Rule("encrypted_regex", "^(password|body|tags)$")),
        ["--encrypted-regex", "^(password|body|tags)$"],
    ),
    "unencrypted_regex": (
        EncryptOptions((), Rule("unencrypted_regex", "^(host|port)$")),
        ["--unencrypted-regex", "^(host|port)$"],
    ),
    "encrypted_suffix": (
        EncryptOptions((), Rule("encrypted_suffix", "word")),
        ["--encrypted-suffix", "word"],
    ),
    "unencrypted_suffix": (
        EncryptOptions((), Rule("unencrypted_suffix", "_clear")),
        ["--unencrypted-suffix", "_clear"],
    ),
    "mac_only_encrypted": (
        EncryptOptions((), Rule("encrypted_regex", "^password$"), mac_only_encrypted=True),
        ["--encrypted-regex", "^password$", "--mac-only-encrypted"],
    ),
}
RICH_DATA = _jsonable(goyaml.parse_yaml(RICH).data)


def _with(options: EncryptOptions, recipient: str) -> EncryptOptions:
    return EncryptOptions((recipient,), options.rule, options.mac_only_encrypted)


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    return make_key(tmp_path)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_ours_opens_in_sops(tmp_path: Path, key: AgeKey, option: str) -> None:
    """A file mailopsd encrypts decrypts with `sops decrypt` to the same data."""
    options, _ = OPTIONS[option]
    path = tmp_path / "rich.enc.yaml"
    path.write_text(encrypt_text(RICH, _with(options, key.recipient), path.name, now=NOW))
    result = run_sops(["decrypt", "--output-type", "json", str(path)], key.path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == RICH_DATA
    assert "possibly unencrypted comment" not in result.stderr


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_sops_opens_in_ours(tmp_path: Path, key: AgeKey, option: str) -> None:
    """A file `sops encrypt` makes from the same plaintext decrypts with mailopsd."""
    _, flags = OPTIONS[option]
    plain = tmp_path / "rich.yaml"
    plain.write_text(RICH)
    result = run_sops(["--encrypt", "--age", key.recipient, *flags, str(plain)], key.path)
    assert result.returncode == 0, result.stderr
    decrypted = decrypt_text(result.stdout, key.identities(), "rich.yaml")
    assert _jsonable(goyaml.parse_yaml(decrypted.text).data) == RICH_DATA
    assert "# a comment inside a map" in decrypted.text


def test_ours_keeps_layout(key: AgeKey) -> None:
    """Encrypting changes only the encrypted values and adds the sops block."""
    options = EncryptOptions((key.recipient,), Rule("encrypted_regex", "^password$"))
    encrypted = encrypt_text(RICH, options, "rich.yaml", now=NOW)
    before = RICH.splitlines()
    after = encrypted.splitlines()[: len(before)]
    changed = [line for line, old in zip(after, before, strict=True) if line != old]
    assert len(changed) == 1
    assert changed[0].startswith("  password: ENC[AES256_GCM,data:")
    assert decrypt_text(encrypted, key.identities(), "rich.yaml").text == RICH


@pytest.mark.parametrize("text", ["{}\n", "# settings\n{user: ada, password: pw}\n"])
def test_flow_mapping_top_level_is_refused(key: AgeKey, text: str) -> None:
    """A {…} top level is refused: the sops block after it would not be YAML any more."""
    options = EncryptOptions((key.recipient,), Rule("encrypted_regex", "^password$"))
    with pytest.raises(SecretError, match=r"the top level is a flow mapping"):
        encrypt_text(text, options, "flow.yaml", now=NOW)


def test_json_both_ways(tmp_path: Path, key: AgeKey) -> None:
    """JSON files work both ways; sops reads every JSON number as a float."""
    data = {"user": "ada", "port": 587, "ratio": 0.5, "on": True, "list": ["a", 2], "none": None}
    plain = tmp_path / "s.json"
    plain.write_text(json.dumps(data))
    ours = tmp_path / "ours.json"
    ours.write_text(
        encrypt_text(
            plain.read_text(), EncryptOptions((key.recipient,), DEFAULT_RULE), "s.json", now=NOW
        )
    )
    result = run_sops(["decrypt", str(ours)], key.path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == data
    theirs = run_sops(["encrypt", "--age", key.recipient, str(plain)], key.path)
    assert theirs.returncode == 0, theirs.stderr
    opened = decrypt_text(theirs.stdout, key.identities(), "s.json").text
    assert json.loads(opened) == data


def test_sops_decrypts_ours_with_same_comments(tmp_path: Path, key: AgeKey) -> None:
    """sops prints our file exactly as it prints its own (comments included)."""
    plain = tmp_path / "rich.yaml"
    plain.write_text(RICH.replace("  tricky:", "  # before tricky\n  tricky:"))
    ours = tmp_path / "ours.yaml"
    options = EncryptOptions((key.recipient,), DEFAULT_RULE)
    ours.write_text(encrypt_text(plain.read_text(), options, "rich.yaml", now=NOW))
    theirs = tmp_path / "theirs.yaml"
    made = run_sops(["encrypt", "--age", key.recipient, str(plain)], key.path)
    theirs.write_text(made.stdout)
    assert (
        run_sops(["decrypt", str(ours)], key.path).stdout
        == run_sops(["decrypt", str(theirs)], key.path).stdout
    )


# Trees of every type sops stores; text rendered so go-yaml reads it back as generated.
_KEYS = st.text(
    alphabet=st.characters(categories=("L", "N"), include_characters="_-"), min_size=1, max_size=8
)
_SCALARS = (
    st.text(max_size=30).filter(lambda s: "\r" not in s)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.booleans()
    | st.none()
)
_TREES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, min_size=1, max_size=4)
        | st.dictionaries(_KEYS, children, min_size=1, max_size=4)
    ),
    max_leaves=12,
)


def _render(value: object, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        return "".join(
            f"{pad}{render_scalar(key)}:"
            + (
                f"\n{_render(item, indent + 2)}"
                if isinstance(item, dict | list) and item
                else f" {_inline(item, indent + 2)}\n"
            )
            for key, item in value.items()
        )
    assert isinstance(value, list)
    return "".join(
        f"{pad}-"
        + (
            f"\n{_render(item, indent + 2)}"
            if isinstance(item, dict | list) and item
            else f" {_inline(item, indent + 2)}\n"
        )
        for item in value
    )


def _same(left: object, right: object) -> bool:
    """Equal, except that JSON may print a float with integral value as an int."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _same(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, int | float) and isinstance(right, int | float):
        if isinstance(left, bool) or isinstance(right, bool):
            return left is right
        return float(left) == float(right)
    return left == right


def _inline(value: object, indent: int) -> str:
    if value is None:
        return "null"
    return render_scalar(value, indent=indent)


@settings(
    # More examples on demand: MAILOPSD_PROPERTY_EXAMPLES=500 (README, "Tests").
    max_examples=int(os.environ.get("MAILOPSD_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(tree=st.dictionaries(_KEYS.filter(lambda k: k != "sops"), _TREES, min_size=1, max_size=5))
def test_property_both_directions(tmp_path: Path, key: AgeKey, tree: dict[str, object]) -> None:
    """Generated trees survive mailopsd → sops and sops → mailopsd unchanged."""
    text = _render(tree, 0)
    assert goyaml.parse_yaml(text).data == tree
    ours = encrypt_text(text, EncryptOptions((key.recipient,), DEFAULT_RULE), "t.yaml", now=NOW)
    path = tmp_path / "t.yaml"
    path.write_text(ours)
    result = run_sops(["decrypt", "--output-type", "json", str(path)], key.path)
    assert result.returncode == 0, result.stderr
    assert _same(json.loads(result.stdout), tree)
    path.write_text(text)
    theirs = run_sops(["encrypt", "--age", key.recipient, str(path)], key.path)
    assert theirs.returncode == 0, theirs.stderr
    assert (
        goyaml.parse_yaml(decrypt_text(theirs.stdout, key.identities(), "t.yaml").text).data == tree
    )
