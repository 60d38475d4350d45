"""How far encrypting, decrypting and rotating a large secrets file is, told as values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailopsd.progress import Work
from mailopsd.secrets import (
    EncryptOptions,
    decrypt_text,
    encrypt_text,
    rotate_text,
    secret_fields_rule,
    update_text,
)
from tests.sops_tools import AgeKey, CliRun

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
# 250 passwords in two documents, and an empty one that nothing seals
TEXT = (
    "first:\n"
    + "".join(f"  c{i}:\n    host: h{i}.example.net\n    password: pw-{i}\n" for i in range(150))
    + "---\nsecond:\n"
    + "".join(f"  c{i}:\n    password: pw-{i}\n" for i in range(100))
    + "  blank:\n    password: ''\n"
)


def _options(key: AgeKey) -> EncryptOptions:
    return EncryptOptions((key.recipient,), secret_fields_rule(["password"]), True)


def _course(reports: list[Work], what: str) -> list[tuple[int, int | None, bool]]:
    return [(work.done, work.total, work.finished) for work in reports if work.what == what]


def test_encrypting_counts_the_values_sealed(key: AgeKey) -> None:
    """Encrypting reports its start, the values to seal once counted, each hundred sealed."""
    reports: list[Work] = []
    encrypt_text(TEXT, _options(key), "x.yaml", now=NOW, progress=reports.append)
    assert _course(reports, "encrypting x.yaml") == [
        (0, None, False),
        (0, 250, False),
        (100, 250, False),
        (200, 250, False),
        (250, 250, True),
    ]
    assert {work.unit for work in reports} == {"value"}


def test_rotating_decrypts_then_encrypts(key: AgeKey) -> None:
    """Rotating a file reports its values opened, then its values sealed again."""
    encrypted = encrypt_text(TEXT, _options(key), "x.yaml", now=NOW)
    reports: list[Work] = []
    rotate_text(encrypted, key.identities(), "x.yaml", now=NOW, progress=reports.append)
    assert [work.what for work in reports if work.finished] == [
        "decrypting x.yaml",
        "encrypting x.yaml",
    ]
    assert _course(reports, "decrypting x.yaml")[-1] == (250, 250, True)
    assert _course(reports, "encrypting x.yaml")[-1] == (250, 250, True)


def test_adding_a_value_checks_every_value(key: AgeKey) -> None:
    """Sealing a new value in an encrypted file reports each value checked."""
    encrypted = encrypt_text(TEXT, _options(key), "x.yaml", now=NOW)
    added = encrypted.replace("second:\n", "second:\n  new:\n    password: fresh\n", 1)
    reports: list[Work] = []
    updated = update_text(added, key.identities(), "x.yaml", now=NOW, progress=reports.append)
    assert updated.sealed == 1
    course = _course(reports, "checking x.yaml")
    assert course[:2] == [(0, None, False), (0, 252, False)]  # the blank and new ones too
    assert course[-1] == (252, 252, True)


def test_decrypting_without_a_callback_is_unchanged(key: AgeKey) -> None:
    """No callback: the same text comes back, nothing is counted."""
    encrypted = encrypt_text(TEXT, _options(key), "x.yaml", now=NOW)
    assert decrypt_text(encrypted, key.identities(), "x.yaml").text == TEXT


def test_commands_print_no_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, key: AgeKey, run: CliRun
) -> None:
    """encrypt, rotate and decrypt of a large file print on stderr only what they did."""
    path = tmp_path / "x.yaml"
    path.write_text(TEXT)
    key_file = ("--age-key-file", str(key.path))
    code, _, err = run("secrets", "encrypt", "--age", key.recipient, "--in-place", str(path))
    assert (code, err) == (0, "")
    code, _, err = run("secrets", "rotate", str(path), *key_file)
    assert (code, err) == (0, f"rotated the data key of {path}\n")
    code, out, err = run("secrets", "decrypt", str(path), *key_file)
    assert (code, out, err) == (0, TEXT, "")
