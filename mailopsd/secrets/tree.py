"""Decrypting and encrypting a SOPS tree of plain values, and its MAC.

The tree is what a YAML or JSON parser returns (mappings in document order, lists,
scalars). The walk is depth-first in document order; a value's path is its map keys only
(list indexes are not part of it), and its AAD is that path joined by ``:`` with a
trailing ``:``. The MAC is SHA-512 over the canonical plaintext of the leaves in walk
order (only the encrypted ones under ``mac_only_encrypted``), upper-case hex.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mailopsd.errors import SecretError
from mailopsd.secrets.metadata import Metadata, Rule, mac_aad
from mailopsd.secrets.values import SealError, ValueCipher, canonical_bytes, is_sealed

__all__ = [
    "Decrypted",
    "LeafError",
    "Loc",
    "MacBuilder",
    "aad_of",
    "decrypt_tree",
    "decrypt_trees",
    "dotted",
    "encrypt_tree",
    "walk",
]

Loc = tuple[str | int, ...]
_MAC_ONLY_SEED = hashlib.sha256(b"sops").digest()


def aad_of(path: tuple[str, ...]) -> str:
    """Return the AAD of a value or comment under the map keys ``path``."""
    return ":".join(path) + ":"


def dotted(loc: Loc) -> str:
    """Render a location as ``a.b.0.c`` for messages."""
    return ".".join(str(step) for step in loc)


class LeafError(SecretError):
    """One value of a file cannot be decrypted; ``loc`` says which."""

    def __init__(self, where: str, loc: Loc, reason: str) -> None:
        """Keep the location apart so a config loader can point at it."""
        super().__init__(f"{where}: {dotted(loc)}: {reason}")
        self.loc = loc
        self.reason = reason


class MacBuilder:
    """Accumulates the MAC of a tree, leaf by leaf."""

    def __init__(self, *, mac_only_encrypted: bool) -> None:
        """Start a MAC; ``mac_only_encrypted`` seeds it and skips clear leaves."""
        self._hash = hashlib.sha512()
        self.mac_only_encrypted = mac_only_encrypted
        if mac_only_encrypted:
            self._hash.update(_MAC_ONLY_SEED)

    def add(self, value: object, *, encrypted: bool) -> None:
        """Feed one leaf (nulls and comments are never fed)."""
        if value is not None and (encrypted or not self.mac_only_encrypted):
            self._hash.update(canonical_bytes(value))

    def clear_feed(self) -> Callable[[bytes], object]:
        """What a clear leaf's canonical bytes are given to (nothing under mac_only)."""
        return (lambda _: None) if self.mac_only_encrypted else self._hash.update

    def hexdigest(self) -> str:
        """Return the MAC as sops stores it: upper-case hex."""
        return self._hash.hexdigest().upper()


def walk(tree: object, rule: Rule) -> Iterator[tuple[Loc, tuple[str, ...], object, bool]]:
    """Yield ``(loc, path, value, encrypted)`` for every leaf, in document order.

    ``loc`` includes list indexes (for messages); ``path`` holds map keys only (for AAD
    and rules). For comment rules, which need the comments a tree of plain values does
    not keep, a leaf counts as encrypted when it looks like an ``ENC[…]`` value, which
    is what ``sops`` wrote for it.

    Raises:
        SecretError: A map key is not a string (sops refuses those).
    """
    by_comment = rule.is_comment_rule
    # Each entry carries whether a key of its path matched the rule (decided once per key).
    stack: list[tuple[Loc, tuple[str, ...], object, bool]] = [((), (), tree, False)]
    while stack:
        loc, path, node, hit = stack.pop()
        if isinstance(node, dict):
            for key in reversed(list(node)):
                if not isinstance(key, str):
                    raise SecretError(f"{dotted(loc)}: map key {key!r} is not a string")
                matched = hit or (not by_comment and rule.key_hit(key))
                stack.append(((*loc, key), (*path, key), node[key], matched))
        elif isinstance(node, list):
            stack.extend(
                ((*loc, index), path, item, hit) for index, item in reversed(list(enumerate(node)))
            )
        else:
            encrypted = is_sealed(node) if by_comment else rule.encrypts_hit(hit)
            yield loc, path, node, encrypted


@dataclass
class Decrypted:
    """A decrypted tree and the locations of the values that were encrypted."""

    data: object = field(repr=False)
    encrypted: set[Loc] = field(default_factory=set)


def _rebuild(tree: object, leaves: dict[Loc, object]) -> object:
    """Return a copy of ``tree`` with the leaves at the given locations replaced."""

    def copy(node: object, loc: Loc) -> object:
        if isinstance(node, dict):
            return {key: copy(value, (*loc, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [copy(item, (*loc, index)) for index, item in enumerate(node)]
        return leaves.get(loc, node)

    return copy(tree, ())


def decrypt_tree(
    tree: dict[str, object], meta: Metadata, cipher: ValueCipher, where: str
) -> Decrypted:
    """Decrypt every encrypted leaf of ``tree`` (without its ``sops`` key) and check the MAC.

    Raises:
        SecretError: A value that should be encrypted is not, a value does not decrypt,
            or the MAC does not match.
    """
    return decrypt_trees([tree], meta, cipher, where)[0]


def decrypt_trees(
    trees: Sequence[dict[str, object]], meta: Metadata, cipher: ValueCipher, where: str
) -> list[Decrypted]:
    """Decrypt the documents of one file in order; one MAC covers them all.

    One pass per document copies it with its values opened, in :func:`walk`'s order,
    feeding the MAC on the way (a config of 40,000 encrypted values spent most of its
    decryption in a walk and a second copy before).

    Raises:
        SecretError: As :func:`decrypt_tree`.
    """
    mac = MacBuilder(mac_only_encrypted=meta.mac_only_encrypted)
    found = []
    for tree in trees:
        opening = _Opening(meta.rule, cipher, mac, where)
        data = opening.copy(tree, (), (), hit=False)
        found.append(Decrypted(data=data, encrypted=opening.opened))
    check_mac(cipher, meta, mac.hexdigest(), where)
    return found


class _Opening:
    """One document copied with its encrypted values opened (see :func:`decrypt_trees`)."""

    def __init__(self, rule: Rule, cipher: ValueCipher, mac: MacBuilder, where: str) -> None:
        self.rule = rule
        self.by_comment = rule.is_comment_rule
        self.cipher = cipher
        self.mac = mac
        self.where = where
        self.opened: set[Loc] = set()
        self.hits: dict[str, bool] = {}  # the same keys recur in every item of a list
        # Under a key rule, the ``hit`` that leaves a value in clear, and what a clear
        # value's bytes go to (the MAC, unless it covers encrypted values only).
        self.plain: bool | None = None if self.by_comment else not rule.encrypts_hit(True)
        self.mac_clear = mac.clear_feed()

    def _hit(self, key: str) -> bool:
        found = self.hits.get(key)
        if found is None:
            found = self.hits[key] = self.rule.key_hit(key)
        return found

    def copy(self, node: object, loc: Loc, path: tuple[str, ...], *, hit: bool) -> object:
        if isinstance(node, dict):
            if not all(map(isinstance, node, itertools.repeat(str))):  # no frame per key
                bad = next(key for key in reversed(list(node)) if not isinstance(key, str))
                raise SecretError(f"{dotted(loc)}: map key {bad!r} is not a string")
            copied: dict[str, object] = {}
            plain = self.plain
            for key, value in node.items():
                matched = hit or (not self.by_comment and self._hit(key))
                if isinstance(value, dict | list):
                    copied[key] = self.copy(value, (*loc, key), (*path, key), hit=matched)
                elif plain is not None and matched is plain and type(value) is str:
                    # The most common leaf, inline: a clear string under a key rule.
                    self.mac_clear(value.encode())
                    copied[key] = value
                else:
                    copied[key] = self.leaf(value, loc, path, key, matched)
            return copied
        if isinstance(node, list):
            return [
                self.copy(item, (*loc, index), path, hit=hit)
                if isinstance(item, dict | list)
                else self.leaf(item, loc, path, index, hit)
                for index, item in enumerate(node)
            ]
        return self.leaf_at(node, hit)  # only a document's root comes here as a scalar

    def leaf(
        self, node: object, loc: Loc, path: tuple[str, ...], step: str | int, hit: bool
    ) -> object:
        """A leaf at ``step`` under ``loc``; its location is made only if it is opened."""
        encrypted = is_sealed(node) if self.by_comment else self.rule.encrypts_hit(hit)
        value = node
        if encrypted and node not in ("", None):
            at, keys = (*loc, step), (*path, step) if isinstance(step, str) else path
            value = open_leaf(self.cipher, node, at, keys, self.where)
            self.opened.add(at)
        self.mac.add(value, encrypted=encrypted)
        return value

    def leaf_at(self, node: object, hit: bool) -> object:
        """A document that is a single scalar."""
        encrypted = is_sealed(node) if self.by_comment else self.rule.encrypts_hit(hit)
        value = node
        if encrypted and node not in ("", None):
            value = open_leaf(self.cipher, node, (), (), self.where)
            self.opened.add(())
        self.mac.add(value, encrypted=encrypted)
        return value


def open_leaf(
    cipher: ValueCipher, value: object, loc: Loc, path: tuple[str, ...], where: str
) -> object:
    if not isinstance(value, str) or not is_sealed(value):
        raise LeafError(
            where,
            loc,
            "is in clear text, but the file's rule says it is encrypted; re-encrypt the file",
        )
    try:
        return cipher.open(value, aad_of(path))
    except SealError as err:
        raise LeafError(where, loc, str(err)) from err


def check_mac(cipher: ValueCipher, meta: Metadata, computed: str, where: str) -> None:
    """Compare the stored MAC with ``computed``.

    Raises:
        SecretError: The stored MAC does not decrypt or differs.
    """
    tampered = f"{where}: MAC mismatch: the file was changed without its key, or is corrupted"
    try:
        stored = cipher.open(meta.mac, mac_aad(meta.lastmodified))
    except SealError as err:
        raise SecretError(tampered) from err
    if stored != computed:
        raise SecretError(tampered)


def encrypt_tree(
    tree: object, rule: Rule, cipher: ValueCipher, *, mac_only_encrypted: bool
) -> tuple[object, str]:
    """Encrypt the leaves ``rule`` selects; return the new tree and its MAC (hex).

    Raises:
        SecretError: A value cannot be stored by sops (e.g. an integer beyond 64 bits).
    """
    mac = MacBuilder(mac_only_encrypted=mac_only_encrypted)
    sealed: dict[Loc, object] = {}
    for loc, path, value, encrypted in walk(tree, rule):
        try:
            mac.add(value, encrypted=encrypted)
            if encrypted and value not in ("", None):
                sealed[loc] = cipher.seal(value, aad_of(path))
        except SealError as err:
            raise SecretError(f"{dotted(loc)}: {err}") from err
    return _rebuild(tree, sealed), mac.hexdigest()
