"""The reuse of work between config loads, so that a daemon's reload redoes only what changed.

The result of a load is the same with or without it. Pure: the loader reads the files
and hands their bytes and stamps over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from pydantic import ValidationError

from mailopsd.config.mailboxes import Shared
from mailopsd.config.models import Campaign, Config, Credential
from mailopsd.config.origins import Source

__all__ = ["FileStamp", "LoadCache", "per_campaign", "validate_config"]

Stamp = tuple[int, int]
"""A file's modification time (ns) and size: a leads header is read again when it changes."""
FileStamp = tuple[int, int, int, int, int, int]
"""A config file as ``lstat`` sees it: device, inode, mode, size, modification and change
times (ns). The same stamp, taken before the read, is the same file."""
Problems = tuple[tuple[int, int, str], ...]
"""A suppression list's malformed lines: line, column, message."""
T = TypeVar("T")


@dataclass
class LoadCache:
    """What a running daemon keeps between loads: a reload redoes only what changed.

    Files are kept as read (parsed and decrypted) while their bytes stay the same; a
    campaign stays validated while its file does; a leads header, and what is wrong with
    a suppression list, while the file's size and modification time do. Decrypted
    values live in this process's memory only, exactly as in the loaded config.
    """

    sources: dict[Path, Source] = field(default_factory=dict)
    campaigns: dict[int, tuple[object, Campaign]] = field(default_factory=dict)
    mailboxes: dict[int, tuple[object, Credential]] = field(default_factory=dict)
    columns: dict[Path, tuple[Stamp, tuple[str, ...]]] = field(default_factory=dict)
    lists: dict[Path, tuple[Stamp, Problems]] = field(default_factory=dict)
    worked: dict[str, dict[int, tuple[Campaign, object]]] = field(default_factory=dict)
    stamps: dict[Path, FileStamp] = field(default_factory=dict)
    listing: tuple[Path, FileStamp, tuple[Path, ...]] | None = None
    """A config directory, its stamp and its config files, as last listed."""

    def __repr__(self) -> str:
        """Sizes only: the campaigns are kept with their decrypted data."""
        return (
            f"LoadCache(files={len(self.sources)}, campaigns={len(self.campaigns)}, "
            f"leads_headers={len(self.columns)}, suppression_lists={len(self.lists)})"
        )

    def source(self, path: Path, raw: bytes, read: Callable[[bytes], Source]) -> Source:
        """Return the file as read before when ``raw`` is the same, else ``read(raw)``."""
        kept = self.sources.get(path)
        if kept is None or kept.raw != raw:
            kept = self.sources[path] = read(raw)
        return kept

    def unchanged(self, path: Path, stamp: FileStamp) -> Source | None:
        """The file as read before, without reading it: its stamp is the one kept."""
        kept = self.sources.get(path)
        return kept if kept is not None and self.stamps.get(path) == stamp else None

    def stamp(self, path: Path, stamp: FileStamp | None) -> None:
        """Keep the stamp ``path`` had before it was read; ``None`` keeps none."""
        if stamp is None:
            self.stamps.pop(path, None)
        else:
            self.stamps[path] = stamp

    def leads_columns(
        self, path: Path, stamp: Stamp, read: Callable[[], tuple[str, ...]]
    ) -> tuple[str, ...]:
        """Return a leads header as read before when ``stamp`` is the same, else ``read()``."""
        kept = self.columns.get(path)
        if kept is None or kept[0] != stamp:
            kept = self.columns[path] = (stamp, read())
        return kept[1]

    def list_problems(self, path: Path, stamp: Stamp, read: Callable[[], Problems]) -> Problems:
        """Return a suppression list's problems as found before when ``stamp`` is the same."""
        kept = self.lists.get(path)
        if kept is None or kept[0] != stamp:
            kept = self.lists[path] = (stamp, read())
        return kept[1]


def per_campaign(
    cache: LoadCache | None,
    campaigns: Mapping[str, Campaign],
    work: Callable[[str, Campaign], T],
    *,
    kind: str,
) -> list[T]:
    """``work`` for each campaign; with a cache, only for campaigns not seen before.

    A campaign object stays the same while its file does (see :func:`validate_config`),
    so what was worked out of it holds while it is kept. ``kind`` names the work (the
    notes on logins, the secrets in clear text): each kind is kept apart.
    """
    if cache is None:
        return [work(campaign_id, campaign) for campaign_id, campaign in campaigns.items()]
    kept = cache.worked.get(kind, {})
    now: dict[int, tuple[Campaign, object]] = {}
    results = []
    for campaign_id, campaign in campaigns.items():
        found = kept.get(id(campaign))
        if found is None or found[0] is not campaign:
            found = (campaign, work(campaign_id, campaign))
        now[id(campaign)] = found
        results.append(cast(T, found[1]))
    cache.worked[kind] = now
    return results


def validate_config(data: dict[str, object], cache: LoadCache | None) -> Config:
    """Validate the merged tree; with a cache, only the campaigns not seen unchanged.

    The shared mailboxes are validated first (:mod:`mailopsd.config.mailboxes`), so that
    the campaigns that name them get them; a campaign is kept while its tree and every
    mailbox it names are. The other top-level keys (``http``, ``api_keys``) are small and
    validated every time, as are the rules that hold between them and the campaigns.

    Args:
        data: The merged tree of every config file.
        cache: What the previous loads kept, updated here on success.

    Returns:
        The validated configuration.

    Raises:
        ValidationError: Something is invalid (always from validating the whole tree,
            so that every error is reported with its full path).
    """
    shared = Shared.of(data, cache.mailboxes if cache is not None else {})
    context = shared.context
    tree = shared.into(data)
    campaigns = data.get("campaigns")
    if cache is None or not isinstance(campaigns, dict):
        return Config.model_validate(tree, context=context)
    kept: dict[int, tuple[object, Campaign]] = {}
    valid: dict[str, Campaign] = {}
    try:
        for campaign_id, body in campaigns.items():
            known = cache.campaigns.get(id(body))
            if known is None or known[0] is not body or not _names_same(known[1], shared):
                known = (body, Campaign.model_validate(body, context=context))
            kept[id(body)] = known
            valid[campaign_id] = known[1]
        config = Config.model_validate({**tree, "campaigns": valid}, context=context)
    except ValidationError:
        return Config.model_validate(tree, context=context)
    cache.campaigns = kept
    cache.mailboxes = shared.kept(data)
    return config


def _names_same(campaign: Campaign, shared: Shared) -> bool:
    """Tell whether each shared mailbox a kept campaign holds is the one validated now."""
    credentials = campaign.smtp_credentials
    return all(
        shared.valid.get(mailbox_id) is credentials[credential_id]
        for credential_id, mailbox_id in campaign.mailboxes_named
    )
