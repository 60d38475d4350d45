"""``mailopsd secrets``: keygen, encrypt, decrypt, edit, rotate, updatekeys."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailopsd import goyaml, secrets
from mailopsd.atomicfile import write_atomically
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    add_key_option,
    identities,
)
from mailopsd.config import loader
from mailopsd.config.models import SECRET_FIELDS, Config
from mailopsd.errors import ConfigError, SecretError

__all__ = ["add_secrets"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise SecretError(f"cannot read {path}: {(err.strerror or str(err)).lower()}") from err
    except UnicodeDecodeError as err:
        # The decoder's own message quotes the byte and its position: part of a secret.
        raise SecretError(f"{path}: not UTF-8 text; save the file as UTF-8") from err


def _encrypt_options(path: Path, recipients: Sequence[str]) -> secrets.EncryptOptions:
    """Options from ``--age`` and the nearest ``.sops.yaml``; mailopsd's default otherwise."""
    rule = secrets.find_creation_rule(path)
    chosen = tuple(recipients) or (rule.recipients if rule else ())
    if rule is not None and rule.rule is not None:
        return secrets.EncryptOptions(chosen, rule.rule, rule.mac_only_encrypted)
    return secrets.EncryptOptions(
        chosen, secrets.secret_fields_rule(SECRET_FIELDS), mac_only_encrypted=True
    )


def _keygen(args: argparse.Namespace) -> int:
    identity, recipient = secrets.generate_identity()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    if args.output is None:
        print(text, end="")
        print(f"Public key: {recipient}", file=sys.stderr)
        return EXIT_OK
    path: Path = args.output
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"error: {path} exists; not overwriting a key", file=sys.stderr)
        return EXIT_FAILURE
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    print(recipient)
    return EXIT_OK


def _encrypt(args: argparse.Namespace) -> int:
    path: Path = args.file
    options = _encrypt_options(path, args.age or ())
    encrypted = secrets.encrypt_text(_read(path), options, str(path), now=datetime.now(UTC))
    if args.in_place:
        write_atomically(path, encrypted)
    else:
        print(encrypted, end="")
    return EXIT_OK


def _decrypt(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    if args.output_type == "json" and not str(path).endswith(".json"):
        data = goyaml.parse_yaml(text).data
        if not secrets.is_encrypted_data(data):
            raise SecretError(f"{path}: is not encrypted (no sops: metadata)")
        assert isinstance(data, dict)  # noqa: S101 - narrowed above
        plain = secrets.decrypt_data(data, identities(args), str(path)).data
        output = json.dumps(plain, indent=4, ensure_ascii=False, default=goyaml.format_go_time)
        output += "\n"
    else:
        output = secrets.decrypt_text(text, identities(args), str(path)).text
    if args.output is not None:
        write_atomically(args.output, output, mode=0o600)
    else:
        print(output, end="")
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    path: Path = args.file
    rotated = secrets.rotate_text(_read(path), identities(args), str(path), now=datetime.now(UTC))
    write_atomically(path, rotated)
    print(f"rotated the data key of {path}", file=sys.stderr)
    return EXIT_OK


def _updatekeys(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    rule = secrets.find_creation_rule(path)
    if rule is None:
        raise SecretError(f"no .sops.yaml creation rule applies to {path}")
    updated = secrets.update_keys_text(text, identities(args), rule.recipients, str(path))
    write_atomically(path, updated)
    print(f"{path}: now encrypted for {', '.join(rule.recipients)}", file=sys.stderr)
    return EXIT_OK


def _private_directory() -> str:
    # Memory-backed where available, so the plaintext never reaches a disk; mkdtemp makes
    # a fresh 0700 directory, so the shared location is safe.
    shm = Path("/dev/shm")  # noqa: S108
    return tempfile.mkdtemp(prefix="mailopsd-edit-", dir=shm if shm.is_dir() else None)


def _edit_problems(
    path: Path, text: str, args: argparse.Namespace, rule: secrets.Rule
) -> list[str]:
    """Return what is wrong with edited plaintext (YAML, and config rules for a config).

    ``rule`` is the one the text will be encrypted with: a secret field it does not
    cover would be saved in clear, and is reported.
    """
    try:
        data = goyaml.parse_yaml(text).data
    except goyaml.YamlSyntaxError as err:
        return [f"{path}:{err.line}:{err.column}: {err.message}"]
    if not isinstance(data, dict) or not set(data) & set(Config.model_fields):
        return []
    options = loader.LoadOptions(
        identities=functools.cache(lambda: identities(args)),
        plaintext={path: text},
        plaintext_rules={path: rule},
        allow_plaintext_secrets=args.allow_plaintext_secrets,
    )
    target = (
        path.parent if path.parent.is_dir() and len(loader.config_files(path.parent)) > 1 else path
    )
    try:
        loader.load_config(target, options)
    except ConfigError as err:
        return [str(issue) for issue in err.issues]
    return []


def _run_editor(file: Path) -> None:
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    result = subprocess.run([*editor, str(file)], check=False)  # noqa: S603 - the user's editor
    if result.returncode != 0:
        raise SecretError(f"the editor exited with status {result.returncode}; nothing saved")


def _edit(args: argparse.Namespace) -> int:
    path: Path = args.file
    decrypted = secrets.decrypt_text(_read(path), identities(args), str(path))
    directory = _private_directory()
    scratch = Path(directory) / path.name
    try:
        scratch.write_text(decrypted.text, encoding="utf-8")
        scratch.chmod(0o600)
        while True:
            _run_editor(scratch)
            edited = scratch.read_text(encoding="utf-8")
            if edited == decrypted.text:
                print(f"{path}: no changes", file=sys.stderr)
                return EXIT_OK
            problems = _edit_problems(path, edited, args, decrypted.meta.rule)
            if not problems:
                break
            for problem in problems:
                print(problem, file=sys.stderr)
            if not sys.stdin.isatty():
                print(f"{path}: not saved; the file is unchanged", file=sys.stderr)
                return EXIT_FAILURE
            input("press Enter to edit again, or Ctrl-C to discard the changes ")
        encrypted = secrets.encrypt_text(
            edited,
            decrypted.options(),
            str(path),
            now=datetime.now(UTC),
            data_key=decrypted.data_key,
            comment_aads=decrypted.comment_aads,
        )
        write_atomically(path, encrypted)
        print(f"{path}: saved", file=sys.stderr)
        return EXIT_OK
    finally:
        scratch.unlink(missing_ok=True)
        os.rmdir(directory)


def add_secrets(commands: Commands[argparse.ArgumentParser]) -> None:
    """Add ``secrets`` and its verbs."""
    group = commands.add_parser(
        "secrets",
        help="create age keys; encrypt, decrypt, edit and rotate SOPS files",
        description="SOPS-format files with age keys, readable and writable by sops too.",
    )
    verbs = group.add_subparsers(
        dest="verb", metavar="VERB", required=True, help="what to do with keys or files"
    )
    keygen = verbs.add_parser("keygen", help="create an age identity (prints its recipient)")
    keygen.add_argument("-o", "--output", type=Path, help="write the identity here (mode 0600)")
    keygen.set_defaults(handler=_keygen)
    encrypt = verbs.add_parser(
        "encrypt",
        help="encrypt a plaintext YAML or JSON file",
        description=(
            "Encrypt FILE for the --age recipients, or those of the nearest .sops.yaml "
            "creation rule. Without a .sops.yaml rule, only the secret fields are "
            "encrypted and the MAC covers only them, so plain fields stay editable."
        ),
    )
    encrypt.add_argument("file", type=Path, help="the plaintext YAML or JSON file")
    encrypt.add_argument("--age", action="append", metavar="RECIPIENT", help="age1… recipient")
    encrypt.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    encrypt.set_defaults(handler=_encrypt)
    decrypt = verbs.add_parser("decrypt", help="print the plaintext of a SOPS file")
    decrypt.add_argument("file", type=Path, help="the SOPS file to decrypt")
    decrypt.add_argument("--output", type=Path, help="write here (mode 0600) instead")
    decrypt.add_argument(
        "--output-type",
        choices=("yaml", "json"),
        default="yaml",
        help="the plaintext's form: YAML (as the file is) or JSON",
    )
    decrypt.set_defaults(handler=_decrypt)
    edit = verbs.add_parser(
        "edit", help="edit a SOPS file in $EDITOR; an invalid config is not saved"
    )
    edit.add_argument("file", type=Path, help="the SOPS file to edit")
    edit.add_argument(
        "--allow-plaintext-secrets",
        action="store_true",
        help="accept secret fields stored in clear text while checking the edited config "
        "(local sandbox demos only)",
    )
    edit.set_defaults(handler=_edit)
    rotate = verbs.add_parser("rotate", help="re-encrypt FILE with a new data key, in place")
    rotate.add_argument("file", type=Path, help="the SOPS file to re-encrypt")
    rotate.set_defaults(handler=_rotate)
    updatekeys = verbs.add_parser(
        "updatekeys", help="re-wrap FILE's data key for the recipients of .sops.yaml"
    )
    updatekeys.add_argument("file", type=Path, help="the SOPS file whose recipients change")
    updatekeys.set_defaults(handler=_updatekeys)
    for parser in (encrypt, decrypt, edit, rotate, updatekeys):
        add_key_option(parser)
