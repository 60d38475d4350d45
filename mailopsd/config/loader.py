"""Loading the configuration: files on disk to one validated, immutable ``Config``.

The config is one YAML file or a directory of ``*.yaml``/``*.yml`` files, read in
sorted order and merged by top-level key; campaigns and api keys merge by id, and any
other key (``http``) is given in one file only. Every problem found is
collected into one ``ConfigError`` whose issues point into the files
(``file:line:col: path: message``). Positions are recovered only when there is an error
to show, by composing the offending file again. Every file the config names (leads, body
templates, CA files) and every file of a config directory is read through
:mod:`mailopsd.config.confined`: inside the config tree, a regular file, bounded.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import gc
import hashlib
import shlex
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import Node

from mailopsd import goyaml, secrets
from mailopsd.config import confined, leads, suggest, templates
from mailopsd.config.models import IMAP_FIELDS, SECRET_FIELDS, Campaign, Config
from mailopsd.config.scalars import describe
from mailopsd.errors import ConfigError, ConfigIssue, SecretError

__all__ = [
    "CONFIG_SUFFIXES",
    "LoadCache",
    "LoadOptions",
    "LoadedConfig",
    "collector_paused",
    "config_files",
    "load_config",
]

CONFIG_SUFFIXES = (".yaml", ".yml")
SECRET_FIELDS_IN_ORDER = ("smtp_username", "smtp_password", *IMAP_FIELDS[2:])
_MERGED_BY_ID = {"campaigns": "campaign", "api_keys": "api key"}

Loc = Sequence[str | int]


@dataclass(frozen=True)
class LoadOptions:
    """How to treat secrets while loading.

    Attributes:
        identities: Returns the age identities to decrypt SOPS files with (called only
            when a file is encrypted).
        decrypt: ``False`` checks everything but the secrets' contents (``--no-decrypt``):
            encrypted secrets stay opaque strings.
        allow_plaintext_secrets: Accept secret fields stored in clear (sandbox demos).
        plaintext: Decrypted text to use instead of a file's content (``secrets edit``);
            its secrets count as encrypted where the rule it will be encrypted with
            covers them.
        plaintext_rules: For a file in ``plaintext``, that rule (default: mailopsd's,
            which covers every secret field). A file encrypted before a secret field
            existed has a rule without it: the field would be saved in clear.
        earlier_versions: Returns earlier versions of a config file, newest first, where
            the old name of a renamed key may be found (read only when an encrypted value
            no longer opens where it is).
    """

    identities: Callable[[], secrets.IdentitySet] | None = None
    decrypt: bool = True
    allow_plaintext_secrets: bool = False
    plaintext: Mapping[Path, str] = field(default_factory=dict)
    plaintext_rules: Mapping[Path, secrets.Rule] = field(default_factory=dict)
    earlier_versions: Callable[[Path], Iterable[str]] | None = None


@dataclass(frozen=True)
class LoadedConfig:
    """A valid configuration and what was read to build it.

    Attributes:
        config: The validated desired state.
        files: The config files read, in merge order.
        revision: sha256 over the config files' and body templates' bytes as read.
        campaign_files: The file each campaign is defined in.
        leads_columns: Each campaign's leads file columns, in order.
        bodies: Each step's body template text, by ``(campaign id, step index)``.
        root: The config tree (resolved): every file the config names is inside it.
        notes: What is valid but worth a warning, each located in a file.
    """

    config: Config
    files: tuple[Path, ...]
    revision: str
    campaign_files: Mapping[str, Path]
    leads_columns: Mapping[str, tuple[str, ...]]
    bodies: Mapping[tuple[str, int], str]
    root: Path
    notes: tuple[ConfigIssue, ...] = ()

    @property
    def config_path(self) -> Path:
        """The absolute ``--config`` path that loads this config again: its file or directory."""
        return self.files[0].resolve() if len(self.files) == 1 else self.root

    def leads_path(self, campaign_id: str) -> Path:
        """Return the leads file of a campaign, resolved against its config file."""
        campaign = self.config.campaigns[campaign_id]
        return self.campaign_files[campaign_id].parent / campaign.leads

    def summary(self) -> str:
        """Describe the config in one line: ``2 campaigns, 5 credentials (3 with …)``.

        With ``http``, where it listens and the links' base URL follow, and the number
        of API keys.
        """
        campaigns = self.config.campaigns.values()
        credentials = [c for campaign in campaigns for c in campaign.smtp_credentials.values()]
        with_imap = sum(1 for credential in credentials if credential.has_imap)
        text = (
            f"{_plural(len(campaigns), 'campaign')}, "
            f"{_plural(len(credentials), 'credential')} ({with_imap} with reply detection)"
        )
        http = self.config.http
        if http is not None:
            keys = _plural(len(self.config.api_keys), "API key")
            text += f"; http on {http.listen} for {http.public_base_url}, {keys}"
        return text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass
class _Source:
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
        return str(self.path)

    def root(self) -> Node | None:
        if not self._composed:
            self._root = goyaml.compose_yaml(self.text)
            self._composed = True
        return self._root

    def issue(self, loc: Loc, message: str, *, key: bool = False) -> ConfigIssue:
        line, column, _ = goyaml.locate(self.root(), loc, key=key)
        return ConfigIssue(self.name, line, column, _dotted(loc), message)


def _dotted(loc: Iterable[str | int]) -> str:
    return ".".join(str(step) for step in loc)


def _whole_file(path: Path, message: str) -> ConfigIssue:
    return ConfigIssue(str(path), 0, 0, "", message)


def config_files(path: Path) -> list[Path]:
    """List the config files at ``path``: the file itself, or a directory's YAML files.

    Args:
        path: A config file or a directory of them.

    Returns:
        The files in merge order (sorted by name; dot-files such as ``.sops.yaml`` skipped).

    Raises:
        ConfigError: ``path`` does not exist or the directory has no config file.
    """
    if path.is_dir():
        files = sorted(
            child
            for child in path.iterdir()
            if child.suffix in CONFIG_SUFFIXES and not child.name.startswith(".")
        )
        if not files:
            raise ConfigError([_whole_file(path, "no *.yaml or *.yml config files here")])
        return files
    if not path.exists():
        raise ConfigError([_whole_file(path, "no such file or directory")])
    return [path]


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    line,
                    column,
                    "",
                    f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8",
                )
            ]
        ) from err
    return text.removeprefix("\ufeff")


@dataclass
class LoadCache:
    """What a running daemon keeps between loads: a reload redoes only what changed.

    Files are kept as read (parsed and decrypted) while their bytes stay the same; a
    campaign stays validated while its file does; a leads header while the file's size
    and modification time do. Decrypted values live in this process's memory only,
    exactly as in the loaded config.
    """

    sources: dict[Path, _Source] = field(default_factory=dict)
    campaigns: dict[int, tuple[object, Campaign]] = field(default_factory=dict)
    columns: dict[Path, tuple[tuple[int, int], tuple[str, ...]]] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Sizes only: the campaigns are kept with their decrypted data."""
        return (
            f"LoadCache(files={len(self.sources)}, campaigns={len(self.campaigns)}, "
            f"leads_headers={len(self.columns)})"
        )


def _read_config_file(path: Path, root: Path | None) -> bytes:
    """Read a config file: a regular file of bounded size, inside ``root`` when given."""
    try:
        return confined.read_bytes(
            path, root, what="config file", limit_bytes=confined.CONFIG_MAX_BYTES
        )
    except confined.RefusedFileError as err:
        raise ConfigError([_whole_file(path, str(err))]) from err
    except OSError as err:
        raise ConfigError([_whole_file(path, f"cannot read: {err.strerror}")]) from err


def _read_cached(
    path: Path, options: LoadOptions, cache: LoadCache | None, root: Path | None
) -> _Source:
    """Read a file, or return it as read before when its bytes did not change."""
    if cache is None or path in options.plaintext:
        return _read_source(path, options, root=root)
    raw = _read_config_file(path, root)
    kept = cache.sources.get(path)
    if kept is None or kept.raw != raw:
        kept = cache.sources[path] = _read_source(path, options, raw)
    return kept


def _read_source(
    path: Path, options: LoadOptions, raw: bytes | None = None, *, root: Path | None = None
) -> _Source:
    override = options.plaintext.get(path)
    if raw is None:
        raw = _read_config_file(path, root) if override is None else override.encode()
    source = _Source(path=path, raw=raw, text=_decode(path, raw))
    try:
        parsed = goyaml.parse_yaml(source.text)
    except goyaml.YamlSyntaxError as err:
        raise ConfigError([ConfigIssue(str(path), err.line, err.column, "", err.message)]) from err
    if parsed.data is None:
        raise ConfigError([_whole_file(path, "empty file: expected a mapping with campaigns:")])
    if not isinstance(parsed.data, dict):
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    1,
                    1,
                    "",
                    "the top level must be a mapping with campaigns: "
                    f"(got {describe(parsed.data)})",
                )
            ]
        )
    if parsed.duplicates:
        raise ConfigError([_duplicate_issue(source, dup) for dup in parsed.duplicates])
    source.data = parsed.data
    if override is not None:
        source.is_sops = True
        source.encrypted = _secret_locs(source.data, options.plaintext_rules.get(path))
    elif secrets.is_encrypted_data(source.data):
        source.is_sops = True
        _open_secrets(source, options)
    return source


def _secret_locs(
    data: object, rule: secrets.Rule | None = None
) -> frozenset[tuple[str | int, ...]]:
    """Return where ``rule`` will encrypt a tree (for decrypted text given by ``edit``).

    Comment rules decide by comments, which the tree does not keep: the secret fields
    are taken as covered then (mailopsd cannot encrypt with those rules anyway).
    """
    if rule is None or rule.is_comment_rule:
        rule = secrets.secret_fields_rule(SECRET_FIELDS)
    return frozenset(loc for loc, _, _, encrypted in secrets.walk(data, rule) if encrypted)


def _open_secrets(source: _Source, options: LoadOptions) -> None:
    """Decrypt a SOPS file's data in place, or with ``--no-decrypt`` note what is sealed."""
    data = {str(key): value for key, value in source.data.items()}
    try:
        if not options.decrypt:
            _note_sealed(source, data)
            return
        if options.identities is None:
            raise SecretError(f"{source.name}: is encrypted, and no age identity was given")
        decrypted = secrets.decrypt_data(
            data, options.identities(), source.name, hints=_hints(source.path, options)
        )
    except secrets.ChangedFileError as err:
        raise ConfigError([_finding_issue(source, finding) for finding in err.findings]) from err
    except secrets.LeafError as err:
        raise ConfigError([source.issue(err.loc, err.reason)]) from err
    except SecretError as err:
        message = str(err).removeprefix(f"{source.name}: ")
        raise ConfigError([_whole_file(source.path, message)]) from err
    assert isinstance(decrypted.data, dict)  # noqa: S101 - a mapping stays a mapping
    source.data = decrypted.data
    source.encrypted = frozenset(decrypted.encrypted)


def _hints(path: Path, options: LoadOptions) -> secrets.Hints:
    """Where a renamed key's old name may be found: the secret fields, earlier versions."""
    earlier = options.earlier_versions
    return secrets.Hints(
        field_names=frozenset(SECRET_FIELDS),
        earlier=None if earlier is None else lambda: earlier(path),
    )


def _finding_issue(source: _Source, finding: secrets.Finding) -> ConfigIssue:
    if not finding.loc:
        return _whole_file(source.path, finding.message)
    return source.issue(finding.loc, finding.message, key=finding.at_key)


def _note_sealed(source: _Source, data: dict[str, object]) -> None:
    """Keep sealed secrets as opaque strings; other sealed values cannot be checked."""
    meta = secrets.parse_metadata(data.pop("sops"), source.name)
    sealed = {
        loc for loc, _, value, encrypted in secrets.walk(data, meta.rule) if encrypted and value
    }
    source.data = dict(data)
    source.encrypted = frozenset(sealed)
    source.sealed_elsewhere = frozenset(loc for loc in sealed if loc[-1] not in SECRET_FIELDS)


def _duplicate_issue(source: _Source, dup: goyaml.DuplicateKey) -> ConfigIssue:
    path = goyaml.path_to(source.root(), dup.line, dup.column)
    return ConfigIssue(
        source.name,
        dup.line,
        dup.column,
        _dotted(path),
        f'duplicate key "{dup.key}"; it is first given on line {dup.first_line}',
    )


@dataclass
class _Merge:
    """The merged raw tree and, for each top-level key or campaign, the file it came from."""

    data: dict[str, object] = field(default_factory=dict)
    origins: dict[tuple[str, ...], _Source] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def add(self, source: _Source) -> None:
        for key, value in source.data.items():
            name = str(key)
            if name in _MERGED_BY_ID and isinstance(value, dict):
                entries = self.data.setdefault(name, {})
                if isinstance(entries, dict):
                    for entry_id, body in value.items():
                        self._put(entries, (name, str(entry_id)), body, source)
                    continue
            self._put(self.data, (name,), value, source)

    def _put(
        self, into: dict[str, object], loc: tuple[str, ...], value: object, source: _Source
    ) -> None:
        first = self.origins.get(loc)
        if first is None:
            into[loc[-1]] = value
            self.origins[loc] = source
            return
        earlier = first.issue(loc, "", key=True)
        what = f'{_MERGED_BY_ID[loc[0]]} "{loc[-1]}"' if len(loc) > 1 else f"{loc[-1]}:"
        self.issues.append(
            source.issue(
                loc,
                f"{what} is defined twice; it is also at "
                f"{earlier.file}:{earlier.line}:{earlier.column}",
                key=True,
            )
        )

    def source_for(self, loc: Loc) -> _Source:
        if len(loc) >= 2 and loc[0] in _MERGED_BY_ID and (str(loc[0]), str(loc[1])) in self.origins:
            return self.origins[str(loc[0]), str(loc[1])]
        if loc and (str(loc[0]),) in self.origins:
            return self.origins[(str(loc[0]),)]
        return next(iter(self.origins.values()))


def _unwrap(annotation: object) -> object:
    """Strip ``Annotated`` and ``| None`` from a field annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0]
        else:
            return annotation


def _fields_at(loc: Loc) -> list[str]:
    """Return the field names of the model found at ``loc`` (for suggestions)."""
    annotation: object = Config
    for step in loc:
        inner = _unwrap(annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            if str(step) not in inner.model_fields:
                return []
            annotation = inner.model_fields[str(step)].annotation
        elif typing.get_origin(inner) in (dict, tuple):
            annotation = typing.get_args(inner)[-1 if typing.get_origin(inner) is dict else 0]
        else:
            return []
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return list(inner.model_fields)
    return []


def _unknown_field_message(loc: Loc) -> str:
    name = str(loc[-1])
    if name == "<<":
        return "merge keys (<<) are not supported: sops keeps them as ordinary keys"
    close = difflib.get_close_matches(name, _fields_at(loc[:-1]), n=1, cutoff=0.6)
    return f"unknown field; did you mean {close[0]}?" if close else "unknown field"


_TYPE_MESSAGES = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "bool_type": "true or false",
}


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "mailopsd":
        return str(context["message"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field_message(loc)
    if kind == "too_short":
        return "must not be empty"
    if kind in _TYPE_MESSAGES:
        shown = "value not shown" if loc and loc[-1] in SECRET_FIELDS else None
        return f"must be {_TYPE_MESSAGES[kind]} (got {shown or describe(error['input'])})"
    return error["msg"]


def _validation_issues(err: ValidationError, merge: _Merge) -> list[ConfigIssue]:
    issues = []
    for error in err.errors(include_url=False):
        loc: list[str | int] = list(error["loc"])
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc.pop()
        extra = (error.get("ctx") or {}).get("field")
        if extra:
            loc += [int(step) if step.isdigit() else step for step in str(extra).split(".")]
        source = merge.source_for(loc)
        if tuple(error["loc"]) in source.sealed_elsewhere:
            continue
        at_key = is_key or error["type"] in ("missing", "extra_forbidden")
        issues.append(source.issue(loc, _message(error, loc), key=at_key))
    return issues


def _secret_values(config: Config) -> Iterator[tuple[str, ...]]:
    """Where the config holds a secret: the credentials' in file order, then http's."""
    for campaign_id, campaign in config.campaigns.items():
        for credential_id, credential in campaign.smtp_credentials.items():
            for name in SECRET_FIELDS_IN_ORDER:
                if getattr(credential, name) is not None:
                    yield ("campaigns", campaign_id, "smtp_credentials", credential_id, name)
    if config.http is not None:
        yield ("http", "signing_key")


def _own_recipients(options: LoadOptions) -> tuple[str, ...]:
    """The recipients of the age identities this load would decrypt with, if any."""
    if options.identities is None:
        return ()
    try:
        found = options.identities()
    except SecretError:
        return ()
    return tuple(str(identity.to_public()) for identity in found.identities)


def _encrypt_advice(source: _Source, them: str, options: LoadOptions) -> str:
    """The command that encrypts a clear file's secrets so that this load can open them.

    A ``.sops.yaml`` rule is followed when it encrypts for one of the identities at hand;
    otherwise the command names their recipients with ``--age`` (a file encrypted for
    others' keys only would not open here). Without any identity, making one comes first.
    """
    name = shlex.quote(source.name)
    mine = _own_recipients(options)
    try:
        rule = secrets.find_creation_rule(source.path)
    except SecretError:  # the encrypt command reports a broken .sops.yaml itself
        rule = None
    if rule is not None and (not mine or set(mine) & set(rule.recipients)):
        return f"encrypt {them} with: mailopsd secrets encrypt --in-place {name}"
    if mine:
        ages = " ".join(f"--age {recipient}" for recipient in mine)
        return f"encrypt {them} with: mailopsd secrets encrypt {ages} --in-place {name}"
    return (
        f"encrypt {them} for your own age key: make one with: mailopsd secrets keygen -o "
        "~/.config/sops/age/keys.txt, then check again for the command that encrypts "
        f"{name}"
    )


def _plaintext_secrets(config: Config, merge: _Merge, options: LoadOptions) -> list[ConfigIssue]:
    """One issue per file whose secret fields are stored in clear text."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for loc in _secret_values(config):
        source = merge.source_for(loc)
        if loc not in source.encrypted:
            found.setdefault(source.name, []).append(loc)
    issues = []
    for locs in found.values():
        source = merge.source_for(locs[0])
        many = len(locs) > 1
        count = f"{len(locs)} secret fields are" if many else "this secret field is"
        them = "them" if many else "it"
        if source.is_sops:
            advice = (
                f"the file's encryption rule does not cover {them}: move {them} to a new "
                "file and encrypt that with: mailopsd secrets encrypt --in-place FILE, or "
                f"decrypt this file and encrypt it again with a rule that covers {them}"
            )
        else:
            advice = _encrypt_advice(source, them, options)
        issues.append(
            source.issue(
                locs[0],
                f"{count} stored in clear text; {advice} "
                "(or pass --allow-plaintext-secrets for a local demo)",
            )
        )
    return issues


_NON_ASCII_LOGIN = {
    "smtp": "has non-ASCII characters: mailopsd logs in with AUTH PLAIN in UTF-8 (RFC 4616), "
    "so the SMTP server must offer AUTH PLAIN; if it does not, this credential sends nothing "
    "and its status says why (an ASCII {what} avoids this)",
    "imap": "has non-ASCII characters: mailopsd logs in with AUTHENTICATE PLAIN in UTF-8 "
    "(RFC 4616), so the IMAP server must offer AUTH=PLAIN; if it does not, this mailbox's "
    "replies and bounces are not read and its status says why (an ASCII {what} avoids this)",
}


def _non_ascii_logins(config: Config, merge: _Merge) -> list[ConfigIssue]:
    """A note for each login field beyond ASCII: only AUTH PLAIN carries it.

    The note names the field, never its value or which characters are not ASCII.
    """
    notes = []
    for loc in _secret_values(config):
        if loc[0] != "campaigns":
            continue
        credential = config.campaigns[loc[1]].smtp_credentials[loc[3]]
        value = getattr(credential, loc[4])
        if value is None or value.get_secret_value().isascii():
            continue
        protocol, what = loc[4].split("_", 1)
        notes.append(merge.source_for(loc).issue(loc, _NON_ASCII_LOGIN[protocol].format(what=what)))
    return notes


def _read_leads_columns(path: Path, root: Path) -> tuple[str, ...]:
    """Return the header row of a leads CSV file, checking that all of it is UTF-8.

    The rows are read only when the leads are imported, after the config is accepted:
    a byte that is not UTF-8 in any row must make the config invalid here.

    Raises:
        ValueError: The file cannot be read, is outside the config tree, is not a
            regular file, is too large, is not UTF-8 or has no usable header (the text
            says why).
    """
    try:
        not_utf8 = leads.first_non_utf8(path, root=root)
        with leads.open_leads(path, root=root) as stream:
            header = next(csv.reader(stream), None) if not_utf8 is None else None
    except FileNotFoundError as err:
        raise ValueError(f"leads file {path} not found") from err
    except confined.RefusedFileError as err:
        raise ValueError(str(err)) from err
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read leads file {path}: {err}") from err
    if not_utf8 is not None:
        line, byte = not_utf8
        raise ValueError(
            f"leads file {path} is not UTF-8 text (line {line}, byte 0x{byte:02x}); "
            "save it as UTF-8"
        )
    columns = tuple(name.strip() for name in header or ())
    if not columns:
        raise ValueError(f"leads file {path} is empty; it needs a header row with email")
    if "email" not in columns:
        raise ValueError(f"leads file {path} has no email column (columns: {', '.join(columns)})")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise ValueError(f"leads file {path} repeats the column {repeated[0]}")
    return columns


@dataclass
class _CampaignFiles:
    """Checks a campaign's leads file and templates against each other."""

    campaign_id: str
    campaign: Campaign
    source: _Source
    issues: list[ConfigIssue]
    bodies: dict[tuple[str, int], str]
    body_files: list[bytes]
    root: Path

    def _issue(self, loc: Loc, message: str) -> None:
        self.issues.append(self.source.issue(["campaigns", self.campaign_id, *loc], message))

    def columns(self, cache: LoadCache | None) -> tuple[str, ...] | None:
        path = self.source.path.parent / self.campaign.leads
        try:
            if cache is None:
                return _read_leads_columns(path, self.root)
            # Checked every time: a symlink may now lead elsewhere with the same stamp.
            stat = confined.confine(path, self.root, what="leads file").stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            kept = cache.columns.get(path)
            if kept is None or kept[0] != stamp:
                kept = cache.columns[path] = (stamp, _read_leads_columns(path, self.root))
            return kept[1]
        except FileNotFoundError:
            self._issue(["leads"], f"leads file {path} not found")
            return None
        except (ValueError, confined.RefusedFileError) as err:
            self._issue(["leads"], str(err))
            return None

    def _body(self, index: int) -> str | None:
        step = self.campaign.sequence[index]
        if step.body is not None:
            return step.body
        path = self.source.path.parent / str(step.body_file)
        try:
            raw = confined.read_bytes(
                path, self.root, what="template file", limit_bytes=confined.BODY_MAX_BYTES
            )
            text = raw.decode("utf-8")
        except confined.RefusedFileError as err:
            self._issue(["sequence", index, "body_file"], str(err))
            return None
        except (OSError, UnicodeDecodeError) as err:
            reason = "not found" if isinstance(err, FileNotFoundError) else f"unreadable: {err}"
            self._issue(["sequence", index, "body_file"], f"template file {path} {reason}")
            return None
        self.body_files.append(raw)
        return text

    def check_ca_files(self) -> None:
        """Check that each CA file the credentials name is a regular file of bounded size.

        A relative path must stay inside the tree, as every other; an absolute one may
        name a system bundle (``/etc/ssl/certs/ca-certificates.crt``): a CA file is only
        ever parsed by OpenSSL as certificates, never sent, logged or shown.
        """
        for credential_id, credential in self.campaign.smtp_credentials.items():
            for name in ("tls_ca_file", "imap_tls_ca_file"):
                given = getattr(credential, name)
                if given is None:
                    continue
                path = self.source.path.parent / given
                root = None if Path(given).is_absolute() else self.root
                try:
                    confined.check_file(
                        path, root, what="CA file", limit_bytes=confined.CA_MAX_BYTES
                    )
                except FileNotFoundError:
                    message = f"CA file {path} not found"
                except confined.RefusedFileError as err:
                    message = str(err)
                except OSError as err:
                    message = f"cannot read CA file {path}: {err.strerror}"
                else:
                    continue
                self._issue(["smtp_credentials", credential_id, name], message)

    def check(self, columns: tuple[str, ...] | None) -> None:
        for index, step in enumerate(self.campaign.sequence):
            body = self._body(index)
            if body is not None:
                self.bodies[self.campaign_id, index] = body
            name = "body" if step.body is not None else "body_file"
            self._check_template(index, "subject", step.subject, columns)
            self._check_template(index, name, body, columns)

    def _check_template(
        self, index: int, name: str, source: str | None, columns: tuple[str, ...] | None
    ) -> None:
        if source is None:
            return
        try:
            variables = templates.template_variables(source)
            templates.check_render(source, variables)
        except templates.TemplateError as err:
            self._issue(["sequence", index, name], str(err))
            return
        if columns is None:
            return
        for variable in sorted(variables - set(columns)):
            hint = suggest.did_you_mean(variable, columns)
            self._issue(
                ["sequence", index, name],
                f"step {index + 1} uses {{{{ {variable} }}}} but {self.campaign.leads} has "
                f"no {variable} column{f'; {hint}' if hint else ''} "
                f"(columns: {', '.join(columns)})",
            )


def _read_sources(
    path: Path, merge: _Merge, options: LoadOptions, cache: LoadCache | None
) -> list[_Source]:
    # The files of a directory must be inside it; a file named on the command line is
    # the operator's choice, wherever it is.
    root = confined.tree_root(path) if path.is_dir() else None
    sources: list[_Source] = []
    for file in config_files(path):
        try:
            sources.append(_read_cached(file, options, cache, root))
        except ConfigError as err:
            merge.issues.extend(err.issues)
    if not sources:
        raise ConfigError(merge.issues)
    for source in sources:
        merge.add(source)
    return sources


def _revision(sources: Iterable[_Source], body_files: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.path.name.encode() + b"\0" + source.raw + b"\0")
    for raw in body_files:
        digest.update(raw + b"\0")
    return digest.hexdigest()


def _validated(merge: _Merge, cache: LoadCache | None) -> Config:
    """Validate the merged tree; with a cache, only the campaigns not seen unchanged.

    The other top-level keys (``http``, ``api_keys``) are small and validated every
    time, as are the rules that hold between them and the campaigns.

    Raises:
        ValidationError: Something is invalid (always from validating the whole tree,
            so that every error is reported with its full path).
    """
    campaigns = merge.data.get("campaigns")
    if cache is None or not isinstance(campaigns, dict):
        return Config.model_validate(merge.data)
    kept: dict[int, tuple[object, Campaign]] = {}
    valid: dict[str, Campaign] = {}
    try:
        for campaign_id, body in campaigns.items():
            known = cache.campaigns.get(id(body))
            if known is None or known[0] is not body:
                known = (body, Campaign.model_validate(body))
            kept[id(body)] = known
            valid[campaign_id] = known[1]
        config = Config.model_validate({**merge.data, "campaigns": valid})
    except ValidationError:
        return Config.model_validate(merge.data)
    cache.campaigns = kept
    return config


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a config's many objects are handled.

    A load creates hundreds of thousands of containers and frees few; with the collector
    on, each of its passes walks them all again, and a 10,000-credential load takes more
    than twice as long (measured). Reference counting still frees what is dropped.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_config(
    path: Path, options: LoadOptions | None = None, *, cache: LoadCache | None = None
) -> LoadedConfig:
    """Read, decrypt, merge and validate the configuration at ``path``.

    Args:
        path: A config file or a directory of config files.
        options: How to treat secrets (default: plaintext secrets refused, and an
            encrypted file is an error, since no identity is given).
        cache: Kept by a running daemon between loads: unchanged files are not read
            again, unchanged campaigns not validated again. The result is the same.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Every problem found, each located in a file.
    """
    with collector_paused():
        return _load(path, options or LoadOptions(), cache)


def _load(path: Path, options: LoadOptions, cache: LoadCache | None) -> LoadedConfig:
    merge = _Merge()
    root = confined.tree_root(path)
    sources = _read_sources(path, merge, options, cache)
    for source in sources:
        merge.issues.extend(
            source.issue(loc, "is encrypted, so --no-decrypt cannot check it")
            for loc in sorted(source.sealed_elsewhere, key=str)
        )
    try:
        config = _validated(merge, cache)
    except ValidationError as err:
        raise ConfigError(merge.issues + _validation_issues(err, merge)) from None
    if not options.allow_plaintext_secrets:
        merge.issues.extend(_plaintext_secrets(config, merge, options))
    bodies: dict[tuple[str, int], str] = {}
    body_files: list[bytes] = []
    columns: dict[str, tuple[str, ...]] = {}
    for campaign_id, campaign in config.campaigns.items():
        source = merge.source_for(["campaigns", campaign_id])
        checker = _CampaignFiles(
            campaign_id, campaign, source, merge.issues, bodies, body_files, root
        )
        found = checker.columns(cache)
        checker.check(found)
        checker.check_ca_files()
        if found is not None:
            columns[campaign_id] = found
    if merge.issues:
        raise ConfigError(merge.issues)
    return LoadedConfig(
        config=config,
        files=tuple(source.path for source in sources),
        revision=_revision(sources, body_files),
        campaign_files={cid: merge.source_for(["campaigns", cid]).path for cid in config.campaigns},
        leads_columns=columns,
        bodies=bodies,
        root=root,
        notes=tuple(_non_ascii_logins(config, merge)),
    )
