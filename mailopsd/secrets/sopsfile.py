"""Whole SOPS files: decrypt, encrypt, rotate the data key, update the recipients.

YAML files are transformed as text (see ``yamltext``), so everything a person wrote stays
as written; JSON files are parsed and written again (JSON has no comments). Every
operation checks the MAC of what it reads. A YAML file of several documents is handled as
``sops`` handles it: the documents in order under one data key and one MAC, the metadata
read from the first and written into each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.secrets import age
from mailopsd.secrets.metadata import AgeStanza, Metadata, Rule, mac_aad, parse_metadata
from mailopsd.secrets.tree import (
    Decrypted,
    MacBuilder,
    check_mac,
    decrypt_tree,
    decrypt_trees,
    encrypt_tree,
)
from mailopsd.secrets.values import ValueCipher
from mailopsd.secrets.yamltext import (
    YamlDocument,
    decrypt_document,
    encrypt_document,
    render_scalar,
    split_documents,
)

__all__ = [
    "SOPS_VERSION",
    "DecryptedFile",
    "EncryptOptions",
    "decrypt_data",
    "decrypt_text",
    "decrypt_yaml_data",
    "encrypt_text",
    "is_encrypted_data",
    "read_metadata",
    "rotate_text",
    "secret_fields_rule",
    "update_keys_text",
]

SOPS_VERSION = "3.11.0"


@dataclass(frozen=True)
class EncryptOptions:
    """How to encrypt: for whom, which values, and what the MAC covers."""

    recipients: tuple[str, ...]
    rule: Rule
    mac_only_encrypted: bool = False


@dataclass(frozen=True)
class DecryptedFile:
    """A decrypted file's text and what is needed to encrypt it again the same way."""

    text: str = field(repr=False)
    meta: Metadata
    data_key: bytes = field(repr=False)
    comment_aads: Mapping[str, str] = field(repr=False)

    def options(self) -> EncryptOptions:
        """The options the file was encrypted with."""
        return EncryptOptions(
            recipients=tuple(self.meta.recipients),
            rule=self.meta.rule,
            mac_only_encrypted=self.meta.mac_only_encrypted,
        )


def secret_fields_rule(names: Iterable[str]) -> Rule:
    """Return the rule that encrypts exactly the fields named ``names``."""
    return Rule("encrypted_regex", "^(" + "|".join(sorted(names)) + ")$")


def is_encrypted_data(data: object) -> bool:
    """Tell whether parsed data is a SOPS file (it has a ``sops`` mapping)."""
    return isinstance(data, dict) and isinstance(data.get("sops"), dict)


def _is_json(where: str) -> bool:
    return where.endswith(".json")


def _cipher(meta: Metadata, identities: age.IdentitySet, where: str) -> tuple[ValueCipher, bytes]:
    stanzas = [(stanza.recipient, stanza.enc) for stanza in meta.age]
    data_key = age.unwrap_data_key(stanzas, identities, where)
    return ValueCipher(data_key), data_key


def decrypt_data(data: dict[str, object], identities: age.IdentitySet, where: str) -> Decrypted:
    """Decrypt parsed SOPS data (with its ``sops`` key) and check the MAC.

    Raises:
        SecretError: Wrong key, unsupported metadata, a value that fails, or a MAC mismatch.
    """
    tree = {key: value for key, value in data.items() if key != "sops"}
    meta = parse_metadata(data.get("sops"), where)
    cipher, _ = _cipher(meta, identities, where)
    return decrypt_tree(tree, meta, cipher, where)


def _parse_json(text: str, where: str) -> dict[str, object]:
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise SecretError(f"{where}: a JSON object repeats a key")
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=float)
    except json.JSONDecodeError as err:
        raise SecretError(f"{where}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from err
    if not isinstance(data, dict):
        raise SecretError(f"{where}: the top level must be an object")
    return data


def _document_data(doc: YamlDocument) -> dict[str, object]:
    """Parse one document of a YAML file into plain values (a mapping, as composed)."""
    try:
        data = goyaml.parse_yaml(doc.text).data
    except goyaml.YamlSyntaxError as err:
        line = doc.first_line + err.line
        raise SecretError(f"{doc.where}:{line}:{err.column}: {err.message}") from err
    assert isinstance(data, dict)  # noqa: S101 - YamlDocument checked the top level
    return {str(key): value for key, value in data.items()}


def read_metadata(text: str, where: str) -> Metadata:
    """Return the metadata of an encrypted YAML or JSON file (a YAML file's first document).

    Raises:
        SecretError: The file is not a SOPS file mailopsd can read.
    """
    if _is_json(where):
        data: object = _parse_json(text, where)
    else:
        data = _document_data(split_documents(text, where)[0])
    if not is_encrypted_data(data):
        raise SecretError(f"{where}: is not encrypted (no sops: metadata)")
    assert isinstance(data, dict)  # noqa: S101 - narrowed by is_encrypted_data
    return parse_metadata(data["sops"], where)


def decrypt_yaml_data(text: str, identities: age.IdentitySet, where: str) -> list[object]:
    """Decrypt a SOPS YAML file into each document's plain values, checking the MAC.

    Raises:
        SecretError: As :func:`decrypt_data`, or the text is not valid YAML.
    """
    trees = [_document_data(doc) for doc in split_documents(text, where)]
    if not is_encrypted_data(trees[0]):
        raise SecretError(f"{where}: is not encrypted (no sops: metadata)")
    meta = parse_metadata(trees[0]["sops"], where)
    cipher, _ = _cipher(meta, identities, where)
    plain = [{key: value for key, value in tree.items() if key != "sops"} for tree in trees]
    return [found.data for found in decrypt_trees(plain, meta, cipher, where)]


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return goyaml.format_go_time(value)
    raise TypeError(type(value).__name__)


def decrypt_text(text: str, identities: age.IdentitySet, where: str) -> DecryptedFile:
    """Decrypt a SOPS file into its plaintext file, checking the MAC.

    Raises:
        SecretError: As :func:`decrypt_data`.
    """
    meta = read_metadata(text, where)
    cipher, data_key = _cipher(meta, identities, where)
    if _is_json(where):
        tree = {k: v for k, v in _parse_json(text, where).items() if k != "sops"}
        plain = decrypt_tree(tree, meta, cipher, where).data
        output = json.dumps(plain, indent=4, ensure_ascii=False, default=_json_default) + "\n"
        return DecryptedFile(output, meta, data_key, {})
    mac = MacBuilder(mac_only_encrypted=meta.mac_only_encrypted)
    parts = [decrypt_document(doc, meta, cipher, mac) for doc in split_documents(text, where)]
    check_mac(cipher, meta, mac.hexdigest(), where)
    comment_aads = {text: aad for part in parts for text, aad in part.comment_aads.items()}
    return DecryptedFile("".join(part.text for part in parts), meta, data_key, comment_aads)


def _lastmodified(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _metadata_entries(
    options: EncryptOptions, data_key: bytes, cipher: ValueCipher, mac: str, now: datetime
) -> tuple[list[AgeStanza], dict[str, object]]:
    """Return the age stanzas and the other metadata entries, in the order sops writes."""
    stanzas = [AgeStanza(r, age.wrap_data_key(data_key, r)) for r in options.recipients]
    lastmodified = _lastmodified(now)
    entries: dict[str, object] = {
        "lastmodified": lastmodified,
        "mac": cipher.seal(mac, mac_aad(lastmodified)),
    }
    if options.mac_only_encrypted:
        entries["mac_only_encrypted"] = True
    entries[options.rule.kind] = options.rule.pattern
    entries["version"] = SOPS_VERSION
    return stanzas, entries


def _metadata_json(stanzas: list[AgeStanza], entries: Mapping[str, object]) -> dict[str, object]:
    age_list = [{"recipient": s.recipient, "enc": s.enc} for s in stanzas]
    return {"age": age_list, **entries}


def _metadata_yaml(stanzas: list[AgeStanza], entries: Mapping[str, object], indent: int) -> str:
    pad = " " * indent
    lines = [f"{pad}sops:", f"{pad}    age:"]
    for stanza in stanzas:
        lines.append(f"{pad}        - recipient: {stanza.recipient}")
        lines.append(f"{pad}          enc: |")
        lines.extend(f"{pad}            {row}" for row in stanza.enc.splitlines())
    for key, value in entries.items():
        quoted = key == "lastmodified" or key.endswith(("regex", "suffix"))
        shown = json.dumps(value) if quoted else render_scalar(value)
        lines.append(f"{pad}    {key}: {shown}")
    return "\n".join(lines) + "\n"


def encrypt_text(
    text: str,
    options: EncryptOptions,
    where: str,
    *,
    now: datetime,
    data_key: bytes | None = None,
    comment_aads: Mapping[str, str] | None = None,
) -> str:
    """Encrypt a plaintext YAML or JSON file into a SOPS file ``sops`` decrypts.

    Args:
        text: The plaintext file.
        options: Recipients, rule and MAC scope.
        where: The file name (``.json`` selects JSON), for messages.
        now: The time written as ``lastmodified``.
        data_key: The data key to reuse (``edit``); a new random one if ``None``.
        comment_aads: Comment texts to encrypt again, with their paths (``edit``).

    Raises:
        SecretError: No recipient, the file is already encrypted, a value sops cannot
            store, or a YAML top level written as a flow mapping.
    """
    if not options.recipients:
        raise SecretError(
            f"{where}: no age recipient to encrypt for; pass --age age1… or add a "
            ".sops.yaml creation rule"
        )
    key = data_key if data_key is not None else os.urandom(32)
    sealer = _Sealer(options, key, now)
    if _is_json(where):
        return _encrypt_json(text, sealer, where)
    docs = split_documents(text, where)
    for doc in docs:
        if doc.root.flow_style:  # the sops block added below would follow a {…} mapping
            raise SecretError(
                f"{doc.where}: the top level is a flow mapping ({{…}}); write it as block "
                "mapping lines (key: value) to encrypt it"
            )
    mac = MacBuilder(mac_only_encrypted=options.mac_only_encrypted)
    bodies = [
        encrypt_document(doc, options.rule, sealer.cipher, mac=mac, comment_aads=comment_aads or {})
        for doc in docs
    ]
    stanzas, entries = sealer.metadata(mac.hexdigest())
    return "".join(
        _with_block(body, _metadata_yaml(stanzas, entries, doc.root.start_mark.column))
        for doc, body in zip(docs, bodies, strict=True)
    )


@dataclass(frozen=True)
class _Sealer:
    """What encrypting one file needs: its options, data key and time."""

    options: EncryptOptions
    key: bytes = field(repr=False)
    now: datetime

    @property
    def cipher(self) -> ValueCipher:
        return ValueCipher(self.key)

    def metadata(self, mac: str) -> tuple[list[AgeStanza], dict[str, object]]:
        return _metadata_entries(self.options, self.key, self.cipher, mac, self.now)


def _encrypt_json(text: str, sealer: _Sealer, where: str) -> str:
    data = _parse_json(text, where)
    if "sops" in data:
        raise SecretError(f"{where}: is already encrypted (it has a sops key)")
    options = sealer.options
    tree, mac = encrypt_tree(
        data, options.rule, sealer.cipher, mac_only_encrypted=options.mac_only_encrypted
    )
    assert isinstance(tree, dict)  # noqa: S101 - the top level was checked to be an object
    tree["sops"] = _metadata_json(*sealer.metadata(mac))
    return json.dumps(tree, indent=4, ensure_ascii=False, default=_json_default) + "\n"


def _with_block(body: str, block: str) -> str:
    """Append a ``sops`` block to a document's text, before its end marker (``...``) if any."""
    lines = body.splitlines(keepends=True)
    if lines and lines[-1].rstrip() == "...":
        return "".join(lines[:-1]) + block + lines[-1]
    return body + block


def rotate_text(text: str, identities: age.IdentitySet, where: str, *, now: datetime) -> str:
    """Re-encrypt a SOPS file with a new data key for the same recipients and rule."""
    decrypted = decrypt_text(text, identities, where)
    return encrypt_text(
        decrypted.text,
        decrypted.options(),
        where,
        now=now,
        comment_aads=decrypted.comment_aads,
    )


def update_keys_text(
    text: str, identities: age.IdentitySet, recipients: Sequence[str], where: str
) -> str:
    """Wrap the same data key for ``recipients``; values, MAC and lastmodified stay.

    Raises:
        SecretError: No recipient given, or the file cannot be opened.
    """
    if not recipients:
        raise SecretError(f"{where}: no age recipient to encrypt for")
    meta = read_metadata(text, where)
    _, data_key = _cipher(meta, identities, where)
    stanzas = [AgeStanza(r, age.wrap_data_key(data_key, r)) for r in recipients]
    entries: dict[str, object] = {"lastmodified": meta.lastmodified, "mac": meta.mac}
    if meta.mac_only_encrypted:
        entries["mac_only_encrypted"] = True
    entries[meta.rule.kind] = meta.rule.pattern
    entries["version"] = meta.version or SOPS_VERSION
    if _is_json(where):
        data = _parse_json(text, where)
        data["sops"] = _metadata_json(stanzas, entries)
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    return "".join(_replace_block(doc, stanzas, entries) for doc in split_documents(text, where))


def _replace_block(
    doc: YamlDocument, stanzas: list[AgeStanza], entries: Mapping[str, object]
) -> str:
    """A document's text with its ``sops`` block (if it has one) written anew."""
    pair = doc.sops_pair()
    if pair is None:
        return doc.text
    key_node, value_node = pair
    block = _metadata_yaml(stanzas, entries, key_node.start_mark.column).lstrip(" ")
    return doc.text[: key_node.start_mark.index] + block + doc.text[value_node.end_mark.index :]
