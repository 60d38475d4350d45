"""Time loading a SOPS-encrypted config of many credentials, against sops and PyYAML.

    python -m bench.secrets_load [--campaigns 1000] [--credentials 10] [--rounds 5]

The generated config (4 secrets per credential) is encrypted with mailopsd's default
rule (the secret fields only, MAC over them). Each round runs, in alternation:
``sops decrypt`` of the file (the reference tool, a Go program), PyYAML's ``CSafeLoader``
parse of the same file, and mailopsd's ``load_config`` with decryption (parse, unwrap the
data key, decrypt and MAC every secret, validate). Medians and ratios are printed.
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

from bench.generate import generate
from bench.timing import alternate, machine, parse_size, print_table
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


def _sops() -> str:
    return str(Path(sys.executable).parent / "sops")


def main() -> None:
    args = parse_size(__doc__)
    identity, recipient = generate_identity()
    identities = parse_identities(identity, "bench key")
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(
            Path(tmp), campaigns=args.campaigns, credentials=args.credentials, plain_secrets=True
        )
        options = EncryptOptions((recipient,), secret_fields_rule(SECRET_FIELDS), True)
        path.write_text(encrypt_text(path.read_text(), options, path.name, now=datetime.now(UTC)))
        key_file = Path(tmp) / "key.txt"
        key_file.write_text(identity + "\n")
        env = dict(os.environ, SOPS_AGE_KEY_FILE=str(key_file), SOPS_DISABLE_VERSION_CHECK="1")
        load = LoadOptions(identities=lambda: identities)
        runs: dict[str, Callable[[], object]] = {
            "sops decrypt (reference)": lambda: subprocess.run(  # noqa: S603 - our own file
                [_sops(), "decrypt", str(path)], env=env, check=True, capture_output=True
            ),
            "pyyaml CSafeLoader parse": lambda: yaml.load(
                path.read_text(), Loader=yaml.CSafeLoader
            ),
            "mailopsd load_config, decrypting": lambda: load_config(path, load),
        }
        medians = alternate(runs, args.rounds)
        size = path.stat().st_size
    print(f"machine: {machine()}")
    print(
        f"config: {args.campaigns * args.credentials} credentials, "
        f"{args.campaigns * args.credentials * 4} encrypted values, {size / 1e6:.1f} MB; "
        f"median of {args.rounds} rounds"
    )
    print_table(medians, "sops decrypt (reference)", "sops")


if __name__ == "__main__":
    main()
