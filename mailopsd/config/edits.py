"""Adding, changing and deleting a campaign's credential in a plaintext YAML config file.

Each edit returns the new text with only the lines concerned changed; every other byte
(comments, key order, quoting, blank lines) stays. The lines are found through PyYAML's
node positions, as ``reenable`` finds the line it writes. Values are written on one line
each (``render_scalar`` in flow form: a string with a line break is double-quoted), so a
comment after a value never ends up inside it. A flow mapping (``{…}``) that has entries
is refused rather than rewritten: its text could not be kept.

Which lines an entry owns (what ``delete_credential`` removes, and after what new lines
go): from the comment lines directly above its key at the key's own column (no blank
line between), through its last value's line and the comment lines just after it that
are indented deeper than its key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml
from pydantic import SecretStr
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailopsd.errors import ConfigError, ConfigIssue, SecretError
from mailopsd.secrets.yamltext import render_scalar

__all__ = [
    "CREDENTIAL_FIELD_ORDER",
    "CredentialEditError",
    "add_credential",
    "delete_credential",
    "update_credential",
]

CREDENTIAL_FIELD_ORDER = (
    "label",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "from_name",
    "from_email",
    "daily_limit",
    "imap_host",
    "imap_port",
    "imap_username",
    "imap_password",
)
_INDENT = 2  # what a new level is indented by, when no sibling shows the file's own
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # marks index characters, not bytes


class CredentialEditError(ConfigError):
    """A credential edit the file does not allow: ``reason`` says which kind, for callers.

    Reasons: ``unknown-campaign``, ``other-document``, ``unknown-credential``, ``exists``,
    ``unsupported`` (a layout whose text cannot be kept, or a value YAML cannot hold).
    """

    def __init__(self, reason: str, issue: ConfigIssue) -> None:
        """Keep the reason beside the one issue."""
        self.reason = reason
        super().__init__([issue])


@dataclass(frozen=True)
class _Found:
    """A credentials mapping's node, its key in the campaign, and the campaign's node."""

    campaign: MappingNode
    key: ScalarNode | None
    credentials: Node | None


def _child(node: Node, key: str) -> tuple[ScalarNode, Node] | None:
    """The last ``key`` of a mapping node (the one a YAML reader keeps), or ``None``."""
    found = None
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                found = (key_node, value_node)
    return found


def _fail(reason: str, where: str, at: Node | None, path: str, message: str) -> CredentialEditError:
    line, column = (at.start_mark.line + 1, at.start_mark.column + 1) if at else (0, 0)
    return CredentialEditError(reason, ConfigIssue(where, line, column, path, message))


def _documents(text: str, where: str) -> list[Node]:
    try:
        return list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        issue = ConfigIssue(
            where, line, column, "", f"invalid YAML: {getattr(err, 'problem', err)}"
        )
        raise CredentialEditError("unsupported", issue) from err


def _campaign(text: str, campaign_id: str, where: str) -> MappingNode:
    """The campaign's mapping node, in the file's first document."""
    path = f"campaigns.{campaign_id}"
    documents = _documents(text, where)
    for number, root in enumerate(documents):
        campaigns = _child(root, "campaigns")
        pair = _child(campaigns[1], campaign_id) if campaigns else None
        if pair is None:
            continue
        if number > 0:
            message = (
                f"campaign {campaign_id} is in document {number + 1} of the file, but a config "
                "file holds one document; move it into the first to edit it"
            )
            raise _fail("other-document", where, pair[0], path, message)
        if not isinstance(pair[1], MappingNode):
            raise _fail("unsupported", where, pair[1], path, "the campaign is not a mapping")
        return pair[1]
    campaigns = _child(documents[0], "campaigns") if documents else None
    known = [k.value for k, _ in campaigns[1].value] if campaigns and _is_map(campaigns[1]) else []
    listed = ", ".join(str(k) for k in known) or "none"
    message = f"defines no campaign {campaign_id} (campaigns in this file: {listed})"
    raise _fail("unknown-campaign", where, None, path, message)


def _is_map(node: Node) -> bool:
    return isinstance(node, MappingNode)


def _credentials(text: str, campaign_id: str, where: str) -> _Found:
    campaign = _campaign(text, campaign_id, where)
    pair = _child(campaign, "smtp_credentials")
    if pair is None:
        return _Found(campaign, None, None)
    return _Found(campaign, pair[0], pair[1])


def _entry(
    text: str, campaign_id: str, credential_id: str, where: str
) -> tuple[_Found, ScalarNode, Node]:
    """The credentials mapping, the credential's key and value nodes; else an error."""
    found = _credentials(text, campaign_id, where)
    path = f"campaigns.{campaign_id}.smtp_credentials.{credential_id}"
    node = found.credentials
    pair = _child(node, credential_id) if node is not None else None
    if pair is None:
        known = [str(k.value) for k, _ in node.value] if isinstance(node, MappingNode) else []
        message = (
            f"defines no credential {campaign_id}/{credential_id} "
            f"(credentials of {campaign_id}: {', '.join(known) or 'none'})"
        )
        raise _fail("unknown-credential", where, found.key or found.campaign, path, message)
    return found, pair[0], pair[1]


# Lines -------------------------------------------------------------------------------


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """The index just past the line break that ends the line holding ``index``."""
    found = text.find("\n", index)
    return len(text) if found < 0 else found + 1


def _is_comment_line(line: str) -> bool:
    return line.lstrip(" ").startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content_end(text: str, node: Node) -> int:
    """The end of the last line of ``node``'s text (its same-line comment included).

    A block scalar's end mark lies past the blank lines that follow it: they stay.
    """
    last = node
    while isinstance(last, MappingNode | SequenceNode) and last.value and not last.flow_style:
        item = last.value[-1]
        last = item[1] if isinstance(item, tuple) else item
    end: int = last.end_mark.index
    start: int = node.start_mark.index
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return _line_end(text, end)


def _entry_span(text: str, key: Node, value: Node) -> tuple[int, int]:
    """The lines an entry owns (see the module's docstring): ``(start, end)`` indexes."""
    column: int = key.start_mark.column
    start = _line_start(text, key.start_mark.index)
    while start > 0:
        above = _line_start(text, start - 1)
        line = text[above:start].rstrip("\r\n")
        if not (_is_comment_line(line) and _indent(line) == column):
            break
        start = above
    end = _content_end(text, value)
    while end < len(text):
        line = text[end : _line_end(text, end)].rstrip("\r\n")
        if not (_is_comment_line(line) and _indent(line) > column):
            break
        end = _line_end(text, end)
    return start, end


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _inserted(text: str, at: int, lines: str) -> str:
    """``lines`` inserted at ``at`` (a line start, or the end of a text that may lack one)."""
    before = text[:at]
    if before and not before.endswith("\n"):
        before += _newline(text)
    return before + lines + text[at:]


# Values ------------------------------------------------------------------------------


def _rendered(value: object, where: str, path: str) -> str:
    """``value`` as YAML on one line: scalars as go-yaml reads them back, lists, mappings."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Mapping):
        items = (
            f"{_rendered(k, where, path)}: {_rendered(v, where, path)}" for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_rendered(item, where, path) for item in value) + "]"
    try:
        rendered = render_scalar(value, in_flow=True)
    except SecretError as err:
        message = f"cannot write a value of type {type(value).__name__} in YAML"
        raise CredentialEditError("unsupported", ConfigIssue(where, 0, 0, path, message)) from err
    if isinstance(value, str) and not rendered.startswith('"') and _is_yaml11_typed(rendered):
        return json.dumps(value)  # plain-safe characters only: a valid YAML quoted string
    return rendered


def _is_yaml11_typed(plain: str) -> bool:
    """Tell whether a YAML 1.1 reader (PyYAML, older tools) would not read ``plain`` as text.

    mailopsd and sops read ``yes``, ``on`` or ``0o17`` as strings (YAML 1.2), but a person
    or a tool reading the file the 1.1 way would not: such strings are written quoted.
    """
    try:
        return not isinstance(yaml.safe_load(plain), str)
    except yaml.YAMLError:
        return True


def _ordered(fields: Mapping[str, object]) -> list[tuple[str, object]]:
    """Fields in the API's order, then the others by name; ``None`` (absent) left out."""
    known = [name for name in CREDENTIAL_FIELD_ORDER if name in fields]
    others = sorted(name for name in fields if name not in CREDENTIAL_FIELD_ORDER)
    return [(name, fields[name]) for name in (*known, *others) if fields[name] is not None]


def _field_lines(
    fields: Sequence[tuple[str, object]], column: int, newline: str, *, where: str, path: str
) -> str:
    pad = " " * column
    return "".join(
        f"{pad}{_rendered(name, where, path)}: {_rendered(value, where, f'{path}.{name}')}{newline}"
        for name, value in fields
    )


def _entry_lines(
    credential_id: str,
    fields: Mapping[str, object],
    columns: tuple[int, int],
    newline: str,
    *,
    where: str,
    path: str,
) -> str:
    ordered = _ordered(fields)
    head = " " * columns[0] + _rendered(credential_id, where, path) + ":"
    if not ordered:
        return head + " {}" + newline
    return head + newline + _field_lines(ordered, columns[1], newline, where=where, path=path)


# Edits -------------------------------------------------------------------------------

_Edit = tuple[int, int, str]
_NULLS = {"", "~", "null", "Null", "NULL"}


def _applied(text: str, edits: Sequence[_Edit]) -> str:
    """``text`` with each ``(start, end, new)`` made; the spans must not overlap."""
    for start, end, new in sorted(edits, key=lambda edit: (edit[0], edit[1]), reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _insertion(text: str, at: int, lines: str) -> _Edit:
    """Insert whole lines at ``at`` (a line start, or the end of the text)."""
    if at == len(text) and text and not text.endswith("\n"):
        lines = _newline(text) + lines
    return at, at, lines


def _after_colon(text: str, key: Node) -> int:
    """The index just past the ``:`` that follows a block mapping's key."""
    return text.index(":", key.end_mark.index) + 1


def _is_empty(node: Node) -> bool:
    """An absent value (``key:``, ``~``, ``null``) or an empty flow mapping (``{}``)."""
    if isinstance(node, ScalarNode):
        return node.tag == "tag:yaml.org,2002:null" and not node.style and node.value in _NULLS
    return isinstance(node, MappingNode) and not node.value


def _columns(node: MappingNode) -> tuple[int, int]:
    """The column of a credentials mapping's keys, and of its credentials' fields."""
    column: int = node.value[0][0].start_mark.column
    for _, value in node.value:
        if isinstance(value, MappingNode) and value.value and not value.flow_style:
            inner: int = value.value[0][0].start_mark.column
            return column, inner
    return column, column + _INDENT


def add_credential(
    text: str, campaign_id: str, credential_id: str, fields: Mapping[str, object], where: str
) -> str:
    """Return ``text`` with a new credential at the end of the campaign's ``smtp_credentials``.

    The entry is indented like the existing ones; under an empty ``smtp_credentials``
    (``{}``, ``~`` or nothing) or a missing one, two spaces deeper than its key. Fields
    come in ``CREDENTIAL_FIELD_ORDER``, then the others by name; ``None`` ones are left out.

    Args:
        text: A plaintext YAML config file.
        campaign_id: The campaign that gets the credential.
        credential_id: The new credential's id.
        fields: Its fields, typed as the config reads them (``SecretStr`` accepted).
        where: The file name, for messages.

    Returns:
        The new text.

    Raises:
        CredentialEditError: No such campaign in the file's first document, the id is
            taken, or ``smtp_credentials`` is a flow mapping with entries (or not a mapping).
    """
    path = f"campaigns.{campaign_id}.smtp_credentials"
    found = _credentials(text, campaign_id, where)
    node, newline = found.credentials, _newline(text)
    if found.key is None or node is None:
        column: int = found.campaign.value[0][0].start_mark.column
        if found.campaign.flow_style:
            raise _flow_refusal(where, found.campaign, f"campaigns.{campaign_id}")
        head = " " * column + "smtp_credentials:" + newline
        entry = _entry_lines(
            credential_id,
            fields,
            (column + 2, column + 4),
            newline,
            where=where,
            path=f"{path}.{credential_id}",
        )
        at = _entry_span(text, *found.campaign.value[-1])[1]
        return _applied(text, [_insertion(text, at, head + entry)])
    if _is_empty(node):
        key_column: int = found.key.start_mark.column
        entry = _entry_lines(
            credential_id,
            fields,
            (key_column + 2, key_column + 4),
            newline,
            where=where,
            path=f"{path}.{credential_id}",
        )
        cut_from = _after_colon(text, found.key)
        cut_to: int = max(node.end_mark.index, cut_from)
        at = _line_end(text, cut_to)
        return _applied(text, [(cut_from, cut_to, ""), _insertion(text, at, entry)])
    if not isinstance(node, MappingNode) or node.flow_style:
        raise _flow_refusal(where, node, path)
    taken = _child(node, credential_id)
    if taken is not None:
        message = f"credential {campaign_id}/{credential_id} already exists; update it instead"
        raise _fail("exists", where, taken[0], f"{path}.{credential_id}", message)
    entry = _entry_lines(
        credential_id, fields, _columns(node), newline, where=where, path=f"{path}.{credential_id}"
    )
    at = _entry_span(text, *node.value[-1])[1]
    return _applied(text, [_insertion(text, at, entry)])


def _flow_refusal(where: str, node: Node, path: str) -> CredentialEditError:
    if isinstance(node, MappingNode):
        message = (
            "is written as a flow mapping ({…}), whose text an edit cannot keep; write it as "
            "block lines (key: value, one per line) to edit it"
        )
    else:
        message = "is not a mapping"
    return _fail("unsupported", where, node, path, message)


def _value_edit(text: str, key: Node, value: Node, rendered: str) -> _Edit:
    """Replace a field's value: in place when it is one line after its key, else whole."""
    start: int = value.start_mark.index
    end: int = value.end_mark.index
    is_alias = start < key.end_mark.index  # an alias: the node is its anchor's, elsewhere
    one_line = not is_alias and "\n" not in text[start:end]
    is_block_scalar = isinstance(value, ScalarNode) and value.style in ("|", ">")
    if one_line and not is_block_scalar and end > start:
        return start, end, rendered
    colon = _after_colon(text, key)
    if one_line and not is_block_scalar:  # an empty value: nothing to replace
        return colon, colon, " " + rendered
    # Multi-line values (and aliases) go whole, with a comment on the key's line.
    last = _line_end(text, colon) if is_alias else _content_end(text, value)
    newline = _newline(text)
    tail = newline if text[:last].endswith("\n") else ""
    return colon, last, " " + rendered + tail


def update_credential(
    text: str, campaign_id: str, credential_id: str, fields: Mapping[str, object], where: str
) -> str:
    """Return ``text`` with fields of a credential set, added or removed.

    An existing field's value is replaced (on its line; a multi-line value whole); a
    missing one is added at the end of the credential, in ``CREDENTIAL_FIELD_ORDER``;
    ``None`` removes the field's lines (see the module's docstring for which).

    Args:
        text: A plaintext YAML config file.
        campaign_id: The credential's campaign.
        credential_id: The credential.
        fields: The fields to change, typed as the config reads them; ``None`` removes.
        where: The file name, for messages.

    Returns:
        The new text.

    Raises:
        CredentialEditError: No such campaign or credential, or the credential is a flow
            mapping (``{mailbox: id}``) or not a mapping.
    """
    path = f"campaigns.{campaign_id}.smtp_credentials.{credential_id}"
    _, key, node = _entry(text, campaign_id, credential_id, where)
    if not isinstance(node, MappingNode) or node.flow_style or not node.value:
        raise _flow_refusal(
            where, node if node.start_mark.index > key.end_mark.index else key, path
        )
    edits: list[_Edit] = []
    missing: dict[str, object] = {}
    for name, value in fields.items():
        pair = _child(node, name)
        if pair is None:
            missing[name] = value
        elif value is None:
            edits.append((*_entry_span(text, *pair), ""))
        else:
            edits.append(_value_edit(text, *pair, _rendered(value, where, f"{path}.{name}")))
    added = _ordered(missing)
    if added:
        column: int = node.value[0][0].start_mark.column
        lines = _field_lines(added, column, _newline(text), where=where, path=path)
        edits.append(_insertion(text, _entry_span(text, key, node)[1], lines))
    return _applied(text, edits)


def delete_credential(text: str, campaign_id: str, credential_id: str, where: str) -> str:
    """Return ``text`` without a credential's lines (see the module's docstring for which).

    Deleting the campaign's last credential leaves ``smtp_credentials: {}``. When blank
    lines surround the entry, one of them goes with it, so no double gap is left.

    Args:
        text: A plaintext YAML config file.
        campaign_id: The credential's campaign.
        credential_id: The credential to delete.
        where: The file name, for messages.

    Returns:
        The new text.

    Raises:
        CredentialEditError: No such campaign or credential, or ``smtp_credentials`` is a
            flow mapping.
    """
    found, key, node = _entry(text, campaign_id, credential_id, where)
    credentials = found.credentials
    if not isinstance(credentials, MappingNode) or found.key is None or credentials.flow_style:
        raise _flow_refusal(where, credentials or key, f"campaigns.{campaign_id}.smtp_credentials")
    start, end = _entry_span(text, key, node)
    if _is_blank_line(text, _line_start(text, start - 1) if start else -1) and _is_blank_line(
        text, end
    ):
        end = _line_end(text, end)
    edits: list[_Edit] = [(start, end, "")]
    if {str(k.value) for k, _ in credentials.value} == {credential_id}:
        colon = _after_colon(text, found.key)
        edits.append((colon, colon, " {}"))
    return _applied(text, edits)


def _is_blank_line(text: str, at: int) -> bool:
    """Tell whether the line starting at ``at`` is empty or spaces (``-1``: none)."""
    if at < 0 or at >= len(text):
        return False
    return not text[at : _line_end(text, at)].strip()
