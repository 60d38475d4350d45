"""What was changed in an encrypted file without its key, told when the file fails to open.

Each value is encrypted with its path as additional data, and the MAC covers the values
in order. So an edit made without the key shows up as a value that no longer opens where
it is, a clear value where the file's rule wants a sealed one, or a MAC that no longer
matches. Looked at value by value (only once opening has failed), these say what most
likely happened, and what fixes it:

- a renamed or moved key: the value opens under another path, found among the field
  names the caller knows (a typo in ``smtp_password``), the keys beside it (two values
  swapped), or in earlier versions of the file (its git history), so the old path is known;
- new values in clear text, under keys the rule encrypts;
- a value no path opens: renamed from a name not found, or corrupted.

The MAC decides what is certain: renamed keys and new values are fixed by
``secrets encrypt -i`` only when the MAC over what was found matches the stored one.
"""

from __future__ import annotations

import difflib
import enum
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from mailopsd.errors import SecretError
from mailopsd.progress import Tally
from mailopsd.secrets.metadata import Metadata, mac_aad
from mailopsd.secrets.tree import Loc, MacBuilder, aad_of, dotted
from mailopsd.secrets.values import NotOpenedError, SealError, ValueCipher, is_sealed

__all__ = [
    "Change",
    "ChangeKind",
    "ChangedFileError",
    "Examination",
    "Finding",
    "Hints",
    "LeafView",
    "describe",
    "examine",
]

LeafView = tuple[Loc, tuple[str, ...], object, bool]
"""One value of a document: location, path (map keys), value as stored, covered by the rule."""


class ChangeKind(enum.Enum):
    """What happened to one value."""

    RENAMED_FIELD = "renamed_field"  # sealed for another name; its key is not one the rule seals
    MOVED = "moved"  # under a key the rule seals, sealed for another path
    UNREADABLE = "unreadable"  # opens under no path tried
    MALFORMED = "malformed"  # cannot be opened for another reason (kept in ``reason``)
    NEW_CLEAR = "new_clear"  # in clear text under a key the rule seals


@dataclass(frozen=True)
class Change:
    """One value that is not as it was encrypted."""

    kind: ChangeKind
    document: int
    loc: Loc
    path: tuple[str, ...]
    old_path: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Hints:
    """Where old paths may be found.

    Attributes:
        field_names: Names a key may have been mistyped from (the secret fields).
        earlier: Returns the texts of earlier versions of the file, newest first; called
            only if a value opens nowhere else.
    """

    field_names: frozenset[str] = frozenset()
    earlier: Callable[[], Iterable[str]] | None = None


@dataclass
class Examination:
    """What examining a file found.

    Attributes:
        changes: Every value not as it was encrypted, in file order.
        mac_matches: Whether the stored MAC matches the values as found (opened where
            they were encrypted, new clear values left out); ``None`` when a value opened
            nowhere, so the MAC cannot be computed.
        mac_after: The MAC once new values are sealed and moved ones sealed again.
        to_seal: The plaintext of each new or moved value, by (document, location).
    """

    changes: list[Change] = field(default_factory=list)
    mac_matches: bool | None = None
    mac_after: str = field(default="", repr=False)
    to_seal: dict[tuple[int, Loc], object] = field(default_factory=dict, repr=False)

    @property
    def is_fixable(self) -> bool:
        """Whether ``secrets encrypt -i`` can seal what changed (and something did)."""
        fixable = {ChangeKind.MOVED, ChangeKind.NEW_CLEAR}
        return (
            self.mac_matches is True
            and bool(self.changes)
            and all(change.kind in fixable for change in self.changes)
        )


@dataclass(frozen=True)
class Finding:
    """One problem to show: where (``loc`` in ``document``; ``()``: the file) and what.

    ``line`` and ``column`` (1-based) are filled in where the text is at hand.
    """

    document: int
    loc: Loc
    message: str
    at_key: bool = False
    line: int = 0
    column: int = 0

    def render(self, where: str) -> str:
        """Write as ``file:line:col: path: message`` (the file alone when not located)."""
        place = f"{where}:{self.line}:{self.column}" if self.line else where
        if not self.loc:
            return f"{place}: {self.message}"
        return f"{place}: {dotted(self.loc)}: {self.message}"


class ChangedFileError(SecretError):
    """An encrypted file was changed without its key; ``findings`` say how, one by one."""

    def __init__(self, where: str, findings: Sequence[Finding]) -> None:
        """Show the first finding, and how many more there are."""
        self.where = where
        self.findings = tuple(findings)
        more = len(self.findings) - 1
        text = self.findings[0].render(where)
        super().__init__(text + (f" (and {more} more)" if more else ""))


_PathsOf = Callable[[str], Iterable[tuple[str, tuple[str, ...]]]]
"""Reads the sealed values of a file's text, each with its path."""


class _EarlierPaths:
    """Where each sealed value sits in earlier versions of the file, read as needed."""

    def __init__(self, earlier: Callable[[], Iterable[str]] | None, parse: _PathsOf) -> None:
        self._earlier = earlier
        self._texts: Iterator[str] | None = None
        self._parse = parse
        self._known: dict[str, tuple[str, ...]] = {}

    def find(self, sealed: str) -> tuple[str, ...] | None:
        if self._earlier is None:
            return None
        if self._texts is None:
            self._texts = iter(self._earlier())
        while sealed not in self._known:
            text = next(self._texts, None)
            if text is None:
                return None
            for value, path in self._parse(text):
                self._known.setdefault(value, path)
        return self._known[sealed]


@dataclass
class _Examiner:
    """Walks the values once, opening each where it is or where it was."""

    meta: Metadata
    cipher: ValueCipher
    hints: Hints
    earlier: _EarlierPaths
    found: Examination = field(default_factory=Examination)

    def __post_init__(self) -> None:
        self.siblings: dict[tuple[str, ...], set[str]] = {}
        self.now = MacBuilder(mac_only_encrypted=self.meta.mac_only_encrypted)
        self.after = MacBuilder(mac_only_encrypted=self.meta.mac_only_encrypted)
        self.unopened = False

    def _open(self, value: str, path: tuple[str, ...]) -> object:
        return self.cipher.open(value, aad_of(path))

    def _old_paths(self, value: str, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        """Where the value may have been, most likely first.

        A known field name or a key beside it in its place (closest names first), then
        where an earlier version of the file had it.
        """
        names = sorted(
            (self.hints.field_names | self.siblings.get(path[:-1], set())) - {path[-1]},
            key=lambda name: -difflib.SequenceMatcher(None, name, path[-1]).ratio(),
        )
        yield from ((*path[:-1], name) for name in names)
        before = self.earlier.find(value)
        if before is not None and before != path:
            yield before

    def _opened_elsewhere(
        self, value: str, path: tuple[str, ...]
    ) -> tuple[tuple[str, ...], object] | None:
        for old in self._old_paths(value, path) if path else ():
            try:
                return old, self._open(value, old)
            except SealError:
                continue
        return None

    def _note(
        self,
        kind: ChangeKind,
        document: int,
        leaf: LeafView,
        *,
        old_path: tuple[str, ...] = (),
        reason: str = "",
    ) -> None:
        loc, path, _, _ = leaf
        self.found.changes.append(Change(kind, document, loc, path, old_path, reason))

    def covered(self, document: int, leaf: LeafView) -> None:
        """A value under a key the rule seals."""
        loc, path, value, _ = leaf
        if value in ("", None):
            self.now.add(value, encrypted=True)
            self.after.add(value, encrypted=True)
            return
        if not is_sealed(value):
            self._note(ChangeKind.NEW_CLEAR, document, leaf)
            self.found.to_seal[document, loc] = value
            self.after.add(value, encrypted=True)
            return
        assert isinstance(value, str)  # noqa: S101 - is_sealed checked it
        try:
            plain = self._open(value, path)
        except NotOpenedError:
            elsewhere = self._opened_elsewhere(value, path)
            if elsewhere is None:
                self._note(ChangeKind.UNREADABLE, document, leaf)
                self.unopened = True
                return
            old, plain = elsewhere
            self._note(ChangeKind.MOVED, document, leaf, old_path=old)
            self.found.to_seal[document, loc] = plain
        except SealError as err:
            self._note(ChangeKind.MALFORMED, document, leaf, reason=str(err))
            self.unopened = True
            return
        self.now.add(plain, encrypted=True)
        self.after.add(plain, encrypted=True)

    def uncovered(self, document: int, leaf: LeafView) -> None:
        """A value under keys the rule leaves in clear."""
        _, path, value, _ = leaf
        elsewhere = (
            self._opened_elsewhere(value, path)
            if isinstance(value, str) and is_sealed(value)
            else None
        )
        if elsewhere is None:
            self.now.add(value, encrypted=False)
            self.after.add(value, encrypted=False)
            return
        old, plain = elsewhere
        self._note(ChangeKind.RENAMED_FIELD, document, leaf, old_path=old)
        self.now.add(plain, encrypted=True)
        self.after.add(plain, encrypted=True)

    def finish(self) -> Examination:
        if not self.unopened:
            try:
                stored = self.cipher.open(self.meta.mac, mac_aad(self.meta.lastmodified))
            except SealError:
                stored = None
            self.found.mac_matches = stored == self.now.hexdigest()
        self.found.mac_after = self.after.hexdigest()
        return self.found


def examine(
    documents: Sequence[Iterable[LeafView]],
    meta: Metadata,
    cipher: ValueCipher,
    *,
    hints: Hints,
    paths_of: _PathsOf,
    tally: Tally | None = None,
) -> Examination:
    """Open every value of a file where it is, or find where it was encrypted.

    Args:
        documents: Each document's values, in file order.
        meta: The file's metadata.
        cipher: Its data key.
        hints: Where old paths may be found.
        paths_of: Reads the sealed values of an earlier version, with their paths.
        tally: Counts each value the rule covers as it is examined.

    Returns:
        What changed, and whether the MAC matches what was found.
    """
    examiner = _Examiner(meta, cipher, hints, _EarlierPaths(hints.earlier, paths_of))
    listed = [list(leaves) for leaves in documents]
    for _, path, _, _ in (leaf for leaves in listed for leaf in leaves):
        if path:
            examiner.siblings.setdefault(path[:-1], set()).add(path[-1])
    for number, leaves in enumerate(listed):
        for leaf in leaves:
            if leaf[3]:
                examiner.covered(number, leaf)
                if tally is not None:
                    tally.add()
            else:
                examiner.uncovered(number, leaf)
    return examiner.finish()


def _key_loc(loc: Loc, index: int) -> Loc:
    """The location of the ``index``-th map key along ``loc`` (list indexes skipped)."""
    keys = [at for at, step in enumerate(loc) if isinstance(step, str)]
    return loc[: keys[index] + 1]


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _renamed(changes: list[Change], command: str) -> list[Finding]:
    """One finding per renamed key, at that key, from the values it holds."""
    groups: dict[tuple[int, Loc, str], int] = {}
    findings = []
    for change in changes:
        new, old = change.path, change.old_path
        differ = [at for at in range(len(new)) if len(new) == len(old) and new[at] != old[at]]
        if len(differ) != 1:
            findings.append(
                Finding(
                    change.document,
                    change.loc,
                    f"was encrypted as {dotted(old)}; re-encrypt it where it is now with: "
                    f"mailopsd secrets encrypt -i {command}",
                )
            )
            continue
        group = (change.document, _key_loc(change.loc, differ[0]), old[differ[0]])
        groups[group] = groups.get(group, 0) + 1
    for (document, loc, old_name), count in groups.items():
        them = _plural(count, "it", "them")
        findings.append(
            Finding(
                document,
                loc,
                f"renamed from {old_name} after its {_plural(count, 'secret was', 'secrets were')}"
                f" encrypted, which binds {them} to the old name; re-encrypt {them} under the "
                f"new name with: mailopsd secrets encrypt -i {command}",
                at_key=True,
            )
        )
    return findings


def _moved_without_key(change: Change, command: str) -> Finding:
    return Finding(
        change.document,
        change.loc,
        f"holds the value encrypted as {dotted(change.old_path)}: it was moved here without "
        f"the key; move it back, or make such changes with: mailopsd secrets edit {command}",
    )


def _renamed_field(change: Change) -> Finding:
    old = change.old_path
    if old[:-1] == change.path[:-1]:
        text = (
            f"unknown field; did you mean {old[-1]}? (its value was encrypted as {old[-1]}: "
            "rename the key back)"
        )
    else:
        text = f"unknown field; its value was encrypted as {dotted(old)}: put it back there"
    return Finding(change.document, change.loc, text, at_key=True)


def _unreadable(changes: list[Change], command: str) -> Finding:
    first, more = changes[0], len(changes) - 1
    also = f" (nor can {more} more {_plural(more, 'value', 'values')})" if more else ""
    return Finding(
        first.document,
        first.loc,
        f"cannot be decrypted under this path{also}: a key on its path (a campaign or "
        "credential id?) was renamed after it was encrypted, or it is corrupted; rename the "
        f"key back, then rename it with: mailopsd secrets edit {command}",
    )


def _new_clear(changes: list[Change], command: str) -> Finding:
    count = len(changes)
    what = _plural(count, "1 new secret value is", f"{count} new secret values are")
    them = _plural(count, "it", "them")
    return Finding(
        changes[0].document,
        changes[0].loc,
        f"{what} in clear text; encrypt {them} with the file's key: "
        f"mailopsd secrets encrypt -i {command}",
    )


def _mac_mismatch(exam: Examination, meta: Metadata, command: str) -> Finding:
    if any(change.kind is ChangeKind.NEW_CLEAR for change in exam.changes) and (
        not meta.mac_only_encrypted
    ):
        return Finding(
            0,
            (),
            "MAC mismatch: the file was changed without its key (its MAC covers every value, "
            "not only the secrets: undo the change, then make it with: mailopsd secrets edit "
            f"{command}), or it is corrupted",
        )
    return Finding(0, (), "MAC mismatch: the file was changed without its key, or is corrupted")


def describe(exam: Examination, meta: Metadata, *, where: str) -> list[Finding]:
    """Say what most likely happened to a file that does not open, and what fixes it.

    Args:
        exam: What :func:`examine` found.
        meta: The file's metadata.
        where: The file as the person named it, for the commands suggested.

    Returns:
        The findings, in file order within each kind; empty if nothing is wrong.
    """
    command = shlex.quote(where)
    by_kind: dict[ChangeKind, list[Change]] = {kind: [] for kind in ChangeKind}
    for change in exam.changes:
        by_kind[change.kind].append(change)
    findings = [_renamed_field(change) for change in by_kind[ChangeKind.RENAMED_FIELD]]
    findings += [
        Finding(change.document, change.loc, change.reason)
        for change in by_kind[ChangeKind.MALFORMED]
    ]
    if by_kind[ChangeKind.UNREADABLE]:
        findings.append(_unreadable(by_kind[ChangeKind.UNREADABLE], command))
    if by_kind[ChangeKind.MOVED] and exam.mac_matches is False:
        findings += [_moved_without_key(change, command) for change in by_kind[ChangeKind.MOVED]]
    elif by_kind[ChangeKind.MOVED]:
        findings += _renamed(by_kind[ChangeKind.MOVED], command)
    if exam.mac_matches is False and not findings:
        findings.append(_mac_mismatch(exam, meta, command))
    elif by_kind[ChangeKind.NEW_CLEAR] and exam.mac_matches is not False:
        findings.append(_new_clear(by_kind[ChangeKind.NEW_CLEAR], command))
    return findings
