"""Bad config pushes: generated mutations of a valid config, each applied to a running daemon.

The config directory holds three SOPS-encrypted campaign files (two MAC only their
secrets, as ``mailopsd secrets encrypt`` writes them; one MACs every value), a leads file
per campaign and a body template. An in-process daemon sends from it to a loopback SMTP
server on a test clock. Each mutation (a deleted key, a wrong type, an invalid value,
broken YAML or SOPS, a truncated, swapped, emptied or deleted file, binary garbage, a
duplicated id, a broken leads file, or a valid change pushed with a broken file) is
written and the daemon reloads, directly or at its file watcher's request. The test
checks that the daemon is still there, that every error names a place in a real file of
the config, that nothing of the mutated config was applied (not even its valid part),
and that sending goes on from the last good config's credentials; then the good files
come back and the error must clear. A mutation that happens to be valid (deleting an
optional key, say) is applied like any push and counted apart.

``MAILOPSD_RELIABILITY=full`` runs 1000 mutations (30 through the watcher);
``MAILOPSD_SEED`` replays a run: the same mutations, on fresh ciphertexts.
"""

from __future__ import annotations

import copy
import csv
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailopsd import secrets
from mailopsd.config.loader import LoadOptions
from mailopsd.config.models import SECRET_FIELDS
from mailopsd.daemon import Daemon, DaemonSettings
from mailopsd.errors import SecretError
from mailopsd.notify import Notifier
from mailopsd.state.statefile import load_state
from tests import dispatch_setup
from tests.reliability.counts import count, seeded
from tests.servers.smtp import SmtpServer, start_smtp
from tests.servers.tlsca import TestCA
from tests.sops_tools import AgeKey, make_key
from tests.waiting import poll_until

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ENCRYPTED_AT = datetime(2026, 11, 1, tzinfo=UTC)
WAIT_S = 30.0

# Which file holds which campaign and its credentials (credential id -> SMTP login).
CAMPAIGNS = {
    "alpha": ("10-alpha.yaml", {"a1": "ada", "a2": "bob"}),
    "beta": ("20-beta.yaml", {"b1": "cy"}),
    "gamma": ("30-gamma.yml", {"g1": "dee"}),
}
FULL_MAC = frozenset({"20-beta.yaml"})  # the others MAC only their secrets
TEMPLATE = "beta-step1.txt"
CA_FILE = "ca.pem"  # beside the config files: their lengths, so the mutations, stay the same
GOOD_LOGINS = frozenset(login for _, logins in CAMPAIGNS.values() for login in logins.values())
INTRUDER_ID = "intruder"
INTRUDER_LOGIN = "eve"  # a real user of the server: if its credential were applied, it would send

Loc = tuple[str | int, ...]
Tree = dict[str, Any]


# The good config ----------------------------------------------------------------------


def _credential(server: SmtpServer, login: str) -> Tree:
    return dispatch_setup.credential(server, login, daily_limit=1, tls_ca_file=CA_FILE)


def _campaign(campaign_id: str, server: SmtpServer) -> Tree:
    _, logins = CAMPAIGNS[campaign_id]
    first: Tree = {"subject": "Hello {{ first_name }}", "body": "Hi {{ first_name }}, step 1."}
    sequence = [first]
    if campaign_id == "alpha":
        sequence.append({"delay": "3 days", "body": "Hi again {{ first_name }}."})
    if campaign_id == "beta":
        sequence = [{"subject": "Beta for {{ first_name }}", "body_file": TEMPLATE}]
    campaign: Tree = {
        "name": f"Campaign {campaign_id}",
        "leads": f"leads-{campaign_id}.csv",
        "sequence": sequence,
        "bounce_window": "14 days",
        "smtp_credentials": {cid: _credential(server, login) for cid, login in logins.items()},
    }
    if campaign_id == "gamma":
        campaign["send_window"] = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
        campaign["smtp_credentials"]["g1"]["rate_limit"] = {"value": 10, "period": "1 hour"}
    return campaign


def _leads(campaign_id: str, rows: int) -> bytes:
    lines = [f"{campaign_id}{i:05d}@example.net,Name{i},Company {i}\n" for i in range(rows)]
    return ("email,first_name,company\n" + "".join(lines)).encode()


@dataclass(frozen=True)
class GoodConfig:
    """The valid config: its files as bytes, and the plaintext trees of its YAML files."""

    directory: Path
    key: AgeKey
    stranger: AgeKey
    trees: Mapping[str, Tree]
    files: Mapping[str, bytes]

    @property
    def yaml_names(self) -> list[str]:
        return sorted(self.trees)

    @property
    def csv_names(self) -> list[str]:
        return sorted(name for name in self.files if name.endswith(".csv"))

    def tree(self, name: str) -> Tree:
        """A copy of a YAML file's plaintext tree, to mutate."""
        return copy.deepcopy(dict(self.trees[name]))

    def render(self, name: str, tree: object, *, recipient: str | None = None) -> bytes:
        """Dump and encrypt a tree as ``mailopsd secrets encrypt`` would (plain if it cannot)."""
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
        options = secrets.EncryptOptions(
            (recipient or self.key.recipient,),
            secrets.secret_fields_rule(SECRET_FIELDS),
            mac_only_encrypted=name not in FULL_MAC,
        )
        try:
            return secrets.encrypt_text(text, options, name, now=ENCRYPTED_AT).encode()
        except SecretError:
            return text.encode()


def make_good_config(tmp_path: Path, server: SmtpServer, mutations: int) -> GoodConfig:
    """Write the valid config directory; leads last ``mutations`` rounds of sending."""
    directory = tmp_path / "config"
    directory.mkdir()
    trees = {
        name: {"campaigns": {campaign_id: _campaign(campaign_id, server)}}
        for campaign_id, (name, _) in CAMPAIGNS.items()
    }
    # Enough leads for one send per credential per round, and past the 8 KiB a header
    # read decodes, so that damage late in a file is damage the header check never sees.
    rows = max(mutations + 20, 600)
    files: dict[str, bytes] = {TEMPLATE: b"Hello {{ first_name }}, from beta.\n"}
    for campaign_id, (_, logins) in CAMPAIGNS.items():
        files[f"leads-{campaign_id}.csv"] = _leads(campaign_id, rows * len(logins))
    good = GoodConfig(
        directory, make_key(tmp_path), make_key(tmp_path, "stranger.txt"), trees, files
    )
    files.update({name: good.render(name, tree) for name, tree in trees.items()})
    for name, content in files.items():
        (directory / name).write_bytes(content)
    (directory / CA_FILE).write_bytes(server.ca.ca_file.read_bytes())
    return good


# Mutations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """Files to write (``None`` deletes one) and what the change is."""

    kind: str
    op: str
    detail: str
    writes: Mapping[str, bytes | None]
    adds_intruder: bool = False

    def __str__(self) -> str:
        return f"{self.kind}/{self.op}: {self.detail}"


Mutator = Callable[[random.Random, GoodConfig], Mutation]


def _paths(tree: object, prefix: Loc = ()) -> list[Loc]:
    """Every key and index path below ``tree``, depth first."""
    if isinstance(tree, dict):
        items: list[tuple[str | int, object]] = list(tree.items())
    elif isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return []
    found: list[Loc] = []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


def _parent(tree: Tree, loc: Loc) -> Any:
    node: Any = tree
    for step in loc[:-1]:
        node = node[step]
    return node


def _dotted(loc: Loc) -> str:
    return ".".join(str(step) for step in loc)


def _deleted_key(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.yaml_names)
    tree = good.tree(name)
    loc = rng.choice(_paths(tree))
    del _parent(tree, loc)[loc[-1]]
    op = str(loc[-1]) if isinstance(loc[-1], str) else "list-item"
    return Mutation(
        "deleted-key", op, f"{name}: delete {_dotted(loc)}", {name: good.render(name, tree)}
    )


_SAMPLES: tuple[object, ...] = (
    0,
    -7,
    3.5,
    True,
    None,
    "text",
    ["x", 1],
    {"k": "v"},
    "2026-11-23T10:00:00Z",
)


def _wrong_type(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.yaml_names)
    tree = good.tree(name)
    loc = rng.choice(_paths(tree))
    parent = _parent(tree, loc)
    old = parent[loc[-1]]
    value = rng.choice([sample for sample in _SAMPLES if type(sample) is not type(old)])
    parent[loc[-1]] = value
    detail = f"{name}: {_dotted(loc)} = {value!r}"
    return Mutation("wrong-type", type(value).__name__, detail, {name: good.render(name, tree)})


def _first_credential(campaign: Tree) -> Tree:
    return next(iter(campaign["smtp_credentials"].values()))


def _second_step(campaign: Tree) -> Tree:
    if len(campaign["sequence"]) < 2:
        campaign["sequence"].append({"delay": "1 day", "body": "Again."})
    step: Tree = campaign["sequence"][1]
    return step


def _missing_body_file(campaign: Tree) -> None:
    step = campaign["sequence"][0]
    step.pop("body", None)
    step["body_file"] = "missing.txt"


def _rename(mapping: Tree, old: str, new: str) -> None:
    items = [(new if key == old else key, value) for key, value in mapping.items()]
    mapping.clear()
    mapping.update(items)


# Each invalid value: (op, what to set in a campaign). Every one must be rejected.
_INVALID: tuple[tuple[str, Callable[[Tree], None]], ...] = (
    ("daily_limit", lambda c: _first_credential(c).update(daily_limit=-5)),
    ("daily_limit", lambda c: _first_credential(c).update(daily_limit=0)),
    ("smtp_port", lambda c: _first_credential(c).update(smtp_port=70000)),
    ("delay", lambda c: _second_step(c).update(delay="4 monthz")),
    ("delay", lambda c: _second_step(c).update(delay="0 days")),
    ("delay", lambda c: _second_step(c).update(delay="soon")),
    ("bounce_window", lambda c: c.update(bounce_window="2 fortnights")),
    ("from_email", lambda c: _first_credential(c).update(from_email="not-an-address")),
    ("timezone", lambda c: c.update(timezone="Mars/Olympus_Mons")),
    ("send_window", lambda c: c.update(send_window={"start": "25:00"})),
    ("send_window", lambda c: c.update(send_window={"start": "10:00", "end": "09:00"})),
    ("send_window", lambda c: c.update(send_window={"days": ["funday"]})),
    ("tls", lambda c: _first_credential(c).update(tls="maybe")),
    ("tls", lambda c: _first_credential(c).update(tls="none")),  # with tls_ca_file set
    ("smtp_host", lambda c: _first_credential(c).update(smtp_host="smtp://mail.example.com")),
    ("bounce_threshold", lambda c: c.update(bounce_threshold="150%")),
    (
        "rate_limit",
        lambda c: _first_credential(c).update(rate_limit={"value": 0, "period": "1 hour"}),
    ),
    ("imap", lambda c: _first_credential(c).update(imap_host="127.0.0.1")),
    ("imap_poll_interval", lambda c: c.update(imap_poll_interval="5 seconds")),
    ("subject", lambda c: c["sequence"][0].update(subject="Two\nlines")),
    ("subject", lambda c: c["sequence"][0].update(subject="Hi {{ first_name ")),
    ("subject", lambda c: c["sequence"][0].update(subject="Hi {{ nickname }}")),
    ("leads", lambda c: c.update(leads="missing.csv")),
    ("body_file", _missing_body_file),
    (
        "credential-id",
        lambda c: _rename(c["smtp_credentials"], next(iter(c["smtp_credentials"])), "Bad_ID"),
    ),
    ("status", lambda c: _first_credential(c).update(status="paused")),
    ("reenabled_at", lambda c: _first_credential(c).update(reenabled_at="yesterday")),
    ("sequence", lambda c: c.update(sequence=[])),
    ("sequence", lambda c: c["sequence"][0].update(delay="1 day")),
    ("unknown-field", lambda c: _first_credential(c).update(dailly_limit=5)),
    ("footer", lambda c: c.update(unsubscribe={"footer_text": "%%UNSUB%%"})),
)


def _invalid_value(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.yaml_names)
    tree = good.tree(name)
    campaign_id, campaign = next(iter(tree["campaigns"].items()))
    op, change = rng.choice(_INVALID)
    change(campaign)
    detail = f"{name}: campaign {campaign_id}: {op}"
    return Mutation("invalid-value", op, detail, {name: good.render(name, tree)})


_YAML_BREAKERS = (
    ("unclosed-flow", "{indent}extra: [unclosed\n"),
    ("tab", "\t{indent}extra: 1\n"),
    ("unterminated-quote", '{indent}extra: "unterminated\n'),
    ("undefined-alias", "{indent}extra: *nowhere\n"),
    ("stray-item", "{indent}- stray\n"),
    ("stray-colon", "{indent}: value\n"),
    ("stray-brace", "{indent}}}\n"),
    ("deeper", "{indent}   extra: 1\n"),
    ("directive", "%YAML 9.9\n"),
)


def _broken_yaml(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.yaml_names)
    lines = good.files[name].decode().splitlines(keepends=True)
    at = rng.randrange(1, len(lines))
    if rng.random() < 0.2:
        op = "dedent"
        at = rng.choice([i for i, line in enumerate(lines) if line.startswith("  ")])
        lines[at] = lines[at][1:]
    else:
        op, pattern = rng.choice(_YAML_BREAKERS)
        indent = " " * (len(lines[at]) - len(lines[at].lstrip(" ")))
        lines.insert(at, pattern.format(indent=indent))
    return Mutation("broken-yaml", op, f"{name}: line {at + 1}", {name: "".join(lines).encode()})


_SEALED = re.compile(
    r"ENC\[AES256_GCM,data:(?P<data>[^,]*),iv:(?P<iv>[^,]*),tag:(?P<tag>[^,]*),type:(?P<type>\w+)\]"
)
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _flip(rng: random.Random, text: str, start: int, end: int) -> str:
    """Change one base64 character of ``text[start:end]``, never one holding padding bits.

    Before ``=`` padding the last character carries bits that decoding drops: changing
    it may change nothing, and a mutation must damage what it says it damages.
    """
    digits = len(text[start:end].rstrip("="))
    if digits < end - start:
        digits -= 1
    at = start + rng.randrange(max(digits, 1))
    new = rng.choice([char for char in _BASE64 if char != text[at]])
    return text[:at] + new + text[at + 1 :]


def _is_mac(text: str, match: re.Match[str]) -> bool:
    return text[text.rfind("\n", 0, match.start()) : match.start()].strip() == 'mac: "'


def _values(text: str) -> list[re.Match[str]]:
    """The sealed values of a SOPS file (not its MAC)."""
    return [match for match in _SEALED.finditer(text) if not _is_mac(text, match)]


def _mac(text: str) -> re.Match[str]:
    return next(match for match in _SEALED.finditer(text) if _is_mac(text, match))


def _sops_flip_value(rng: random.Random, text: str, group: str) -> str:
    match = rng.choice(_values(text))
    return _flip(rng, text, match.start(group), match.end(group))


def _sops_swap_values(rng: random.Random, text: str) -> str:
    first, second = sorted(rng.sample(_values(text), 2), key=lambda m: m.start())
    return (
        text[: first.start()]
        + second.group()
        + text[first.end() : second.start()]
        + first.group()
        + text[second.end() :]
    )


def _sops_stanza(rng: random.Random, text: str) -> str:
    """Change the wrapped data key: one character of a full line of its armor."""
    armor = re.search(r"BEGIN AGE ENCRYPTED FILE-----\n(.*?)\n *-----END", text, re.DOTALL)
    assert armor is not None
    lines = list(re.finditer(r"[A-Za-z0-9+/]{64}", armor.group(1)))
    line = rng.choice(lines)
    return _flip(rng, text, armor.start(1) + line.start(), armor.start(1) + line.end())


_SOPS_EDITS: tuple[tuple[str, Callable[[random.Random, str], str]], ...] = (
    ("ciphertext", lambda rng, text: _sops_flip_value(rng, text, "data")),
    ("iv", lambda rng, text: _sops_flip_value(rng, text, "iv")),
    ("tag", lambda rng, text: _sops_flip_value(rng, text, "tag")),
    ("type", lambda rng, text: text.replace("type:str]", "type:int]", 1)),
    ("swapped-values", _sops_swap_values),
    ("mac", lambda rng, text: _flip(rng, text, _mac(text).start("data"), _mac(text).end("data"))),
    ("mac-removed", lambda rng, text: re.sub(r"\n    mac: [^\n]*", "", text)),
    (
        "lastmodified",
        lambda rng, text: text.replace("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
    ),
    ("data-key", _sops_stanza),
    ("no-metadata", lambda rng, text: text[: text.index("\nsops:") + 1]),
    ("metadata-scalar", lambda rng, text: text[: text.index("\nsops:") + 1] + "sops: 3\n"),
    ("plain-value", lambda rng, text: text.replace("daily_limit: 1\n", "daily_limit: 2\n", 1)),
)


def _broken_sops(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.yaml_names)
    if rng.random() < 1 / (len(_SOPS_EDITS) + 1):
        content = good.render(name, good.tree(name), recipient=good.stranger.recipient)
        return Mutation("broken-sops", "wrong-recipient", name, {name: content})
    op, edit = rng.choice(_SOPS_EDITS)
    content = edit(rng, good.files[name].decode()).encode()
    return Mutation("broken-sops", op, name, {name: content})


def _file_kind(name: str) -> str:
    return "yaml" if name.endswith((".yaml", ".yml")) else name.rsplit(".", 1)[-1]


def _truncated(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(sorted(good.files))
    content = good.files[name]
    cut = rng.randrange(len(content))
    detail = f"{name} cut at byte {cut}"
    return Mutation("truncated", _file_kind(name), detail, {name: content[:cut]})


def _swapped(rng: random.Random, good: GoodConfig) -> Mutation:
    first, second = rng.sample(sorted(good.files), 2)
    op = "-".join(sorted(_file_kind(name) for name in (first, second)))
    writes = {first: good.files[second], second: good.files[first]}
    return Mutation("swapped", op, f"{first} <-> {second}", writes)


def _block(lines: list[str], indent: int, key: str) -> tuple[int, int]:
    """The lines of the mapping entry ``key`` at ``indent``: ``(first, after last)``."""
    start = lines.index(" " * indent + key + ":\n")
    end = start + 1
    while end < len(lines) and len(lines[end]) - len(lines[end].lstrip(" ")) > indent:
        end += 1
    return start, end


def _key_twice(good: GoodConfig, source: str, _: str, op: str) -> dict[str, bytes]:
    """The same credential (or campaign) key twice in one mapping of one file."""
    campaign_id, campaign = next(iter(good.trees[source]["campaigns"].items()))
    lines = good.files[source].decode().splitlines(keepends=True)
    if op == "credential-key-twice":
        start, end = _block(lines, 6, next(iter(campaign["smtp_credentials"])))
    else:
        start, end = _block(lines, 2, campaign_id)
    lines[end:end] = lines[start:end]
    return {source: "".join(lines).encode()}


def _copied(good: GoodConfig, source: str, target: str, op: str) -> dict[str, bytes]:
    """A campaign (or a credential) of ``source`` copied, with its id, into another file."""
    campaign_id, campaign = next(iter(good.tree(source)["campaigns"].items()))
    if op == "campaign-in-new-file":
        return {"40-copy.yaml": good.render("40-copy.yaml", {"campaigns": {campaign_id: campaign}})}
    tree = good.tree(target)
    if op == "campaign-in-two-files":
        tree["campaigns"][campaign_id] = campaign
    else:  # a credential id may repeat in another campaign: this one is valid
        credential_id, credential = next(iter(campaign["smtp_credentials"].items()))
        next(iter(tree["campaigns"].values()))["smtp_credentials"][credential_id] = credential
    return {target: good.render(target, tree)}


_DUPLICATES: Mapping[str, Callable[[GoodConfig, str, str, str], dict[str, bytes]]] = {
    "credential-key-twice": _key_twice,
    "campaign-key-twice": _key_twice,
    "campaign-in-two-files": _copied,
    "campaign-in-new-file": _copied,
    "credential-in-two-campaigns": _copied,
}


def _duplicated_id(rng: random.Random, good: GoodConfig) -> Mutation:
    op = rng.choice(sorted(_DUPLICATES))
    source, target = rng.sample(good.yaml_names, 2)
    writes = _DUPLICATES[op](good, source, target, op)
    return Mutation("duplicated-id", op, f"from {source} into {', '.join(writes)}", writes)


def _binary_garbage(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(sorted(good.files))
    content = good.files[name]
    at = rng.randrange(len(content) + 1)
    op = rng.choice(["replace", "insert", "control"])
    if op == "replace":
        garbage = rng.randbytes(rng.randint(1, 2048))
        return Mutation("binary-garbage", op, f"{name}: {len(garbage)} bytes", {name: garbage})
    garbage = (
        rng.randbytes(rng.randint(1, 32))
        if op == "insert"
        else rng.choice([b"\x00", b"\x07", b"\x1b[0m", b"\x7f"])
    )
    return Mutation(
        "binary-garbage",
        op,
        f"{name}: {garbage!r} at byte {at}",
        {name: content[:at] + garbage + content[at:]},
    )


def _empty(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(sorted(good.files))
    content = rng.choice([b"", b"\n", b"# nothing here\n", b"   \n"])
    return Mutation("empty-file", _file_kind(name), f"{name}: {content!r}", {name: content})


def _deleted_file(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(sorted(good.files))
    return Mutation("deleted-file", _file_kind(name), name, {name: None})


def _late_row(content: bytes, row: bytes) -> bytes:
    """Put ``row`` just before the last row of a leads file."""
    at = content.rstrip(b"\n").rfind(b"\n") + 1
    return content[:at] + row + content[at:]


_LEADS_EDITS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("no-email-column", lambda c: c.replace(b"email,", b"mail,", 1)),
    ("repeated-column", lambda c: c.replace(b"email,first_name", b"email,email", 1)),
    ("missing-template-column", lambda c: c.replace(b"first_name", b"name", 1)),
    ("header-not-utf8", lambda c: c.replace(b"company", b"compa\xffny", 1)),
    ("late-row-not-utf8", lambda c: _late_row(c, b"late@example.net,L\xe9a,Caf\xe9\n")),
    (
        "late-row-huge-field",
        lambda c: _late_row(c, b"huge@example.net," + b"x" * 200_000 + b",Big\n"),
    ),
    ("late-row-bad-address", lambda c: _late_row(c, b"not-an-address,Nobody,None\n")),
    ("late-row-line-break", lambda c: _late_row(c, b'split@example.net,"Two\nlines",X\n')),
    ("late-row-open-quote", lambda c: _late_row(c, b'quote@example.net,"Open,X\n')),
    ("bom", lambda c: b"\xef\xbb\xbf" + c),
    ("header-only-comma", lambda c: b",\n" + c[c.index(b"\n") + 1 :]),
)


def _leads_broken(rng: random.Random, good: GoodConfig) -> Mutation:
    name = rng.choice(good.csv_names)
    op, edit = rng.choice(_LEADS_EDITS)
    return Mutation("leads-broken", op, name, {name: edit(good.files[name])})


def _breaker(rng: random.Random, good: GoodConfig, name: str) -> tuple[str, bytes]:
    """A change that is always invalid, for file ``name``."""
    text = good.files[name].decode()
    if name.endswith(".csv"):
        return "leads-header", text.replace("email,", "mail,", 1).encode()
    choices: dict[str, Callable[[], bytes]] = {
        "yaml-syntax": lambda: text.replace("\n", "\n  extra: [unclosed\n", 1).encode(),
        "mac": lambda: _flip(rng, text, _mac(text).start("data"), _mac(text).end("data")).encode(),
        "daily_limit": lambda: good.render(name, _set_limit(good.tree(name), -1)),
        "empty": lambda: b"",
    }
    op = rng.choice(sorted(choices))
    return op, choices[op]()


def _set_limit(tree: Tree, limit: int) -> Tree:
    _first_credential(next(iter(tree["campaigns"].values())))["daily_limit"] = limit
    return tree


def _partial(rng: random.Random, good: GoodConfig) -> Mutation:
    """A valid change (a new credential, or a new campaign file) with a break elsewhere."""
    server_like = _first_credential(good.trees["10-alpha.yaml"]["campaigns"]["alpha"])
    intruder = dict(
        server_like,
        smtp_username=INTRUDER_LOGIN,
        smtp_password=f"pw-{INTRUDER_LOGIN}",
        from_email=f"{INTRUDER_LOGIN}@sender.example.com",
    )
    if rng.random() < 0.5:
        valid_name = rng.choice(good.yaml_names)
        tree = good.tree(valid_name)
        next(iter(tree["campaigns"].values()))["smtp_credentials"][INTRUDER_ID] = intruder
        op = "new-credential"
    else:
        valid_name = "40-delta.yaml"
        campaign = dict(
            good.tree("10-alpha.yaml")["campaigns"]["alpha"],
            smtp_credentials={INTRUDER_ID: intruder},
        )
        tree = {"campaigns": {"delta": campaign}}
        op = "new-campaign-file"
    broken_name = rng.choice(
        [name for name in sorted(good.files) if name not in (valid_name, TEMPLATE)]
    )
    how, broken = _breaker(rng, good, broken_name)
    writes = {valid_name: good.render(valid_name, tree), broken_name: broken}
    return Mutation(
        "partial",
        f"{op}+{how}",
        f"{valid_name} valid, {broken_name} broken",
        writes,
        adds_intruder=True,
    )


MUTATORS: Mapping[str, Mutator] = {
    "deleted-key": _deleted_key,
    "wrong-type": _wrong_type,
    "invalid-value": _invalid_value,
    "broken-yaml": _broken_yaml,
    "broken-sops": _broken_sops,
    "truncated": _truncated,
    "swapped": _swapped,
    "duplicated-id": _duplicated_id,
    "binary-garbage": _binary_garbage,
    "empty-file": _empty,
    "deleted-file": _deleted_file,
    "leads-broken": _leads_broken,
    "partial": _partial,
}


def mutations(rng: random.Random, good: GoodConfig, total: int) -> Iterator[Mutation]:
    """``total`` mutations, each of a kind picked at random."""
    kinds = sorted(MUTATORS)
    for _ in range(total):
        yield MUTATORS[rng.choice(kinds)](rng, good)


# Pushing mutations to a daemon --------------------------------------------------------

_LOCATION = re.compile(r"(?P<file>[^:]+?)(?::(?P<line>\d+):(?P<column>\d+))?: (?P<rest>.+)")


@dataclass(frozen=True)
class Applied:
    """What the daemon has applied: what a rejected push must leave as it was."""

    revision: str | None
    content_hash: str | None
    loaded: object
    campaigns: Mapping[str, object]
    credentials: Mapping[tuple[str, str], object]
    leads_digests: Mapping[str, str]
    lead_counts: Mapping[str, int]
    credential_states: frozenset[str]


def applied(running: Daemon) -> Applied:
    """Read what ``running`` has applied, from its memory, state and ledger."""
    ledger = running._ledger
    assert ledger is not None
    campaigns = ledger.campaigns.active()
    return Applied(
        revision=running.state.daemon.applied_revision,
        content_hash=running.state.daemon.applied_content_hash,
        loaded=running.loaded,
        campaigns=campaigns,
        credentials=ledger.campaigns.active_credentials(),
        leads_digests=ledger.campaigns.leads_digests(),
        lead_counts={campaign_id: ledger.leads.count(campaign_id) for campaign_id in campaigns},
        credential_states=frozenset(running.state.credentials),
    )


@dataclass
class Pusher:
    """Writes mutations into the config of a running daemon, reloads, and checks."""

    good: GoodConfig
    running: Daemon
    server: SmtpServer
    clock: list[datetime]
    good_revision: str | None
    via_watcher: bool = False
    tally: Counter[tuple[str, str]] = field(default_factory=Counter)
    valid_ops: Counter[str] = field(default_factory=Counter)
    _mtime_ns: int = field(default_factory=time.time_ns)

    def write(self, writes: Mapping[str, bytes | None]) -> None:
        """Write (or delete) files, each with an mtime of its own.

        File times are coarse (a few milliseconds): without distinct times, a rewrite of
        the same size would look unchanged to the daemon's size-and-time caches, which
        edits made seconds apart never do.
        """
        for name, content in writes.items():
            path = self.good.directory / name
            if content is None:
                path.unlink(missing_ok=True)
                continue
            path.write_bytes(content)
            self._mtime_ns += 1_000_000
            os.utime(path, ns=(self._mtime_ns, self._mtime_ns))

    def reload(self) -> None:
        """Reload as the main loop does: at the watcher's request, or directly."""
        self.clock[0] += timedelta(seconds=1)
        if not self.via_watcher:
            self.running._reload_now(notify=False)
            return
        poll_until(
            self.running._reload.is_set,
            timeout_s=WAIT_S,
            interval_s=0.02,
            what="the watcher to ask for a reload",
        )
        self.running._reload.clear()
        watcher = self.running._watcher
        self.running._reload_now(notify=True)
        if self.running._watcher is not watcher:  # the watched files changed
            self.await_watcher()

    def await_watcher(self) -> None:
        """Wait until a (re)started watcher sees changes, rewriting a file as it is.

        A watcher sees nothing until it has started watching: a push in that moment
        would wait for the next drift reload, which this test does not run.
        """
        path = min(self.good.directory.glob("*.y*ml"))
        content = path.read_bytes()

        def seen() -> bool:
            path.write_bytes(content)
            return self.running._reload.is_set()

        poll_until(seen, timeout_s=WAIT_S, interval_s=0.02, what="the watcher to start")
        self.running._reload.clear()

    def push(self, mutation: Mutation) -> None:
        """Apply one mutation, check what the daemon did, then restore the good config."""
        self.apply(mutation)
        self.restore(mutation)

    def apply(self, mutation: Mutation) -> bool:
        """Write one mutation, reload, check what the daemon did; tell if it was valid."""
        before = applied(self.running)
        self.running._reload.clear()
        self.write(mutation.writes)
        try:
            self.reload()
        except Exception as err:
            raise AssertionError(f"{mutation}: the reload raised {err!r}") from err
        state = self.running.state.daemon
        assert state.last_reload_at == self.clock[0], f"{mutation}: the reload recorded nothing"
        valid = state.last_reload_result == "ok"
        self.tally[mutation.kind, "valid" if valid else "rejected"] += 1
        if valid:
            self.valid_ops[f"{mutation.kind}/{mutation.op}"] += 1
        else:
            self.check_rejected(mutation, before)
            self.check_sending(str(mutation))
        return valid

    def check_rejected(self, mutation: Mutation, before: Applied) -> None:
        """The error is reported, located in real files, and nothing was applied."""
        condition = self.running.state.condition("ConfigError")
        assert condition is not None
        assert condition.status == "True", f"{mutation}: rejected without ConfigError"
        assert condition.errors, f"{mutation}: ConfigError without errors"
        assert f"running on revision {self.good_revision}" in condition.message
        for error in condition.errors:
            check_location(error, self.good.directory, mutation)
        assert any(points_at(error, mutation) for error in condition.errors), (
            f"{mutation}: no error points at the change: {condition.errors}"
        )
        on_disk = load_state(self.running.settings.state_dir).condition("ConfigError")
        assert on_disk == condition, f"{mutation}: the state file does not show the error"
        after = applied(self.running)
        assert after == before, f"{mutation}: a rejected config was partly applied"
        assert after.loaded is before.loaded, f"{mutation}: the running config was swapped"
        if mutation.adds_intruder:
            assert not any(INTRUDER_ID in key for key in after.credential_states)
            assert not any(INTRUDER_ID in key for key in after.credentials)

    def check_sending(self, after: str) -> None:
        """A day later, every credential of the last good config sends, and only those."""
        self.clock[0] += timedelta(days=1)
        messages = self.server.handler.messages
        sent_before = len(messages)
        self.running.dispatch()
        logins = {message.login for message in messages[sent_before:]}
        assert logins == GOOD_LOGINS, f"after {after}: sent from {sorted(map(str, logins))}"

    def restore(self, mutation: Mutation) -> None:
        """Put the good files back; the error must clear and the good revision return."""
        self.running._reload.clear()
        self.write({name: self.good.files.get(name) for name in mutation.writes})
        self.reload()
        condition = self.running.state.condition("ConfigError")
        assert condition is not None
        assert condition.status == "False", f"after {mutation}: {condition.errors}"
        assert self.running.state.daemon.applied_revision == self.good_revision

    def summary(self, name: str) -> str:
        """One line: counts per kind, rejected and valid, and which ones were valid."""
        kinds = sorted({kind for kind, _ in self.tally})
        parts = [
            f"{kind} {self.tally[kind, 'rejected']}+{self.tally[kind, 'valid']}" for kind in kinds
        ]
        valid = sum(self.tally[kind, "valid"] for kind in kinds)
        rejected = sum(self.tally[kind, "rejected"] for kind in kinds)
        valid_ops = ", ".join(f"{op} {n}" for op, n in sorted(self.valid_ops.items()))
        return (
            f"{name}: {valid + rejected} mutations, {rejected} rejected, {valid} valid; "
            f"per kind rejected+valid: {', '.join(parts)}; valid ones: {valid_ops or 'none'}"
        )


def check_location(error: str, directory: Path, mutation: Mutation) -> None:
    """``error`` reads ``file:line:col: …`` or ``file: …``, on one line, in a real file."""
    assert "\n" not in error, f"{mutation}: an error on several lines: {error!r}"
    match = _LOCATION.fullmatch(error)
    assert match is not None, f"{mutation}: error without a location: {error!r}"
    path = Path(match["file"])
    assert directory in (path, path.parent), f"{mutation}: not a config file: {error!r}"
    assert path.exists(), f"{mutation}: names a missing file: {error!r}"
    if match["line"] is not None:
        text = path.read_bytes()
        line, column = int(match["line"]), int(match["column"])
        # A parser that meets the end of a file without a final newline reports the
        # start of the line after the last: the end of the file, still a place in it.
        end = text.count(b"\n") + (2 if text and not text.endswith(b"\n") else 1)
        assert 1 <= line <= end, f"{mutation}: no such line: {error!r}"
        assert column >= 1, f"{mutation}: no such column: {error!r}"
        assert line < end or column == 1, f"{mutation}: past the end: {error!r}"


def points_at(error: str, mutation: Mutation) -> bool:
    """Tell whether ``error`` is in a changed file, names one, or is at a line naming one."""
    match = _LOCATION.fullmatch(error)
    assert match is not None
    path = Path(match["file"])
    if path.name in mutation.writes or any(name in match["rest"] for name in mutation.writes):
        return True
    if match["line"] is None or not path.is_file():
        return False
    line = path.read_bytes().splitlines()[int(match["line"]) - 1 :][:1]
    return any(name.encode() in text for name in mutation.writes for text in line)


# The tests ----------------------------------------------------------------------------


@pytest.fixture
def smtp(test_ca: TestCA) -> Iterator[SmtpServer]:
    """A STARTTLS + AUTH server knowing every good login, and the intruder's."""
    users = {login: f"pw-{login}" for login in (*GOOD_LOGINS, INTRUDER_LOGIN)}
    server = start_smtp(test_ca, users)
    try:
        yield server
    finally:
        server.controller.stop()


@contextmanager
def pushing(
    tmp_path: Path, smtp: SmtpServer, *, rounds: int, via_watcher: bool = False
) -> Iterator[Pusher]:
    """A daemon sending on the good config (leads for ``rounds``), and a pusher for it."""
    good = make_good_config(tmp_path, smtp, rounds)
    clock = [START]
    settings = DaemonSettings(
        config_path=good.directory,
        state_dir=tmp_path / "state",
        load_options=LoadOptions(identities=good.key.identities),
        clock=lambda: clock[0],
        debounce_ms=50,
    )
    running = Daemon(settings, Notifier({}))
    running.start()
    try:
        revision = running.state.daemon.applied_revision
        pusher = Pusher(good, running, smtp, clock, revision, via_watcher=via_watcher)
        if via_watcher:
            running._restart_watcher()
            pusher.await_watcher()
        pusher.check_sending("the start")
        yield pusher
        assert running.status_line().endswith(f"revision {revision}")
    finally:
        running.close()
    assert not any(message.login == INTRUDER_LOGIN for message in smtp.handler.messages)
    condition = load_state(tmp_path / "state").condition("ConfigError")
    assert condition is not None
    assert condition.status == "False"


def test_bad_config_pushes(tmp_path: Path, smtp: SmtpServer) -> None:
    """Every bad push is refused with located errors while the last good config sends on."""
    total = count(250, 1000)
    rng = seeded("config mutations")
    with pushing(tmp_path, smtp, rounds=total) as pusher:
        for mutation in mutations(rng, pusher.good, total):
            pusher.push(mutation)
    print(pusher.summary("config mutations"))
    assert sum(pusher.tally.values()) == total


def test_bad_config_pushes_through_the_watcher(tmp_path: Path, smtp: SmtpServer) -> None:
    """Pushes the file watcher notices are refused, or applied, the same way."""
    total = count(6, 30)
    rng = seeded("config mutations (watcher)")
    with pushing(tmp_path, smtp, rounds=total, via_watcher=True) as pusher:
        for mutation in mutations(rng, pusher.good, total):
            pusher.push(mutation)
    print(pusher.summary("config mutations (watcher)"))
    assert sum(pusher.tally.values()) == total


def test_leads_file_not_utf8_past_its_header(tmp_path: Path, smtp: SmtpServer) -> None:
    """A byte that is not UTF-8 deep in a leads file is a located config error."""
    with pushing(tmp_path, smtp, rounds=1) as pusher:
        name = "leads-alpha.csv"
        content = pusher.good.files[name]
        broken = _late_row(content, b"late@example.net,L\xe9a,Caf\xe9\n")
        mutation = Mutation("leads-broken", "late-row-not-utf8", name, {name: broken})
        assert not pusher.apply(mutation)
        line = content.count(b"\n")  # the row goes in before the last one
        errors = pusher.running.state.condition("ConfigError")
        assert errors is not None
        assert errors.errors == (
            f"{pusher.good.directory / '10-alpha.yaml'}:4:12: campaigns.alpha.leads: leads file "
            f"{pusher.good.directory / name} is not UTF-8 text (line {line}, byte 0xe9); "
            "save it as UTF-8",
        )
        pusher.restore(mutation)


def test_leads_row_the_csv_module_refuses(tmp_path: Path, smtp: SmtpServer) -> None:
    """A leads row with a value too long for the csv module is skipped, and reported."""
    with pushing(tmp_path, smtp, rounds=1) as pusher:
        name = "leads-gamma.csv"
        content = pusher.good.files[name]
        huge = _late_row(content, b"huge@example.net," + b"x" * 200_000 + b",Big\n")
        mutation = Mutation("leads-broken", "late-row-huge-field", name, {name: huge})
        assert pusher.apply(mutation)
        ledger = pusher.running._ledger
        assert ledger is not None
        line = content.count(b"\n")
        assert ledger.imports.problems("gamma") == [
            f"{name}:{line}: cannot be read (field larger than field limit "
            f"({csv.field_size_limit()})); skipped"
        ]
        pusher.check_sending("a row skipped")
        pusher.restore(mutation)
