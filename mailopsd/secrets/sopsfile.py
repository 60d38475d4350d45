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
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.progress import Progress, Tally
from mailopsd.secrets import age, changes
from mailopsd.secrets.changes import ChangedFileError, Hints, LeafView
from mailopsd.secrets.metadata import AgeStanza, Metadata, Rule, mac_aad, parse_metadata
from mailopsd.secrets.tree import (
    Decrypted,
    MacBuilder,
    aad_of,
    check_mac,
    decrypt_trees,
    encrypt_tree,
    walk,
)
from mailopsd.secrets.values import ValueCipher, is_sealed
from mailopsd.secrets.yamltext import (
    YamlDocument,
    decrypt_document,
    encrypt_document,
    render_scalar,
    sealed_text,
    split_documents,
)

__all__ = [
    "SOPS_VERSION",
    "DecryptedFile",
    "EncryptOptions",
    "UpdatedFile",
    "decrypt_data",
    "decrypt_text",
    "decrypt_yaml_data",
    "encrypt_text",
    "is_encrypted_data",
    "is_encrypted_text",
    "read_metadata",
    "rotate_text",
    "secret_fields_rule",
    "update_keys_text",
    "update_text",
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


_NO_HINTS = Hints()


def _sealed_paths(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The sealed values of an earlier version of a file, with their paths (none if unread)."""
    try:
        return [
            (str(leaf.value), leaf.path)
            for doc in split_documents(text, "an earlier version")
            for leaf in doc.leaves()
            if is_sealed(leaf.value)
        ]
    except SecretError:
        return []


def _explained(
    documents: Sequence[Iterable[LeafView]],
    meta: Metadata,
    cipher: ValueCipher,
    where: str,
    hints: Hints | None,
) -> ChangedFileError | None:
    """Why a file that failed to open fails: what was changed in it, if that can be told."""
    exam = changes.examine(
        documents, meta, cipher, hints=hints or _NO_HINTS, paths_of=_sealed_paths
    )
    findings = changes.describe(exam, meta, where=where)
    return ChangedFileError(where, findings) if findings else None


def _located(err: ChangedFileError, docs: Sequence[YamlDocument]) -> ChangedFileError:
    """The same findings with their line and column in the file."""
    located = []
    for finding in err.findings:
        if finding.loc:
            doc = docs[finding.document]
            line, column, _ = goyaml.locate(doc.root, finding.loc, key=finding.at_key)
            finding = replace(finding, line=doc.first_line + line, column=column)
        located.append(finding)
    return ChangedFileError(err.where, located)


def _opened_trees(
    trees: Sequence[dict[str, object]],
    meta: Metadata,
    cipher: ValueCipher,
    where: str,
    hints: Hints | None,
) -> list[Decrypted]:
    """Decrypt a file's documents; if that fails, say what was changed in them.

    Raises:
        ChangedFileError: What was changed without the key, value by value.
        SecretError: Another failure.
    """
    try:
        return decrypt_trees(trees, meta, cipher, where)
    except SecretError as err:
        leaves = [walk(tree, meta.rule) for tree in trees]
        explained = _explained(leaves, meta, cipher, where, hints)
        if explained is None:
            raise
        raise explained from err


def decrypt_data(
    data: dict[str, object],
    identities: age.IdentitySet,
    where: str,
    *,
    hints: Hints | None = None,
) -> Decrypted:
    """Decrypt parsed SOPS data (with its ``sops`` key) and check the MAC.

    Args:
        data: The parsed file.
        identities: The age identities.
        where: The file, as the person named it.
        hints: Where the old paths of renamed keys may be found, for the messages.

    Raises:
        ChangedFileError: The file was changed without its key (renamed keys, new clear
            values, a MAC mismatch); the findings say where and what to do.
        SecretError: Wrong key, unsupported metadata, or a value that fails.
    """
    tree = {key: value for key, value in data.items() if key != "sops"}
    meta = parse_metadata(data.get("sops"), where)
    cipher, _ = _cipher(meta, identities, where)
    return _opened_trees([tree], meta, cipher, where, hints)[0]


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


def is_encrypted_text(text: str, where: str) -> bool:
    """Tell whether a YAML or JSON file is a SOPS file (its first document has ``sops:``)."""
    try:
        if _is_json(where):
            return is_encrypted_data(_parse_json(text, where))
        return is_encrypted_data(_document_data(split_documents(text, where)[0]))
    except SecretError:
        return False


def decrypt_yaml_data(
    text: str, identities: age.IdentitySet, where: str, *, hints: Hints | None = None
) -> list[object]:
    """Decrypt a SOPS YAML file into each document's plain values, checking the MAC.

    Raises:
        SecretError: As :func:`decrypt_data`, or the text is not valid YAML.
    """
    docs = split_documents(text, where)
    trees = [_document_data(doc) for doc in docs]
    if not is_encrypted_data(trees[0]):
        raise SecretError(f"{where}: is not encrypted (no sops: metadata)")
    meta = parse_metadata(trees[0]["sops"], where)
    cipher, _ = _cipher(meta, identities, where)
    plain = [{key: value for key, value in tree.items() if key != "sops"} for tree in trees]
    try:
        return [found.data for found in _opened_trees(plain, meta, cipher, where, hints)]
    except ChangedFileError as err:
        raise _located(err, docs) from err


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return goyaml.format_go_time(value)
    raise TypeError(type(value).__name__)


def _expect_values(
    tally: Tally, progress: Progress | None, docs: Sequence[YamlDocument], rule: Rule
) -> None:
    """Tell ``tally`` how many values of ``docs`` ``rule`` has sealed or opened.

    They are counted only when someone asks how far the work is.
    """
    if progress is not None:
        tally.expect(
            sum(
                1
                for doc in docs
                for _, _, value, covered in doc.covered_leaves(rule)
                if covered and value not in ("", None)
            )
        )


def decrypt_text(
    text: str,
    identities: age.IdentitySet,
    where: str,
    *,
    hints: Hints | None = None,
    progress: Progress | None = None,
) -> DecryptedFile:
    """Decrypt a SOPS file into its plaintext file, checking the MAC.

    ``progress`` is told how many values of a YAML file are opened, as they are.

    Raises:
        SecretError: As :func:`decrypt_data` (findings located in the file).
    """
    tally = Tally(progress, f"decrypting {where}", total=None, unit="value")
    meta = read_metadata(text, where)
    cipher, data_key = _cipher(meta, identities, where)
    if _is_json(where):
        tree = {k: v for k, v in _parse_json(text, where).items() if k != "sops"}
        plain = _opened_trees([tree], meta, cipher, where, hints)[0].data
        output = json.dumps(plain, indent=4, ensure_ascii=False, default=_json_default) + "\n"
        tally.finish()
        return DecryptedFile(output, meta, data_key, {})
    docs = split_documents(text, where)
    mac = MacBuilder(mac_only_encrypted=meta.mac_only_encrypted)
    _expect_values(tally, progress, docs, meta.rule)
    try:
        parts = [decrypt_document(doc, meta, cipher, mac, tally) for doc in docs]
        check_mac(cipher, meta, mac.hexdigest(), where)
    except SecretError as err:
        leaves = [doc.covered_leaves(meta.rule) for doc in docs]
        explained = _explained(leaves, meta, cipher, where, hints)
        if explained is None:
            raise
        raise _located(explained, docs) from err
    tally.finish()
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
    progress: Progress | None = None,
) -> str:
    """Encrypt a plaintext YAML or JSON file into a SOPS file ``sops`` decrypts.

    Args:
        text: The plaintext file.
        options: Recipients, rule and MAC scope.
        where: The file name (``.json`` selects JSON), for messages.
        now: The time written as ``lastmodified``.
        data_key: The data key to reuse (``edit``); a new random one if ``None``.
        comment_aads: Comment texts to encrypt again, with their paths (``edit``).
        progress: Told how many values of a YAML file are sealed, as they are.

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
    tally = Tally(progress, f"encrypting {where}", total=None, unit="value")
    if _is_json(where):
        encrypted = _encrypt_json(text, sealer, where)
        tally.finish()
        return encrypted
    docs = split_documents(text, where)
    for doc in docs:
        if doc.root.flow_style:  # the sops block added below would follow a {…} mapping
            raise SecretError(
                f"{doc.where}: the top level is a flow mapping ({{…}}); write it as block "
                "mapping lines (key: value) to encrypt it"
            )
    mac = MacBuilder(mac_only_encrypted=options.mac_only_encrypted)
    _expect_values(tally, progress, docs, options.rule)
    bodies = [
        encrypt_document(
            doc, options.rule, sealer.cipher, mac=mac, comment_aads=comment_aads or {}, tally=tally
        )
        for doc in docs
    ]
    tally.finish()
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


def rotate_text(
    text: str,
    identities: age.IdentitySet,
    where: str,
    *,
    now: datetime,
    hints: Hints | None = None,
    progress: Progress | None = None,
) -> str:
    """Re-encrypt a SOPS file with a new data key for the same recipients and rule.

    ``progress`` is told how far decrypting, then encrypting, a YAML file is.
    """
    decrypted = decrypt_text(text, identities, where, hints=hints, progress=progress)
    return encrypt_text(
        decrypted.text,
        decrypted.options(),
        where,
        now=now,
        comment_aads=decrypted.comment_aads,
        progress=progress,
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
    entries = _kept_entries(meta, lastmodified=meta.lastmodified, mac=meta.mac)
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


def _kept_entries(meta: Metadata, *, lastmodified: str, mac: str) -> dict[str, object]:
    """The metadata entries after the age stanzas, as the file had them, with a new MAC."""
    entries: dict[str, object] = {"lastmodified": lastmodified, "mac": mac}
    if meta.mac_only_encrypted:
        entries["mac_only_encrypted"] = True
    entries[meta.rule.kind] = meta.rule.pattern
    entries["version"] = meta.version or SOPS_VERSION
    return entries


@dataclass(frozen=True)
class UpdatedFile:
    """An encrypted file with its new and moved values sealed, and how many of each."""

    text: str = field(repr=False)
    sealed: int
    resealed: int


def update_text(
    text: str,
    identities: age.IdentitySet,
    where: str,
    *,
    now: datetime,
    hints: Hints | None = None,
    progress: Progress | None = None,
) -> UpdatedFile:
    """Seal what was added or renamed in an encrypted YAML file, with the file's own data key.

    New clear values under keys the file's rule encrypts are sealed; values whose key was
    renamed (found where they were encrypted) are sealed again under their new path; the
    MAC and ``lastmodified`` are renewed. Only when the stored MAC matches what was found,
    so nothing changed without the key goes unnoticed. Everything else stays as written.
    ``progress`` is told how many of the file's values are checked (each is opened).

    Raises:
        ChangedFileError: A change this cannot make (a mistyped key, a value that opens
            nowhere, a MAC mismatch): the findings say which, where and what to do.
        SecretError: A JSON file, or the file cannot be opened.
    """
    if _is_json(where):
        raise SecretError(
            f"{where}: new values are added to an encrypted JSON file with: "
            f"mailopsd secrets edit {shlex.quote(where)}"
        )
    tally = Tally(progress, f"checking {where}", total=None, unit="value")
    meta = read_metadata(text, where)
    cipher, _ = _cipher(meta, identities, where)
    docs = split_documents(text, where)
    documents = [list(doc.covered_leaves(meta.rule)) for doc in docs]
    tally.expect(sum(covered for leaves in documents for *_, covered in leaves))
    exam = changes.examine(
        documents, meta, cipher, hints=hints or _NO_HINTS, paths_of=_sealed_paths, tally=tally
    )
    tally.finish()
    if not exam.changes and exam.mac_matches:
        return UpdatedFile(text, 0, 0)
    if not exam.is_fixable:
        raise _located(ChangedFileError(where, changes.describe(exam, meta, where=where)), docs)
    lastmodified = _lastmodified(now)
    entries = _kept_entries(
        meta, lastmodified=lastmodified, mac=cipher.seal(exam.mac_after, mac_aad(lastmodified))
    )
    updated = "".join(
        _resealed(doc, number, to_seal=exam.to_seal, cipher=cipher, block=(list(meta.age), entries))
        for number, doc in enumerate(docs)
    )
    counts = [change.kind for change in exam.changes]
    return UpdatedFile(
        updated, counts.count(changes.ChangeKind.NEW_CLEAR), counts.count(changes.ChangeKind.MOVED)
    )


def _resealed(
    doc: YamlDocument,
    number: int,
    *,
    to_seal: Mapping[tuple[int, tuple[str | int, ...]], object],
    cipher: ValueCipher,
    block: tuple[list[AgeStanza], Mapping[str, object]],
) -> str:
    """Document ``number``'s text with the given values sealed where they are, and ``block``."""
    edits = []
    for leaf in doc.leaves():
        if (number, leaf.loc) in to_seal:
            sealed = cipher.seal(to_seal[number, leaf.loc], aad_of(leaf.path))
            node = leaf.node
            edits.append(
                (node.start_mark.index, node.end_mark.index, sealed_text(doc.text, leaf, sealed))
            )
    pair = doc.sops_pair()
    if pair is not None:
        key_node, value_node = pair
        written = _metadata_yaml(*block, key_node.start_mark.column).lstrip(" ")
        edits.append((key_node.start_mark.index, value_node.end_mark.index, written))
    return doc.edited(edits)
