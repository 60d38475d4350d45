"""Where each part of a merged config came from: its file, and the line and column in it.

A config may be many files merged by top-level key (campaigns, shared mailboxes, api
keys and the suppression lists of each account by id). The merge keeps, for each key, the
file that gave it, so that an error found in the merged tree points into that file
(``file:line:col: path: message``). Positions are recovered only when there is an error
to show, by composing the offending file again. Pure: the files' bytes are read by the
loader.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node

from mailopsd import goyaml
from mailopsd.errors import ConfigIssue

__all__ = [
    "MERGED_BY_ID",
    "Loc",
    "Merge",
    "Source",
    "dotted",
    "duplicate_issue",
    "whole_file",
]

MERGED_BY_ID = {
    "campaigns": "campaign",
    "mailboxes": "mailbox",
    "api_keys": "api key",
    "suppress": "the suppression lists of account",
}
"""Top-level keys whose entries merge by id across files, and what one entry is called."""

Loc = Sequence[str | int]


@dataclass
class Source:
    """One config file as read, and its composed nodes once an error needs them."""

    path: Path
    # The text may be decrypted (``secrets edit``) and the data holds decrypted
    # values: neither is ever shown.
    raw: bytes = field(repr=False)
    text: str = field(repr=False)
    data: dict[str, object] = field(default_factory=dict, repr=False)
    encrypted: frozenset[tuple[str | int, ...]] = frozenset()
    sealed_elsewhere: frozenset[tuple[str | int, ...]] = frozenset()
    is_sops: bool = False
    _root: Node | None = field(default=None, repr=False)
    _composed: bool = False

    @property
    def name(self) -> str:
        """The file's path as shown in a message."""
        return str(self.path)

    @functools.cached_property
    def digest(self) -> bytes:
        """The sha256 of the file's bytes, kept with the file as read."""
        return hashlib.sha256(self.raw).digest()

    def root(self) -> Node | None:
        """Return the file's composed YAML nodes (composed once, on first use)."""
        if not self._composed:
            self._root = goyaml.compose_yaml(self.text)
            self._composed = True
        return self._root

    def issue(self, loc: Loc, message: str, *, key: bool = False) -> ConfigIssue:
        """Return ``message`` located at ``loc`` in this file (at its key when ``key``)."""
        line, column, _ = goyaml.locate(self.root(), loc, key=key)
        return ConfigIssue(self.name, line, column, dotted(loc), message)


def dotted(loc: Iterable[str | int]) -> str:
    """Write a location as the dotted path shown in a message: ``campaigns.c1.leads``."""
    return ".".join(str(step) for step in loc)


def whole_file(path: Path, message: str) -> ConfigIssue:
    """Return an issue about a whole file (no line, column or path)."""
    return ConfigIssue(str(path), 0, 0, "", message)


def duplicate_issue(source: Source, dup: goyaml.DuplicateKey) -> ConfigIssue:
    """Return the issue of a key given twice in one mapping of ``source``."""
    path = goyaml.path_to(source.root(), dup.line, dup.column)
    return ConfigIssue(
        source.name,
        dup.line,
        dup.column,
        dotted(path),
        f'duplicate key "{dup.key}"; it is first given on line {dup.first_line}',
    )


@dataclass
class Merge:
    """The merged raw tree and, for each top-level key or campaign, the file it came from."""

    data: dict[str, object] = field(default_factory=dict)
    origins: dict[tuple[str, ...], Source] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def add(self, source: Source) -> None:
        """Merge a file's tree in; a key some other file already gave is an issue."""
        for key, value in source.data.items():
            name = str(key)
            if name in MERGED_BY_ID and isinstance(value, dict):
                entries = self.data.setdefault(name, {})
                if isinstance(entries, dict):
                    for entry_id, body in value.items():
                        self._put(entries, (name, str(entry_id)), body, source)
                    continue
            self._put(self.data, (name,), value, source)

    def _put(
        self, into: dict[str, object], loc: tuple[str, ...], value: object, source: Source
    ) -> None:
        first = self.origins.get(loc)
        if first is None:
            into[loc[-1]] = value
            self.origins[loc] = source
            return
        earlier = first.issue(loc, "", key=True)
        what = f'{MERGED_BY_ID[loc[0]]} "{loc[-1]}"' if len(loc) > 1 else f"{loc[-1]}:"
        self.issues.append(
            source.issue(
                loc,
                f"{what} is defined twice; it is also at "
                f"{earlier.file}:{earlier.line}:{earlier.column}",
                key=True,
            )
        )

    def source_for(self, loc: Loc) -> Source:
        """Return the file the value at ``loc`` of the merged tree came from."""
        if len(loc) >= 2 and loc[0] in MERGED_BY_ID and (str(loc[0]), str(loc[1])) in self.origins:
            return self.origins[str(loc[0]), str(loc[1])]
        if loc and (str(loc[0]),) in self.origins:
            return self.origins[(str(loc[0]),)]
        return next(iter(self.origins.values()))
