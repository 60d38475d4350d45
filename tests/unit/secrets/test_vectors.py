"""Every file the real sops wrote (tests/data/sops) decrypts to its expected data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.secrets import decrypt_data, decrypt_text, parse_identities
from tests.sops_tools import KEYS, VECTORS

KEY_OF = {"sopsrepo-example": "sopsrepo-keys.txt", "two-recipients": "visible-b.txt"}
NAMES = sorted(
    path.name.removesuffix(".enc.yaml")
    for path in VECTORS.glob("*.enc.yaml")
    if not path.name.startswith("tampered")
)


def _identities(name: str):  # type: ignore[no-untyped-def]
    key = KEYS / KEY_OF.get(name, "visible-a.txt")
    return parse_identities(key.read_text(), key.name)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return goyaml.format_go_time(value)
    return value


@pytest.mark.parametrize("name", NAMES)
def test_vector_decrypts_to_expected(name: str) -> None:
    """The parsed-data path gives exactly the expected JSON (types included)."""
    text = (VECTORS / f"{name}.enc.yaml").read_text()
    data = goyaml.parse_yaml(text).data
    assert isinstance(data, dict)
    decrypted = decrypt_data(data, _identities(name), f"{name}.enc.yaml")
    expected = json.loads((VECTORS / f"{name}.expected.json").read_text())
    assert _jsonable(decrypted.data) == expected
    assert json.dumps(_jsonable(decrypted.data)) == json.dumps(expected)


@pytest.mark.parametrize("name", NAMES)
def test_vector_text_decrypts_to_expected(name: str) -> None:
    """The text path gives YAML that reads back as the expected data."""
    text = (VECTORS / f"{name}.enc.yaml").read_text()
    plain = decrypt_text(text, _identities(name), f"{name}.enc.yaml").text
    assert "\nsops:" not in plain
    assert "ENC[" not in plain
    expected = json.loads((VECTORS / f"{name}.expected.json").read_text())
    assert _jsonable(goyaml.parse_yaml(plain).data) == expected


def test_encrypted_comments_are_decrypted() -> None:
    """Comments sops encrypted come back as text, in place."""
    text = (VECTORS / "sopsrepo-example.enc.yaml").read_text()
    plain = decrypt_text(text, _identities("sopsrepo-example"), "example").text
    assert "# private key for secret operations in app2" in plain
    assert "# by adding the `_unencrypted` suffix" in plain


@pytest.mark.parametrize(
    ("name", "position", "message"),
    [
        (
            "tampered-swapped-values",
            ":3:11",
            ": smtp.host: holds the value encrypted as smtp.username: it was moved here "
            "without the key; move it back, or make such changes with: mailopsd secrets edit "
            "tampered-swapped-values.enc.yaml (and 1 more)",
        ),
        (
            "tampered-plain-value",
            "",
            ": MAC mismatch: the file was changed without its key, or is corrupted",
        ),
    ],
)
def test_tampered_vectors_rejected(name: str, position: str, message: str) -> None:
    """Both tampered files are refused, on both paths, with a message a person understands
    (located in the file where the text is at hand)."""
    text = (VECTORS / f"{name}.enc.yaml").read_text()
    data = goyaml.parse_yaml(text).data
    assert isinstance(data, dict)
    with pytest.raises(SecretError) as caught:
        decrypt_data(data, _identities(name), f"{name}.enc.yaml")
    assert str(caught.value) == f"{name}.enc.yaml{message}"
    with pytest.raises(SecretError) as caught:
        decrypt_text(text, _identities(name), f"{name}.enc.yaml")
    assert str(caught.value) == f"{name}.enc.yaml{position}{message}"


def test_wrong_key_names_recipients(tmp_path: Path) -> None:
    """A key that opens no stanza is named, with the recipients the file is for."""
    text = (VECTORS / "two-recipients.enc.yaml").read_text()
    data = goyaml.parse_yaml(text).data
    assert isinstance(data, dict)
    wrong = parse_identities((KEYS / "sopsrepo-keys.txt").read_text(), "sopsrepo-keys.txt")
    with pytest.raises(SecretError) as caught:
        decrypt_data(data, wrong, "two-recipients.enc.yaml")
    recipients = [entry["recipient"] for entry in data["sops"]["age"]]  # type: ignore[index]
    assert str(caught.value) == (
        "none of the age identities in sopsrepo-keys.txt can open two-recipients.enc.yaml; "
        f"it is encrypted for {recipients[0]}, {recipients[1]}"
    )
