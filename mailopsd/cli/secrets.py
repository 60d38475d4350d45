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
from mailopsd.cli.bars import bars_on_stderr
from mailopsd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    add_key_option,
    identities,
)
from mailopsd.config import clear_passwords, loader
from mailopsd.config.models import SECRET_FIELDS, Config
from mailopsd.errors import ConfigError, SecretError
from mailopsd.secrets import strength
from mailopsd.state.ledgerfile import LEDGER_PASSWORD

__all__ = ["add_secrets"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise SecretError(f"cannot read {path}: {(err.strerror or str(err)).lower()}") from err
    except UnicodeDecodeError as err:
        # The decoder's own message quotes the byte and its position: part of a secret.
        raise SecretError(f"{path}: not UTF-8 text; save the file as UTF-8") from err


def _own_recipient(args: argparse.Namespace) -> str | None:
    """The recipient of the person's own key, if one is found where keys are looked for."""
    try:
        found = identities(args)
    except SecretError:
        return None
    recipients = (str(identity.to_public()) for identity in found.identities)
    return next((r for r in recipients if not secrets.has_demo_recipient([r])), None)


def _own_key_advice(args: argparse.Namespace, path: Path) -> str:
    """The command that encrypts ``path`` for the person's own key (made first if need be)."""
    command = "mailopsd secrets encrypt --age {} " + ("--in-place " if args.in_place else "")
    command += shlex.quote(str(path))
    own = _own_recipient(args)
    if own is not None:
        return f"to encrypt it for your own key, run: {command.format(own)}"
    return (
        "make your own key with: mailopsd secrets keygen -o ~/.config/sops/age/keys.txt, "
        f"then run: {command.format('<the age1… it prints>')}"
    )


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it, as a person typed it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _matching_rule(path: Path) -> tuple[secrets.CreationRule | None, str]:
    """The creation rule for ``path``, or ``None`` and why none applies."""
    try:
        rule = secrets.find_creation_rule(path)
    except secrets.NoMatchingRuleError as err:
        return None, f" (no creation rule in {_shown(err.source)} matches it)"
    if rule is not None and not rule.recipients:
        return rule, f" (the creation rule for it in {_shown(rule.source)} names none)"
    return rule, ""


def _write(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` atomically; an I/O error is one line naming the file."""
    try:
        write_atomically(path, text, mode=mode)
    except OSError as err:
        raise SecretError(
            f"cannot write {path}: {err.strerror or err}; check the path, then run the "
            "command again"
        ) from err


def _encrypt_options(path: Path, args: argparse.Namespace) -> secrets.EncryptOptions:
    """Options from ``--age`` and the nearest ``.sops.yaml``; mailopsd's default otherwise.

    ``--age`` overrides a rule's recipients and works where no rule matches (``sops``
    refuses then), so the command an error suggests always runs. The demo key is refused
    for any file but the demo campaign file, wherever it comes from.
    """
    rule, why = _matching_rule(path)
    given = tuple(args.age or ())
    chosen = given or (rule.recipients if rule else ())
    if not chosen:
        raise SecretError(
            f"{path}: no age recipient to encrypt for{why}; {_own_key_advice(args, path)}"
        )
    if secrets.has_demo_recipient(chosen) and not secrets.is_demo_file(path):
        source = f" (from {_shown(rule.source)})" if rule is not None and not given else ""
        raise SecretError(f"{path}: {secrets.demo_refusal(source)}; {_own_key_advice(args, path)}")
    if rule is not None and rule.rule is not None:
        return secrets.EncryptOptions(chosen, rule.rule, rule.mac_only_encrypted)
    fields = secrets.secret_fields_rule(SECRET_FIELDS | {LEDGER_PASSWORD})  # a ledger file's too
    return secrets.EncryptOptions(chosen, fields, mac_only_encrypted=True)


def _refuse_demo_encrypted(path: Path, recipients: Sequence[str], args: argparse.Namespace) -> None:
    """Refuse to write again a file (not the demo's) that is encrypted for the demo key.

    Raises:
        SecretError: It is; the message gives the steps that move it to the person's key.
    """
    if not secrets.has_demo_recipient(recipients) or secrets.is_demo_file(path):
        return
    given = f" --age-key-file {shlex.quote(str(args.age_key_file))}" if args.age_key_file else ""
    name = shlex.quote(str(path))
    raise SecretError(
        f"{path}: is encrypted for the demo key {secrets.DEMO_RECIPIENT}, whose private key "
        f"ships with mailopsd ({secrets.DEMO_KEY_FILE}), so anyone can read its secrets; move "
        "it to your own key: put your recipient in the creation rule for it in .sops.yaml, "
        f"run: mailopsd secrets updatekeys {name}{given}, then: mailopsd secrets rotate {name}, "
        "and change the passwords it holds"
    )


def _make_private_parents(path: Path) -> None:
    """Create the missing parent directories of ``path``, each 0700.

    ``os.makedirs(mode=…)`` gives the mode to the last directory only, so each missing
    one is made (and chmod-ed, past the umask) in turn.
    """
    missing = [parent for parent in path.parents if not parent.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
            directory.chmod(0o700)
        except OSError as err:
            raise _unwritable_key(path, err, directory=directory) from err


def _unwritable_key(path: Path, err: OSError, *, directory: Path | None = None) -> SecretError:
    """One line saying why the key file cannot be written there, and what to do."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    failed = f"cannot create the directory {directory}: " if directory else ""
    if isinstance(err, IsADirectoryError) or path.is_dir():
        reason = "it is a directory; give a file name with -o, such as ~/.config/sops/age/keys.txt"
    elif blocker is not None:
        reason = f"{blocker} is not a directory; choose another path with -o"
    elif isinstance(err, PermissionError):
        reason = f"{failed}permission denied; choose a path you can write with -o"
    else:
        reason = f"{failed}{err.strerror or err}; choose another path with -o"
    return SecretError(f"cannot write the age key to {path}: {reason}")


def _write_key_file(path: Path, text: str, *, force: bool) -> None:
    """Write a new key file (0600) in private directories; replace one only if ``force``.

    Raises:
        SecretError: The file exists (without ``force``) or cannot be written.
    """
    if path.exists() and not path.is_dir() and not force:
        raise SecretError(
            f"{path} exists: not overwriting an age key (files encrypted for it could no "
            "longer be opened); pass --force to replace it"
        )
    _make_private_parents(path)
    try:
        if force:
            write_atomically(path, text, mode=0o600)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as err:
        raise _unwritable_key(path, err) from err


def _keygen(args: argparse.Namespace) -> int:
    identity, recipient = secrets.generate_identity()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    if args.output is None:
        print(text, end="")
        print(f"Public key: {recipient}", file=sys.stderr)
        return EXIT_OK
    path = Path(args.output).expanduser()
    _write_key_file(path, text, force=args.force)
    print(recipient)
    print(f"wrote a new age identity to {path} (mode 0600)", file=sys.stderr)
    return EXIT_OK


def _hints(path: Path) -> secrets.Hints:
    """Where the old path of a renamed key may be found: the secret fields, git history."""
    return secrets.Hints(
        field_names=frozenset(SECRET_FIELDS), earlier=lambda: secrets.earlier_versions(path)
    )


def _encrypt(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    if secrets.is_encrypted_text(text, str(path)):
        return _encrypt_new_values(args, path, text)
    options = _encrypt_options(path, args)
    with bars_on_stderr() as bars:
        encrypted = secrets.encrypt_text(
            text, options, str(path), now=datetime.now(UTC), progress=bars.progress
        )
    _warn_weak_passwords(path, text, options.rule)
    if args.in_place:
        _write(path, encrypted)
    else:
        print(encrypted, end="")
    return EXIT_OK


def _warn_weak_passwords(path: Path, text: str, rule: secrets.Rule | None = None) -> None:
    """Warn of each weak password of a config file that this command encrypts in clear.

    ``rule`` is the one a plaintext file is encrypted with; an encrypted file's new clear
    values are those its own rule covers.
    """
    for weak in clear_passwords.weak_clear_passwords(path, text, rule=rule):
        print(f"warning: {weak}", file=sys.stderr)


def _encrypt_new_values(args: argparse.Namespace, path: Path, text: str) -> int:
    """Seal the new clear values and the renamed keys' values of an encrypted file."""
    name = shlex.quote(str(path))
    if args.age:
        raise SecretError(
            f"{path}: is already encrypted (it has a sops: block), so --age does not apply; to "
            f"encrypt new values in it, run: mailopsd secrets encrypt -i {name} (its recipients "
            f"change with: mailopsd secrets updatekeys {name})"
        )
    _refuse_demo_encrypted(path, secrets.read_metadata(text, str(path)).recipients, args)
    found = identities(args)
    with bars_on_stderr() as bars:
        updated = secrets.update_text(
            text,
            found,
            str(path),
            now=datetime.now(UTC),
            hints=_hints(path),
            progress=bars.progress,
        )
    _warn_weak_passwords(path, text)
    done = [
        *([f"encrypted {_count(updated.sealed, 'new value')}"] if updated.sealed else []),
        *(
            [f"re-encrypted {_count(updated.resealed, 'value')} under their new names"]
            if updated.resealed
            else []
        ),
    ]
    if args.in_place and done:
        _write(path, updated.text)
    elif not args.in_place:
        print(updated.text, end="")
    summary = "; ".join(done) or (
        "already encrypted; no new clear-text secret or renamed key to encrypt"
    )
    print(f"{path}: {summary}", file=sys.stderr)
    return EXIT_OK


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _decrypt(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    if args.output_type == "json" and not str(path).endswith(".json"):
        # One JSON value per YAML document, one after another, as yq and jq write them
        # (sops prints the first document only).
        documents = secrets.decrypt_yaml_data(text, identities(args), str(path), hints=_hints(path))
        output = "".join(
            json.dumps(plain, indent=4, ensure_ascii=False, default=goyaml.format_go_time) + "\n"
            for plain in documents
        )
    else:
        found = identities(args)
        with bars_on_stderr() as bars:
            decrypted = secrets.decrypt_text(
                text, found, str(path), hints=_hints(path), progress=bars.progress
            )
        output = decrypted.text
    if args.output is not None:
        _write(args.output, output, mode=0o600)
    else:
        print(output, end="")
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    _refuse_demo_encrypted(path, secrets.read_metadata(text, str(path)).recipients, args)
    found = identities(args)
    with bars_on_stderr() as bars:
        rotated = secrets.rotate_text(
            text,
            found,
            str(path),
            now=datetime.now(UTC),
            hints=_hints(path),
            progress=bars.progress,
        )
    _write(path, rotated)
    print(f"rotated the data key of {path}", file=sys.stderr)
    return EXIT_OK


def _updatekeys(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    rule = secrets.find_creation_rule(path)
    if rule is None:
        raise SecretError(f"no .sops.yaml creation rule applies to {path}")
    if not rule.recipients:
        raise SecretError(
            f"{path}: the creation rule for it in {_shown(rule.source)} names no age "
            "recipient; add yours to it (age: age1…, from: mailopsd secrets keygen -o "
            "~/.config/sops/age/keys.txt)"
        )
    if secrets.has_demo_recipient(rule.recipients) and not secrets.is_demo_file(path):
        refusal = secrets.demo_refusal(f" (from {_shown(rule.source)})")
        raise SecretError(f"{path}: {refusal}; take the demo recipient out of that rule")
    updated = secrets.update_keys_text(text, identities(args), rule.recipients, str(path))
    _write(path, updated)
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
        if len(secrets.split_documents(text, str(path))) > 1:
            return []  # several documents: not a config, and valid YAML
        data = goyaml.parse_yaml(text).data
    except goyaml.YamlSyntaxError as err:
        return [f"{path}:{err.line}:{err.column}: {err.message}"]
    except SecretError as err:
        return [str(err)]
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
    decrypted = secrets.decrypt_text(_read(path), identities(args), str(path), hints=_hints(path))
    _refuse_demo_encrypted(path, decrypted.meta.recipients, args)
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
        _write(path, encrypted)
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
    keygen.add_argument(
        "-o",
        "--output",
        type=Path,
        help="write the identity here (mode 0600; missing directories are made 0700)",
    )
    keygen.add_argument(
        "--force", action="store_true", help="replace the key file at --output if it exists"
    )
    keygen.set_defaults(handler=_keygen)
    encrypt = verbs.add_parser(
        "encrypt",
        help="encrypt a plaintext YAML or JSON file",
        description=(
            "Encrypt FILE for the --age recipients, or those of the nearest .sops.yaml "
            "creation rule. Without a .sops.yaml rule, only the secret fields are "
            "encrypted and the MAC covers only them, so plain fields stay editable. On an "
            "encrypted file, encrypt the values added in clear text and those whose key "
            "was renamed, with the file's own data key (needs its key). Warns of each "
            f"password it encrypts from clear text with under {strength.MIN_PASSWORD_BITS} "
            "bits of estimated entropy."
        ),
    )
    encrypt.add_argument("file", type=Path, help="the plaintext YAML or JSON file")
    encrypt.add_argument("--age", action="append", metavar="RECIPIENT", help="age1… recipient")
    encrypt.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    encrypt.set_defaults(handler=_encrypt)
    decrypt = verbs.add_parser(
        "decrypt",
        help="print the plaintext of a SOPS file",
        description="Print the plaintext of FILE. With --output-type json, a YAML file of "
        "several documents gives one JSON value per document, one after another.",
    )
    decrypt.add_argument("file", type=Path, help="the SOPS file to decrypt")
    decrypt.add_argument("--output", type=Path, help="write here (mode 0600) instead")
    decrypt.add_argument(
        "--output-type",
        choices=("yaml", "json"),
        default="yaml",
        help="the plaintext's format (default: yaml; a .json file is always JSON)",
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
