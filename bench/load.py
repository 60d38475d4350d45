"""Cold load of a SOPS-encrypted config: read, parse, decrypt, validate, check.

    python -m bench load [--quick]

Generated configs of 100, 1,000 and 10,000 credentials (10 per campaign, four secret
fields each, encrypted for an age key as the real ``sops`` tool does it). Each round
runs, in alternation: mailopsd's ``load_config`` (the daemon's cold start), PyYAML's C
loader parsing the same file (the reference), and, for the largest config, ``sops
decrypt`` of it (the tool whose files mailopsd reads).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.generate import generate_credentials
from bench.report import Row
from bench.timing import alternate
from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.secrets import (
    EncryptOptions,
    encrypt_text,
    generate_identity,
    parse_identities,
    secret_fields_rule,
)

TARGET_S = 1.0


def encrypted_config(directory: Path, credentials: int, recipient: str) -> Path:
    """Generate a config of ``credentials`` credentials with its secrets encrypted."""
    path = generate_credentials(directory, credentials, plain_secrets=True)
    options = EncryptOptions((recipient,), secret_fields_rule(SECRET_FIELDS), True)
    path.write_text(encrypt_text(path.read_text(), options, path.name, now=datetime.now(UTC)))
    return path


def _sops(path: Path, key_file: Path) -> Callable[[], object]:
    env = dict(os.environ, SOPS_AGE_KEY_FILE=str(key_file), SOPS_DISABLE_VERSION_CHECK="1")
    binary = str(Path(sys.executable).parent / "sops")
    return lambda: subprocess.run(  # noqa: S603 - our own binary and file
        [binary, "decrypt", str(path)], env=env, check=True, capture_output=True
    )


def run(quick: bool) -> list[Row]:
    """Measure every size; rows with the reference, the ratio and the target."""
    sizes = (10, 100) if quick else (100, 1_000, 10_000)
    rounds = 1 if quick else 5
    identity, recipient = generate_identity()
    identities = parse_identities(identity, "bench key")
    options = LoadOptions(identities=lambda: identities)
    rows: list[Row] = []
    per_credential: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key.txt"
        key_file.write_text(identity + "\n")
        for size in sizes:
            path = encrypted_config(Path(tmp) / str(size), size, recipient)
            runs: dict[str, Callable[[], object]] = {
                "mailopsd": lambda path=path: load_config(path, options),
                "pyyaml": lambda path=path: yaml.load(path.read_text(), Loader=yaml.CSafeLoader),
            }
            if size == sizes[-1]:
                runs["sops"] = _sops(path, key_file)
            medians = alternate(runs, rounds)
            per_credential[size] = medians["mailopsd"] / size
            largest = size == sizes[-1]
            note = f"median of {rounds}; {path.stat().st_size / 1e6:.1f} MB"
            rows.append(
                Row(
                    "load",
                    f"{size:,} credentials: cold load",
                    medians["mailopsd"],
                    "s",
                    "PyYAML C parse",
                    medians["pyyaml"],
                    medians["mailopsd"] / medians["pyyaml"],
                    f"≤ {TARGET_S:g} s" if largest and not quick else "",
                    medians["mailopsd"] <= TARGET_S if largest and not quick else None,
                    note,
                )
            )
            if "sops" in medians:
                rows.append(
                    Row(
                        "load",
                        f"{size:,} credentials: vs sops decrypt",
                        medians["mailopsd"],
                        "s",
                        "sops decrypt",
                        medians["sops"],
                        medians["mailopsd"] / medians["sops"],
                        note=note,
                    )
                )
    small, large = sizes[-2], sizes[-1]
    growth = per_credential[large] / per_credential[small]
    rows.append(
        Row(
            "load",
            f"cost per credential, {large:,} vs {small:,}",
            growth,
            "x",
            ratio=growth,
            target="linear (≤ 1.5x)",
            met=growth <= 1.5,
        )
    )
    return rows
