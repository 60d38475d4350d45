"""YAML files of several documents, which sops reads and writes: each document its own tree.

``secrets`` commands decrypt and encrypt them as ``sops`` does (one data key and one MAC
for the file, a ``sops`` block in every document); as a config they stay refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.sops_tools import AgeKey, CliRun, run_sops

PLAIN = """\
# the first document
mailbox:
  smtp_password: first-secret
  port: 587
  note_unencrypted: kept in clear
---
# the second document
mailbox:
  smtp_password: second-secret   # inline
  enabled: true
---
extra:
  - one
  - 2
"""
DOCUMENTS = [
    {
        "mailbox": {
            "smtp_password": "first-secret",
            "port": 587,
            "note_unencrypted": "kept in clear",
        }
    },
    {"mailbox": {"smtp_password": "second-secret", "enabled": True}},
    {"extra": ["one", 2]},
]


def _json_documents(text: str) -> list[object]:
    """Read a stream of JSON values, one after another (as ``jq`` reads it)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


@pytest.fixture
def sops_made(tmp_path: Path, key: AgeKey) -> Path:
    """PLAIN encrypted by the real sops (its default rule: every value but *_unencrypted)."""
    plain = tmp_path / "multi.yaml"
    plain.write_text(PLAIN)
    made = run_sops(["encrypt", "--age", key.recipient, str(plain)], key.path)
    assert made.returncode == 0, made.stderr
    path = tmp_path / "multi.enc.yaml"
    path.write_text(made.stdout)
    return path


def test_decrypt_json_prints_every_document(sops_made: Path, key: AgeKey, run: CliRun) -> None:
    """decrypt --output-type json prints one JSON value per document, no traceback."""
    code, out, err = run(
        "secrets",
        "decrypt",
        str(sops_made),
        "--output-type",
        "json",
        "--age-key-file",
        str(key.path),
    )
    assert (code, err) == (0, "")
    assert _json_documents(out) == DOCUMENTS
    first = run_sops(["decrypt", "--output-type", "json", str(sops_made)], key.path)
    assert _json_documents(first.stdout)[0] == DOCUMENTS[0]


def test_decrypt_yaml_gives_every_document(sops_made: Path, key: AgeKey, run: CliRun) -> None:
    """decrypt prints each document, comments decrypted, and no sops block."""
    code, out, err = run("secrets", "decrypt", str(sops_made), "--age-key-file", str(key.path))
    assert (code, err) == (0, "")
    assert list(yaml.safe_load_all(out)) == DOCUMENTS
    assert "# the second document" in out
    assert "sops:" not in out


def test_encrypt_is_read_by_sops(tmp_path: Path, key: AgeKey, run: CliRun) -> None:
    """encrypt -i seals each document's secrets; sops decrypts the file; decrypt gives it back."""
    path = tmp_path / "multi.yaml"
    path.write_text(PLAIN)
    assert run("secrets", "encrypt", "--age", key.recipient, "-i", str(path)) == (0, "", "")
    text = path.read_text()
    assert "first-secret" not in text
    assert "second-secret" not in text
    assert text.count("\nsops:\n") == 3
    result = run_sops(["decrypt", str(path)], key.path)
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == DOCUMENTS
    assert run("secrets", "decrypt", str(path), "--age-key-file", str(key.path)) == (0, PLAIN, "")


def test_rotate_edit_and_updatekeys_keep_it_readable(
    tmp_path: Path, key: AgeKey, run: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rotate, edit and updatekeys work on every document; sops reads each result."""
    path = tmp_path / "multi.yaml"
    path.write_text(PLAIN)
    assert run("secrets", "encrypt", "--age", key.recipient, "-i", str(path))[0] == 0
    keys = ("--age-key-file", str(key.path))
    assert run("secrets", "rotate", str(path), *keys)[0] == 0
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/second-secret/changed-secret/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    assert run("secrets", "edit", str(path), *keys) == (0, "", f"{path}: saved\n")
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {key.recipient}\n")
    assert run("secrets", "updatekeys", str(path), *keys)[0] == 0
    result = run_sops(["decrypt", str(path)], key.path)
    assert result.returncode == 0, result.stderr
    assert "changed-secret" in result.stdout


def test_a_value_moved_between_documents_is_caught(
    sops_made: Path, key: AgeKey, run: CliRun
) -> None:
    """The MAC spans every document: swapping the two passwords fails in one line."""
    lines = sops_made.read_text().splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if "smtp_password: ENC[" in line]
    first, second = (lines[i].split(": ", 1)[1] for i in at)
    lines[at[0]] = lines[at[0]].replace(first, second)
    lines[at[1]] = lines[at[1]].replace(second, first)
    sops_made.write_text("".join(lines))
    code, out, err = run("secrets", "decrypt", str(sops_made), "--age-key-file", str(key.path))
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert "MAC mismatch" in err
    assert run_sops(["decrypt", str(sops_made)], key.path).returncode != 0


def test_still_refused_as_config(sops_made: Path, key: AgeKey, run: CliRun) -> None:
    """As a config file, several documents stay an error at the second one's first line."""
    code, out, err = run("validate", str(sops_made), "--age-key-file", str(key.path))
    assert (code, out) == (1, "")
    line = sops_made.read_text().splitlines().index("---") + 1
    assert err.splitlines() == [
        f"{sops_made}:{line}:1: invalid YAML: a file holds one document, but a second one "
        "starts here",
        "invalid: 1 error",
    ]
