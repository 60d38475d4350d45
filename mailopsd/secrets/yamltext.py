"""Encrypting and decrypting SOPS YAML as text, so everything else stays as written.

Only the text of the scalars that change is replaced (found through the nodes' start and
end positions); comments, key order, quoting, indentation and blank lines stay exactly as
the person wrote them. Values are typed as go-yaml v3 types them, like the reader.

Comments are encrypted as ``sops`` encrypts them (under the rule, bound to the mapping
they sit in); comments inside lists stay in clear, since ``sops`` turns those into list
items. Decrypting tries the comment's own collection first, then every other one.

A file may hold several documents (``---``), as ``sops`` allows: each is its own tree, one
after the other, under the file's one data key and one MAC; each gets its ``sops`` block.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailopsd import goyaml
from mailopsd.errors import SecretError
from mailopsd.progress import Tally
from mailopsd.secrets.metadata import Metadata, Rule
from mailopsd.secrets.tree import Loc, MacBuilder, aad_of, dotted, open_leaf
from mailopsd.secrets.values import Comment, SealError, ValueCipher, is_sealed

__all__ = [
    "DecryptedText",
    "Leaf",
    "YamlDocument",
    "decrypt_document",
    "encrypt_document",
    "render_scalar",
    "sealed_text",
    "split_documents",
]

_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAGS = {
    goyaml.NUMBER_TAG,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./@+=%:~ -]*\Z")
_COMMENT = re.compile(r"(?:(?<=[ \t])|^)#(.*?)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Leaf:
    """A scalar of the document, where it is and what go-yaml reads in it."""

    node: ScalarNode
    loc: Loc
    path: tuple[str, ...]
    value: object
    in_flow: bool
    indent: int


def _typed(node: ScalarNode, loc: Loc) -> object:
    tag = node.tag
    if node.style in (None, "") and tag in _PLAIN_TAGS:
        return goyaml.resolve_plain(node.value)
    if tag == "tag:yaml.org,2002:bool":
        return node.value in ("true", "True", "TRUE")
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == _STR_TAG or tag in _PLAIN_TAGS:
        return node.value
    raise SecretError(f"{dotted(loc)}: the YAML tag {tag} is not supported")


def _key_text(key: Node, loc: Loc) -> str:
    if not isinstance(key, ScalarNode) or not isinstance(_typed(key, loc), str):
        raise SecretError(f"{dotted(loc)}: map keys must be strings")
    return str(key.value)


def _is_unprintable(char: str) -> bool:
    """Tell whether YAML needs ``char`` escaped (controls, line separators, BOM, surrogates)."""
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n")
        or 0x7F <= code < 0xA0
        or char in "\u2028\u2029\ufeff"
        or 0xD800 <= code < 0xE000
        or code in (0xFFFE, 0xFFFF)
    )


def _escape(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _is_unprintable(char):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _literal(text: str, indent: int) -> str | None:
    """Render a multi-line string as a literal block, or ``None`` where that is unsafe."""
    if text[:1] in (" ", "\t", "\n") or text.endswith("\n\n"):
        return None
    if "\r" in text or any(_is_unprintable(char) for char in text):
        return None
    body = text[:-1] if text.endswith("\n") else text
    if any(line != line.rstrip() or "\t" in line[:1] for line in body.split("\n")):
        return None
    head = "|" if text.endswith("\n") else "|-"
    pad = " " * indent
    return head + "".join(f"\n{pad}{line}" if line else "\n" for line in body.split("\n"))


def _render_float(value: float) -> str:
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _render_str(value: str, *, in_flow: bool, indent: int) -> str:
    if (
        _SAFE_PLAIN.match(value)
        and not value.endswith((" ", ":"))
        and ": " not in value
        and " #" not in value
        and goyaml.resolve_plain(value) == value
    ):
        return value
    if "\n" in value and not in_flow:
        literal = _literal(value, indent)
        if literal is not None:
            return literal
    return _escape(value)


def render_scalar(value: object, *, in_flow: bool = False, indent: int = 2) -> str:
    """Write a typed value as YAML that go-yaml (and mailopsd) read back identically.

    Args:
        value: A str, int, float, bool or timestamp.
        in_flow: The value sits in a flow collection (``[…]``/``{…}``): no block scalar.
        indent: Indentation for the lines of a literal block.

    Returns:
        The YAML text of the value.

    Raises:
        SecretError: The value has another type.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, str):
        return _render_str(value, in_flow=in_flow, indent=indent)
    if isinstance(value, datetime):
        return goyaml.format_go_time(value)
    raise SecretError(f"cannot write a value of type {type(value).__name__} as YAML")


@dataclass(frozen=True)
class _Collection:
    """A mapping or sequence of the document and its path (map keys only)."""

    node: Node
    path: tuple[str, ...]
    is_mapping: bool


@dataclass(frozen=True)
class _Comment:
    """A comment: where its ``#`` is, its text, and the collection it belongs to."""

    start: int
    end: int
    text: str
    owner: _Collection
    collections: list[_Collection]

    def candidates(self) -> list[str]:
        """AADs to try when opening it: its owner's path first, then every other."""
        paths = [self.owner.path, *(entry.path for entry in self.collections)]
        return list(dict.fromkeys(aad_of(path) for path in paths))


def _syntax_error(text: str, where: str, *, first_line: int = 0) -> SecretError:
    """Say where and why ``text`` is not YAML, in one line, as the config loader does.

    PyYAML's own message spans several lines and names ``<unicode string>``; the parser
    that reads configs words it as ``file:line:col: invalid YAML: …``.
    """
    try:
        goyaml.parse_yaml(text)
    except goyaml.YamlSyntaxError as err:
        at = f"{where}:{first_line + err.line}:{err.column}" if err.line else where
        return SecretError(f"{at}: {err.message}")
    return SecretError(f"{where}: invalid YAML")


_IN_LIST = _Collection(SequenceNode("tag:yaml.org,2002:seq", []), (), is_mapping=False)


def _not_yaml(where: str, err: yaml.YAMLError, *, first_line: int = 0) -> SecretError:
    """One line for a YAML error: where it is, and what the parser says."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        problem = err.problem or "invalid YAML"
        if err.context:
            problem = f"{problem} ({err.context})"
        return SecretError(
            f"{where}:{first_line + mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
        )
    return SecretError(f"{where}: invalid YAML: {' '.join(str(err).split())}")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the parser compose_yaml uses


def split_documents(text: str, where: str) -> list[YamlDocument]:
    """Split a YAML stream into its documents, each with its own text (``---`` included).

    The texts put back together are ``text``; each document keeps the line it starts on,
    so messages point into the file.

    Raises:
        SecretError: The text is not valid YAML, or a document is not a mapping.
    """
    try:
        starts = [
            event.start_mark.index
            for event in yaml.parse(text, Loader=_LOADER)
            if isinstance(event, yaml.DocumentStartEvent) and event.start_mark is not None
        ]
    except yaml.YAMLError as err:
        raise _not_yaml(where, err) from err
    bounds = [0, *starts[1:], len(text)]
    many = len(starts) > 1
    return [
        YamlDocument(
            text[start:end],
            f"{where} (document {number})" if many else where,
            first_line=text.count("\n", 0, start),
        )
        for number, (start, end) in enumerate(itertools.pairwise(bounds), start=1)
    ]


@dataclass
class YamlDocument:
    """One YAML document's text and nodes, for encrypting or decrypting in place.

    ``first_line`` is the number of lines before it in its file (0 for the first).
    """

    text: str = field(repr=False)
    where: str
    first_line: int = 0
    root: MappingNode = field(init=False)

    def __post_init__(self) -> None:
        """Compose the text; the top level must be a mapping."""
        try:
            root = goyaml.compose_yaml(self.text)
        except yaml.YAMLError as err:
            raise _not_yaml(self.where, err, first_line=self.first_line) from err
        except Exception as err:  # the reader's own refusals (control characters, …)
            raise _syntax_error(self.text, self.where, first_line=self.first_line) from err
        if not isinstance(root, MappingNode):
            raise SecretError(f"{self.where}: the top level must be a mapping")
        self.root = root

    def sops_pair(self) -> tuple[Node, Node] | None:
        """Return the (key, value) nodes of the top-level ``sops`` key, if any."""
        for key, value in self.root.value:
            if isinstance(key, ScalarNode) and key.value == "sops":
                return key, value
        return None

    def leaves(self) -> Iterator[Leaf]:
        """Yield every scalar outside ``sops`` in document order.

        Raises:
            SecretError: An alias (sops expands them; mailopsd asks to write values out),
                a non-string key or an unsupported tag.
        """
        seen: set[int] = set()
        stack: list[tuple[Node, Loc, tuple[str, ...], bool, int]] = [(self.root, (), (), False, 0)]
        while stack:
            node, loc, path, in_flow, indent = stack.pop()
            if id(node) in seen:
                raise SecretError(
                    f"{self.where}: {dotted(loc)}: anchors and aliases cannot be encrypted; "
                    "write the values out"
                )
            seen.add(id(node))
            if isinstance(node, ScalarNode):
                yield Leaf(node, loc, path, _typed(node, loc), in_flow, indent)
                continue
            flow = in_flow or bool(getattr(node, "flow_style", False))
            children: list[tuple[Node, Loc, tuple[str, ...], bool, int]] = []
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    name = _key_text(key, (*loc, "?"))
                    if not loc and name == "sops":
                        continue
                    column = key.start_mark.column + 2
                    children.append((value, (*loc, name), (*path, name), flow, column))
            elif isinstance(node, SequenceNode):
                column = node.start_mark.column + 2
                children = [
                    (item, (*loc, index), path, flow, column)
                    for index, item in enumerate(node.value)
                ]
            stack.extend(reversed(children))

    def _collections(self) -> list[_Collection]:
        found: list[_Collection] = []
        stack: list[tuple[Node, tuple[str, ...]]] = [(self.root, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node, MappingNode):
                found.append(_Collection(node, path, is_mapping=True))
                stack.extend(
                    (value, (*path, str(key.value)))
                    for key, value in node.value
                    if isinstance(key, ScalarNode) and not (not path and key.value == "sops")
                )
            elif isinstance(node, SequenceNode):
                found.append(_Collection(node, path, is_mapping=False))
                stack.extend((item, path) for item in node.value)
        return found

    def _scalar_owners(self, collections: list[_Collection]) -> list[tuple[int, int, _Collection]]:
        """Return ``(start, end, owner)`` of every scalar (keys too), sorted by start."""
        owned: list[tuple[int, int, _Collection]] = []
        for owner in collections:
            node = owner.node
            items = (
                [n for pair in node.value for n in pair]
                if isinstance(node, MappingNode)
                else list(node.value)
            )
            owned.extend(
                (item.start_mark.index, item.end_mark.index, owner)
                for item in items
                if isinstance(item, ScalarNode)
            )
        return sorted(owned, key=lambda entry: entry[0])

    def comments(self) -> Iterator[_Comment]:
        """Yield every comment outside scalars and outside the ``sops`` block.

        A comment belongs to the collection ``sops`` binds it to: an inline comment to
        the collection holding the scalar it follows; a comment on a line of its own to
        the deepest collection around that line indented no deeper than the comment.
        """
        collections = self._collections()
        owners = self._scalar_owners(collections)
        starts = [start for start, _, _ in owners]
        pair = self.sops_pair()
        sops_span = (pair[0].start_mark.index, pair[1].end_mark.index) if pair else (-1, -1)
        for match in _COMMENT.finditer(self.text):
            at = match.start()
            before = bisect.bisect_right(starts, at) - 1
            if before >= 0 and owners[before][0] <= at < owners[before][1]:
                continue
            if sops_span[0] <= at < sops_span[1]:
                continue
            line_start = self.text.rfind("\n", 0, at) + 1
            inline = bool(self.text[line_start:at].strip())
            if inline:
                owner = owners[before][2] if before >= 0 else collections[0]
            elif self._before_list_item(match.end()):
                owner = _IN_LIST
            else:
                owner = self._around(collections, at, at - line_start)
            yield _Comment(at, match.end(1), match.group(1), owner, collections)

    def _before_list_item(self, at: int) -> bool:
        """Tell whether the next line with content is a list item.

        ``sops`` turns the comments before a list item into items, so they stay clear.
        """
        for line in self.text[at:].split("\n")[1:]:
            content = line.strip()
            if content and not content.startswith("#"):
                return content == "-" or content.startswith("- ")
        return False

    def _around(self, collections: list[_Collection], at: int, column: int) -> _Collection:
        line = self.text.count("\n", 0, at)
        inside = [
            entry
            for entry in collections
            if entry.node.start_mark.column <= column
            and entry.node.start_mark.line <= line <= entry.node.end_mark.line
        ]
        return max(inside, key=lambda entry: len(entry.path), default=collections[0])

    def without_sops(self, replacements: list[tuple[int, int, str]]) -> str:
        """Apply ``(start, end, text)`` replacements and drop the ``sops`` block."""
        pair = self.sops_pair()
        edits = list(replacements)
        if pair is not None:
            edits.append((pair[0].start_mark.index, pair[1].end_mark.index, ""))
        return self.edited(edits)

    def edited(self, edits: list[tuple[int, int, str]]) -> str:
        """Apply ``(start, end, text)`` replacements (not overlapping) to the text.

        The text is joined once from its kept spans and the replacements, so a file of
        many values costs time in proportion to its size, not to size times values.
        """
        pieces: list[str] = []
        kept_from = 0
        for start, end, new in sorted(edits):
            pieces += (self.text[kept_from:start], new)
            kept_from = end
        pieces.append(self.text[kept_from:])
        text = "".join(pieces)
        return text if text.endswith("\n") or not text else text + "\n"

    def covered_leaves(self, rule: Rule) -> Iterator[tuple[Loc, tuple[str, ...], object, bool]]:
        """Yield ``(loc, path, value, covered)`` for each leaf: covered when ``rule`` seals it.

        Under a comment rule, the comments a leaf follows decide; ``sops`` wrote a sealed
        value for it then, so a value counts as covered when it looks sealed.
        """
        for leaf in self.leaves():
            covered = is_sealed(leaf.value) if rule.is_comment_rule else rule.encrypts(leaf.path)
            yield leaf.loc, leaf.path, leaf.value, covered


def _block_tail(node: ScalarNode, text: str) -> str:
    span = text[node.start_mark.index : node.end_mark.index]
    return span[len(span.rstrip("\n")) :] if node.style in ("|", ">") else ""


def encrypt_document(
    doc: YamlDocument,
    rule: Rule,
    cipher: ValueCipher,
    *,
    mac: MacBuilder,
    comment_aads: Mapping[str, str],
    tally: Tally | None = None,
) -> str:
    """Encrypt the leaves ``rule`` selects, feeding ``mac``; return the text (no ``sops`` block).

    Each value sealed is counted in ``tally``.

    Raises:
        SecretError: The file has a ``sops`` block already, uses a comment rule, or holds
            a value sops cannot store.
    """
    if doc.sops_pair() is not None:
        raise SecretError(f"{doc.where}: is already encrypted (it has a sops: block)")
    if rule.is_comment_rule:
        raise SecretError(
            f"{doc.where}: {rule.kind} rules are not supported for encryption; "
            "use encrypted_regex or a suffix rule"
        )
    edits: list[tuple[int, int, str]] = []
    for leaf in doc.leaves():
        encrypted = rule.encrypts(leaf.path)
        try:
            mac.add(leaf.value, encrypted=encrypted)
            if encrypted and leaf.value not in ("", None):
                sealed = cipher.seal(leaf.value, aad_of(leaf.path))
                shown = f'"{sealed}"' if leaf.in_flow else sealed
                node = leaf.node
                tail = _block_tail(node, doc.text)
                edits.append((node.start_mark.index, node.end_mark.index, shown + tail))
                if tally is not None:
                    tally.add()
        except SealError as err:
            raise SecretError(f"{doc.where}: {dotted(leaf.loc)}: {err}") from err
    for comment in doc.comments():
        aad = comment_aads.get(comment.text)
        if aad is None and comment.owner.is_mapping and rule.encrypts(comment.owner.path):
            aad = aad_of(comment.owner.path)
        if aad is not None and comment.text:
            edits.append(
                (comment.start, comment.end, "#" + cipher.seal(Comment(comment.text), aad))
            )
    return doc.without_sops(edits)


def sealed_text(node_text: str, leaf: Leaf, sealed: str) -> str:
    """The text that replaces a leaf's scalar with its sealed value (quoted in a flow)."""
    shown = f'"{sealed}"' if leaf.in_flow else sealed
    return shown + _block_tail(leaf.node, node_text)


@dataclass(frozen=True)
class DecryptedText:
    """A decrypted document's text, which values were encrypted, and comment paths."""

    text: str = field(repr=False)
    encrypted: frozenset[Loc]
    comment_aads: Mapping[str, str] = field(repr=False)


def _open_comment(cipher: ValueCipher, text: str, candidates: list[str]) -> tuple[str, str] | None:
    for aad in candidates:
        try:
            opened = cipher.open(text, aad)
        except SealError:
            continue
        if isinstance(opened, Comment):
            return opened.text, aad
    return None


def decrypt_document(
    doc: YamlDocument,
    meta: Metadata,
    cipher: ValueCipher,
    mac: MacBuilder,
    tally: Tally | None = None,
) -> DecryptedText:
    """Decrypt a SOPS YAML document into plain YAML text, feeding ``mac`` (checked by the caller).

    Each value opened is counted in ``tally``.

    Raises:
        SecretError: A value does not decrypt.
    """
    edits: list[tuple[int, int, str]] = []
    encrypted: set[Loc] = set()
    for leaf in doc.leaves():
        is_encrypted = (
            is_sealed(leaf.value) if meta.rule.is_comment_rule else meta.rule.encrypts(leaf.path)
        )
        value = leaf.value
        if is_encrypted and value not in ("", None):
            value = open_leaf(cipher, value, leaf.loc, leaf.path, doc.where)
            encrypted.add(leaf.loc)
            node = leaf.node
            shown = render_scalar(value, in_flow=leaf.in_flow, indent=leaf.indent)
            edits.append(
                (node.start_mark.index, node.end_mark.index, shown + _block_tail(node, doc.text))
            )
            if tally is not None:
                tally.add()
        mac.add(value, encrypted=is_encrypted)
    comment_aads: dict[str, str] = {}
    for comment in doc.comments():
        if is_sealed(comment.text):
            opened = _open_comment(cipher, comment.text, comment.candidates())
            if opened is not None:
                comment_aads[opened[0]] = opened[1]
                edits.append((comment.start, comment.end, "#" + opened[0]))
    return DecryptedText(doc.without_sops(edits), frozenset(encrypted), comment_aads)
