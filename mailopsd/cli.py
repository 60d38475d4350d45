"""The ``mailopsd`` command line: parses arguments, configures output, maps errors to exit codes.

Exit codes: 0 ok, 1 the command failed (``validate`` found errors, a secret could not be
opened), 2 usage error. Only this module (and the daemon) reads the environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailopsd import __version__, goyaml, secrets
from mailopsd.atomicfile import write_atomically
from mailopsd.config import loader
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.errors import ConfigError, MailopsError, SecretError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def _default_config_path() -> Path:
    return Path(os.environ.get("MAILOPSD_CONFIG") or "config")


def _identities(args: argparse.Namespace) -> secrets.IdentitySet:
    return secrets.find_identities(key_file=args.age_key_file, environ=os.environ, home=Path.home())


def _load_options(args: argparse.Namespace) -> loader.LoadOptions:
    return loader.LoadOptions(
        identities=functools.cache(lambda: _identities(args)),
        decrypt=not args.no_decrypt,
        allow_plaintext_secrets=args.allow_plaintext_secrets,
    )


def _print_issues(err: ConfigError, output_format: str) -> None:
    if output_format == "json":
        print(json.dumps([issue.as_dict() for issue in err.issues], indent=2))
        return
    for issue in err.issues:
        print(issue, file=sys.stderr)
    count = len(err.issues)
    print(f"invalid: {count} error{'s' if count != 1 else ''}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    path: Path = args.path or _default_config_path()
    try:
        loaded = loader.load_config(path, _load_options(args))
    except ConfigError as err:
        _print_issues(err, args.format)
        return EXIT_FAILURE
    if args.format == "json":
        print("[]")
        return EXIT_OK
    print(f"ok: {loaded.summary()}")
    return EXIT_OK


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SecretError(f"cannot read {path}: {err}") from err


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
        plain = secrets.decrypt_data(data, _identities(args), str(path)).data
        output = json.dumps(plain, indent=4, ensure_ascii=False, default=goyaml.format_go_time)
        output += "\n"
    else:
        output = secrets.decrypt_text(text, _identities(args), str(path)).text
    if args.output is not None:
        write_atomically(args.output, output, mode=0o600)
    else:
        print(output, end="")
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    path: Path = args.file
    rotated = secrets.rotate_text(_read(path), _identities(args), str(path), now=datetime.now(UTC))
    write_atomically(path, rotated)
    print(f"rotated the data key of {path}", file=sys.stderr)
    return EXIT_OK


def _updatekeys(args: argparse.Namespace) -> int:
    path: Path = args.file
    rule = secrets.find_creation_rule(path)
    if rule is None:
        raise SecretError(f"no .sops.yaml creation rule applies to {path}")
    updated = secrets.update_keys_text(_read(path), _identities(args), rule.recipients, str(path))
    write_atomically(path, updated)
    print(f"{path}: now encrypted for {', '.join(rule.recipients)}", file=sys.stderr)
    return EXIT_OK


def _private_directory() -> str:
    # Memory-backed where available, so the plaintext never reaches a disk; mkdtemp makes
    # a fresh 0700 directory, so the shared location is safe.
    shm = Path("/dev/shm")  # noqa: S108
    return tempfile.mkdtemp(prefix="mailopsd-edit-", dir=shm if shm.is_dir() else None)


def _edit_problems(path: Path, text: str, args: argparse.Namespace) -> list[str]:
    """Return what is wrong with edited plaintext (YAML, and config rules for a config)."""
    try:
        data = goyaml.parse_yaml(text).data
    except goyaml.YamlSyntaxError as err:
        return [f"{path}:{err.line}:{err.column}: {err.message}"]
    if not isinstance(data, dict) or "campaigns" not in data:
        return []
    options = loader.LoadOptions(
        identities=functools.cache(lambda: _identities(args)),
        plaintext={path: text},
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
    decrypted = secrets.decrypt_text(_read(path), _identities(args), str(path))
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
            problems = _edit_problems(path, edited, args)
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


def _add_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--age-key-file",
        type=Path,
        help="age identity file (default: $MAILOPSD_AGE_KEY_FILE, "
        "$CREDENTIALS_DIRECTORY/age-key, $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY, "
        "~/.config/sops/age/keys.txt)",
    )


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser(
        "validate",
        help="check the config files and print every error found",
        description=(
            "Check a config file or directory: YAML syntax, schema, secrets, leads files "
            "and templates. Prints a one-line summary and exits 0 when valid; prints every "
            "error as file:line:col: path: message and exits 1 otherwise."
        ),
    )
    validate.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="config file or directory (default: $MAILOPSD_CONFIG, then ./config)",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json prints the errors as a list of {file, line, column, path, message}",
    )
    _add_key_option(validate)
    validate.add_argument(
        "--no-decrypt",
        action="store_true",
        help="check everything but the secrets' contents (for CI without the key)",
    )
    validate.add_argument(
        "--allow-plaintext-secrets",
        action="store_true",
        help="accept secret fields stored in clear text (local sandbox demos only)",
    )
    validate.set_defaults(handler=_validate)


def _add_secrets(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "secrets",
        help="create age keys; encrypt, decrypt, edit and rotate SOPS files",
        description="SOPS-format files with age keys, readable and writable by sops too.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
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
    encrypt.add_argument("file", type=Path)
    encrypt.add_argument("--age", action="append", metavar="RECIPIENT", help="age1… recipient")
    encrypt.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    encrypt.set_defaults(handler=_encrypt)
    decrypt = verbs.add_parser("decrypt", help="print the plaintext of a SOPS file")
    decrypt.add_argument("file", type=Path)
    decrypt.add_argument("--output", type=Path, help="write here (mode 0600) instead")
    decrypt.add_argument("--output-type", choices=("yaml", "json"), default="yaml")
    decrypt.set_defaults(handler=_decrypt)
    edit = verbs.add_parser(
        "edit", help="edit a SOPS file in $EDITOR; an invalid config is not saved"
    )
    edit.add_argument("file", type=Path)
    edit.set_defaults(handler=_edit)
    rotate = verbs.add_parser("rotate", help="re-encrypt FILE with a new data key, in place")
    rotate.add_argument("file", type=Path)
    rotate.set_defaults(handler=_rotate)
    updatekeys = verbs.add_parser(
        "updatekeys", help="re-wrap FILE's data key for the recipients of .sops.yaml"
    )
    updatekeys.add_argument("file", type=Path)
    updatekeys.set_defaults(handler=_updatekeys)
    for parser in (encrypt, decrypt, edit, rotate, updatekeys):
        _add_key_option(parser)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailopsd",
        description="Run outbound email campaigns from declarative YAML kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"mailopsd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_validate(commands)
    _add_secrets(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as err:
        _print_issues(err, "text")
        return EXIT_FAILURE
    except MailopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted; nothing saved", file=sys.stderr)
        return EXIT_FAILURE
