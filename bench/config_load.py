"""Time loading and validating a generated config, against PyYAML's C loader alone.

    python -m bench.config_load [--campaigns 1000] [--credentials 10] [--rounds 5]

Each round runs, in alternation, (1) ``yaml.load`` with PyYAML's ``CSafeLoader`` on the
same file (the reference), (2) mailopsd's parser alone, (3) the whole ``load_config``
(read, parse, validate, check leads and templates). Medians are printed with the ratio
to the reference, and the machine they ran on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.generate import generate
from bench.timing import alternate, machine, parse_size, print_table
from mailopsd.config import load_config
from mailopsd.config.loader import LoadOptions
from mailopsd.goyaml import parse_yaml


def main() -> None:
    args = parse_size(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp), campaigns=args.campaigns, credentials=args.credentials)
        text = path.read_text()
        # The secrets are ENC[…]-shaped placeholders in a file with no sops block.
        unchecked_secrets = LoadOptions(allow_plaintext_secrets=True)
        runs: dict[str, Callable[[], object]] = {
            "pyyaml CSafeLoader parse (reference)": lambda: yaml.load(
                path.read_text(), Loader=yaml.CSafeLoader
            ),
            "mailopsd parse only": lambda: parse_yaml(path.read_text()),
            "mailopsd load_config (parse + validate + checks)": lambda: load_config(
                path, unchecked_secrets
            ),
        }
        medians = alternate(runs, args.rounds)
    print(f"machine: {machine()}")
    count = args.campaigns * args.credentials
    print(
        f"config: {args.campaigns} campaigns x {args.credentials} credentials = {count} "
        f"credentials, {len(text.encode()) / 1e6:.1f} MB; median of {args.rounds} rounds"
    )
    print_table(medians, "pyyaml CSafeLoader parse (reference)", "reference")


if __name__ == "__main__":
    main()
