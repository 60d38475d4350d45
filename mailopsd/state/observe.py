"""The two sides of a reconcile, built from files: desired and observed state.

The desired state comes from a loaded config; the observed state from the ledger and the
state file. Leads files are compared apart (:func:`leads_diffs`): a changed file is
streamed into the ledger's temporary tables and compared there in SQL, so neither its
rows nor the ledger's are ever all in memory.

Credentials are compared by fingerprint: their fields with every secret replaced by an
HMAC under a random key kept in the state directory (``fingerprint.key``, 0600), so a
changed password is noticed while no password is stored. A shared ledger keeps its own
key, which all its daemons use (``Ledger.fingerprint_key``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import cast

from mailopsd.config import confined
from mailopsd.config.confined import RefusedFileError, confine
from mailopsd.config.leads import file_digest, iter_leads
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import CREDENTIAL_SECRET_FIELDS, SECRET_FIELDS, Campaign, Credential
from mailopsd.config.suppression import ListEntry, ListProblem, iter_list, lists_digest
from mailopsd.errors import StateError
from mailopsd.progress import Progress
from mailopsd.reconcile import (
    Desired,
    LeadsDiff,
    LeadsFile,
    ListsDiff,
    Observed,
    ObservedCredential,
    Snapshot,
    SuppressionListFiles,
)
from mailopsd.refs import CredentialRef, parse_credential_key
from mailopsd.state.errors import storage_error
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import StateFile

__all__ = [
    "DigestCache",
    "SnapshotCache",
    "build_desired",
    "config_revision",
    "fingerprint_key",
    "leads_diffs",
    "lists_diffs",
    "observe",
]

FINGERPRINT_KEY_FILE = "fingerprint.key"
DigestCache = MutableMapping[Path, tuple[int, int, str]]


def fingerprint_key(state_dir: Path, *, create: bool = True) -> bytes:
    """Return the HMAC key for secret fingerprints, creating it (0600) on first use.

    Args:
        state_dir: The state directory.
        create: Make the key if missing; otherwise use a throwaway one (a read-only
            ``plan`` on a fresh state, where every credential is new anyway).

    Raises:
        StorageError: The key file cannot be read or created (the subclass says why).
    """
    path = state_dir / FINGERPRINT_KEY_FILE
    try:
        if path.exists():
            return path.read_bytes()
        if not create:
            return os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        key = os.urandom(32)
        with os.fdopen(fd, "wb") as stream:
            stream.write(key)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as err:
        raise storage_error(err, f"cannot use {path}: {err.strerror or err}") from err
    return key


def _fingerprint(credential: Credential, key: bytes) -> dict[str, object]:
    snapshot = credential.model_dump(mode="json", exclude={"reenabled_at"})
    if credential.shared_as is not None:  # one mailbox of several campaigns
        snapshot["mailbox"] = credential.shared_as
    for name in CREDENTIAL_SECRET_FIELDS:
        secret = getattr(credential, name)
        if secret is not None:
            digest = hmac.new(key, secret.get_secret_value().encode(), hashlib.sha256)
            snapshot[name] = "hmac:" + digest.hexdigest()
    return snapshot


def _leads_digest(path: Path, cache: DigestCache, root: Path) -> str:
    cached = cache.get(path)
    if cached is not None:
        # A file seen before is first looked at as it is (a thousand campaigns' files at
        # each reload); it is confined again, and read, only when it changed.
        with contextlib.suppress(OSError):
            seen = os.stat(path)
            if cached[:2] == (seen.st_mtime_ns, seen.st_size):
                return cached[2]
    stat = confine(path, root, what="leads file").stat()
    digest = file_digest(path, root=root)
    cache[path] = (stat.st_mtime_ns, stat.st_size, digest)
    return digest


def _list_digest(path: Path, cache: DigestCache, root: Path) -> str:
    stat = confine(path, root, what="suppression list").stat()
    cached = cache.get(path)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    raw = confined.read_bytes(
        path, root, what="suppression list", limit_bytes=confined.SUPPRESS_MAX_BYTES
    )
    digest = hashlib.sha256(raw).hexdigest()
    cache[path] = (stat.st_mtime_ns, stat.st_size, digest)
    return digest


def _suppression_lists(loaded: LoadedConfig, cache: DigestCache) -> dict[str, SuppressionListFiles]:
    """Each account's list files and their digest (raises ``StateError`` if one is unread)."""
    lists: dict[str, SuppressionListFiles] = {}
    for account, names in loaded.config.suppress.items():
        paths = loaded.suppression_lists.paths(account)
        try:
            digests = {
                name: _list_digest(path, cache, loaded.root)
                for name, path in zip(names, paths, strict=True)
            }
        except RefusedFileError as err:
            raise StateError(str(err)) from err
        except OSError as err:
            raise StateError(f"cannot read suppression list: {err}") from err
        lists[account] = SuppressionListFiles(names, lists_digest(digests))
    return lists


class SnapshotCache:
    """Snapshots of the config objects of the last plan, by object.

    A reload's unchanged campaigns are the same objects (see ``LoadCache``), so their
    snapshots and credential fingerprints are not made again.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._kept: dict[int, tuple[object, dict[str, object]]] = {}
        self._next: dict[int, tuple[object, dict[str, object]]] = {}

    def get(
        self, item: object, make: Callable[[], dict[str, object]], *, copy: bool = True
    ) -> dict[str, object]:
        """The snapshot of ``item``: kept from the last plan, else made now.

        A copy, to add to; with ``copy=False`` the kept snapshot itself, which nothing
        may change (the plan knows it applied unchanged by that identity).
        """
        kept = self._kept.get(id(item))
        if kept is None or kept[0] is not item:
            kept = (item, make())
        self._next[id(item)] = kept
        return dict(kept[1]) if copy else kept[1]

    def turn(self) -> None:
        """Keep what this plan used; forget the rest."""
        self._kept, self._next = self._next, {}


def _campaign_snapshot(
    loaded: LoadedConfig, campaign_id: str, snapshots: SnapshotCache
) -> dict[str, object]:
    """A campaign's snapshot: kept with the campaign while its templates' texts stay."""
    campaign = loaded.config.campaigns[campaign_id]
    bodies = [
        loaded.bodies.get((campaign_id, index, ""), "") for index in range(len(campaign.sequence))
    ]
    bodies += [  # a variant's own body file changes the campaign too
        f"{index}/{name}/{loaded.bodies.get((campaign_id, index, name), '')}"
        for index, step in enumerate(campaign.sequence)
        for name in step.variants or ()
    ]
    templates = hashlib.sha256("\0".join(bodies).encode()).hexdigest()

    def make() -> dict[str, object]:
        made = campaign.model_dump(mode="json", exclude={"smtp_credentials"})
        # Kept with the campaign: the same campaign object is the same file in the same
        # place (see LoadCache). A leads file moved behind a symbolic link shows when the
        # campaign changes; its rows, by its digest, at once.
        made["leads_path"] = str(loaded.leads_path(campaign_id).resolve())
        made["templates"] = templates
        return made

    snapshot = snapshots.get(campaign, make, copy=False)
    if snapshot["templates"] != templates:  # a body file changed, not the campaign
        return {**snapshot, "templates": templates}
    return snapshot


def _credentials_part(
    loaded: LoadedConfig,
    campaign_id: str,
    campaign: Campaign,
    key: bytes,
    snapshots: SnapshotCache,
) -> dict[str, object]:
    """A campaign's credentials' fingerprints and ``reenabled_at``, and its leads file."""
    credentials: dict[CredentialRef, dict[str, object]] = {}
    reenabled: dict[CredentialRef, datetime | None] = {}
    for credential_id, credential in campaign.smtp_credentials.items():
        credentials[campaign_id, credential_id] = snapshots.get(
            credential, functools.partial(_fingerprint, credential, key), copy=False
        )
        reenabled[campaign_id, credential_id] = credential.reenabled_at
    return {
        "campaign_id": campaign_id,
        "credentials": credentials,
        "reenabled_at": reenabled,
        "leads_path": loaded.leads_path(campaign_id),
    }


def build_desired(
    loaded: LoadedConfig,
    *,
    key: bytes,
    revision: str,
    cache: DigestCache,
    snapshots: SnapshotCache | None = None,
) -> Desired:
    """Build the desired state, with only the digest of each leads file.

    The rows of changed files are compared apart, in the ledger: see :func:`leads_diffs`.

    Raises:
        StateError: A leads file cannot be read.
    """
    snapshots = snapshots or SnapshotCache()
    campaigns = {cid: _campaign_snapshot(loaded, cid, snapshots) for cid in loaded.config.campaigns}
    credentials: dict[CredentialRef, Snapshot] = {}
    parts: dict[str, Mapping[CredentialRef, Snapshot]] = {}
    reenabled: dict[CredentialRef, datetime | None] = {}
    leads: dict[str, LeadsFile] = {}
    digests: dict[Path, str] = {}  # many campaigns, one leads file: looked at once a plan
    for campaign_id, campaign in loaded.config.campaigns.items():
        # A campaign's credentials as a whole, kept with the campaign: a reload of one
        # file among thousands walks the others' ten thousand credentials no more.
        part = snapshots.get(
            campaign.smtp_credentials,
            functools.partial(_credentials_part, loaded, campaign_id, campaign, key, snapshots),
            copy=False,
        )
        if part["campaign_id"] != campaign_id:  # the same object under another id: rare
            part = _credentials_part(loaded, campaign_id, campaign, key, snapshots)
        own = cast(Mapping[CredentialRef, Snapshot], part["credentials"])
        credentials.update(own)
        parts[campaign_id] = own
        reenabled.update(part["reenabled_at"])  # type: ignore[call-overload]
        path = part["leads_path"]
        assert isinstance(path, Path)  # noqa: S101 - as _credentials_part makes it
        digest = digests.get(path) or ""
        if not digest:
            try:
                digest = digests[path] = _leads_digest(path, cache, loaded.root)
            except RefusedFileError as err:
                raise StateError(str(err)) from err
            except OSError as err:
                raise StateError(f"cannot read leads file {path}: {err}") from err
        column = campaign.send_window.zone_column if campaign.send_window else None
        if column is not None:  # the leads' zones come from the file: a new column reads it again
            digest = f"{digest}+zone:{column}"
        leads[campaign_id] = LeadsFile(path=str(campaign.leads), digest=digest)
    snapshots.turn()
    return Desired(
        revision=revision,
        content_hash=loaded.revision,
        campaigns=campaigns,
        credentials=credentials,
        reenabled_at=reenabled,
        leads=leads,
        secret_fields=SECRET_FIELDS,
        suppression_lists=_suppression_lists(loaded, cache),
        credential_parts=parts,
    )


def observe(ledger: Ledger | None, state: StateFile) -> Observed:
    """Read the observed state (leads files: only their digests).

    Without a ledger (none created yet) only the state file is observed.
    """
    states: dict[CredentialRef, ObservedCredential] = {}
    for key, entry in state.credentials.items():
        states[parse_credential_key(key)] = ObservedCredential(
            entry.disabled_at, entry.reenabled_at
        )
    if ledger is None:
        return Observed(credential_states=states, content_hash=state.daemon.applied_content_hash)
    return Observed(
        campaigns=ledger.campaigns.active(),
        credentials=ledger.campaigns.active_credentials(),
        leads_digests=ledger.campaigns.leads_digests(),
        credential_states=states,
        content_hash=state.daemon.applied_content_hash,
        suppression_digests=ledger.suppression_lists.digests(),
    )


def leads_diffs(
    ledger: Ledger,
    loaded: LoadedConfig,
    desired: Desired,
    observed: Observed,
    *,
    progress: Progress | None = None,
) -> dict[str, LeadsDiff]:
    """Compare every leads file whose digest differs from the ledger's with its campaign's leads.

    Each such file is read row by row into a stage of ``ledger`` and compared there; the
    differences' rows are read from the stage when iterated, and applying the plan's
    action (:meth:`LeadImports.apply_stage`) writes only the difference.

    Raises:
        StateError: A leads file cannot be read.
    """
    diffs: dict[str, LeadsDiff] = {}
    for campaign_id, leads in desired.leads.items():
        if observed.leads_digests.get(campaign_id) == leads.digest:
            continue
        campaign = loaded.config.campaigns[campaign_id]
        path = loaded.leads_path(campaign_id)
        try:
            stage = ledger.imports.stage(
                campaign_id,
                iter_leads(path, campaign.leads, progress=progress, root=loaded.root),
                name=campaign.leads,
                zone_column=campaign.send_window.zone_column if campaign.send_window else None,
            )
        except RefusedFileError as err:
            raise StateError(str(err)) from err
        except (OSError, UnicodeDecodeError) as err:
            raise StateError(f"cannot read leads file {path}: {err}") from err
        diffs[campaign_id] = ledger.imports.changes(stage)
    return diffs


def _entries(loaded: LoadedConfig, account: str) -> Iterator[ListEntry]:
    """Every entry of an account's lists; a list made invalid since the load stops it."""
    for path in loaded.suppression_lists.paths(account):
        for item in iter_list(path, root=loaded.root):
            if isinstance(item, ListProblem):
                raise StateError(
                    f"{path}:{item.line}:{item.column}: {item.message} (the list changed "
                    "after it was checked; the next reload checks it again)"
                )
            yield item


def lists_diffs(
    ledger: Ledger, loaded: LoadedConfig, desired: Desired, observed: Observed
) -> dict[str, ListsDiff]:
    """Compare each account's changed suppression lists with what the ledger lists.

    An account whose lists' digest differs from the ledger's is staged and compared in
    ``ledger``; one whose lists are gone from the config is compared with no entries.

    Raises:
        StateError: A list cannot be read, or is no longer valid.
    """
    diffs: dict[str, ListsDiff] = {}
    for account in observed.suppression_digests:
        if account not in desired.suppression_lists:
            diffs[account] = ledger.suppression_lists.stage(account, ())
    for account, lists in desired.suppression_lists.items():
        if observed.suppression_digests.get(account) == lists.digest:
            continue
        try:
            diffs[account] = ledger.suppression_lists.stage(account, _entries(loaded, account))
        except RefusedFileError as err:
            raise StateError(str(err)) from err
        except (OSError, ValueError) as err:
            raise StateError(f"cannot read a suppression list of account {account}: {err}") from err
    return diffs


def config_revision(files: tuple[Path, ...], content_hash: str) -> str:
    """The git commit of the config when it is a clean git work tree, else its content hash.

    Git is asked only when it could find a repository (a ``.git`` here or above), and
    both questions at once: each reload asks (outside git, 3 ms of a reload of 1,000
    files before, two commands one after the other).
    """
    directory = files[0].parent if files else Path()
    fallback = f"sha256:{content_hash[:16]}"
    if not _may_be_in_git(directory):
        return fallback
    asked: list[subprocess.Popen[str]] = []
    try:
        asked.append(_git(directory, "rev-parse", "HEAD"))
        asked.append(_git(directory, "status", "--porcelain", "--", "."))
        (commit, _), (changes, _) = (command.communicate(timeout=10) for command in asked)
    except (OSError, subprocess.SubprocessError):
        for command in asked:  # one that finished is left as it is
            command.kill()
            command.wait()
            if command.stdout is not None:
                command.stdout.close()
        return fallback
    head, dirty = asked
    if head.returncode == 0 and dirty.returncode == 0 and not changes.strip():
        return f"git:{commit.strip()[:12]}"
    return fallback


def _git(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        ["git", "-C", str(directory), *args],  # noqa: S607 - git from PATH
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _may_be_in_git(directory: Path) -> bool:
    """Tell whether git could find a repository for ``directory`` (by its own search)."""
    places = {directory.absolute(), directory.resolve()}  # git starts from the latter
    return any(
        os.path.lexists(folder / ".git") for place in places for folder in (place, *place.parents)
    )
