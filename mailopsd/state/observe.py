"""The two sides of a reconcile, built from files: desired and observed state.

The desired state comes from a loaded config; the observed state from the ledger and the
state file.

Credentials are compared by fingerprint: their fields with every secret replaced by an
HMAC under a random key kept in the state directory (``fingerprint.key``, 0600), so a
changed password is noticed while no password is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from collections.abc import MutableMapping
from dataclasses import replace
from pathlib import Path

from mailopsd.config.leads import Progress, file_digest, read_leads
from mailopsd.config.loader import LoadedConfig
from mailopsd.config.models import SECRET_FIELDS, Credential
from mailopsd.errors import StateError
from mailopsd.reconcile import Desired, LeadsFile, Observed, ObservedCredential
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import StateFile

__all__ = [
    "DigestCache",
    "build_desired",
    "config_revision",
    "credential_key",
    "fingerprint_key",
    "observe",
    "with_lead_hashes",
]

FINGERPRINT_KEY_FILE = "fingerprint.key"
DigestCache = MutableMapping[Path, tuple[int, int, str]]


def credential_key(campaign_id: str, credential_id: str) -> str:
    """The key of a credential in the state file: ``campaign/credential``."""
    return f"{campaign_id}/{credential_id}"


def fingerprint_key(state_dir: Path, *, create: bool = True) -> bytes:
    """Return the HMAC key for secret fingerprints, creating it (0600) on first use.

    Args:
        state_dir: The state directory.
        create: Make the key if missing; otherwise use a throwaway one (a read-only
            ``plan`` on a fresh state, where every credential is new anyway).

    Raises:
        StateError: The key file cannot be read or created.
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
        raise StateError(f"cannot use {path}: {err.strerror or err}") from err
    return key


def _fingerprint(credential: Credential, key: bytes) -> dict[str, object]:
    snapshot = credential.model_dump(mode="json", exclude={"reenabled_at"})
    for name in SECRET_FIELDS:
        secret = getattr(credential, name)
        if secret is not None:
            digest = hmac.new(key, secret.get_secret_value().encode(), hashlib.sha256)
            snapshot[name] = "hmac:" + digest.hexdigest()
    return snapshot


def _leads_digest(path: Path, cache: DigestCache) -> str:
    stat = path.stat()
    cached = cache.get(path)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    digest = file_digest(path)
    cache[path] = (stat.st_mtime_ns, stat.st_size, digest)
    return digest


def _campaign_snapshot(loaded: LoadedConfig, campaign_id: str) -> dict[str, object]:
    campaign = loaded.config.campaigns[campaign_id]
    snapshot = campaign.model_dump(mode="json", exclude={"smtp_credentials"})
    bodies = [
        loaded.bodies.get((campaign_id, index), "") for index in range(len(campaign.sequence))
    ]
    snapshot["templates"] = hashlib.sha256("\0".join(bodies).encode()).hexdigest()
    snapshot["leads_path"] = str(loaded.leads_path(campaign_id).resolve())
    return snapshot


def build_desired(
    loaded: LoadedConfig,
    *,
    key: bytes,
    revision: str,
    observed: Observed,
    cache: DigestCache,
    progress: Progress | None = None,
) -> Desired:
    """Build the desired state, reading leads rows only where the file changed.

    Raises:
        StateError: A leads file cannot be read.
    """
    campaigns = {cid: _campaign_snapshot(loaded, cid) for cid in loaded.config.campaigns}
    credentials = {}
    reenabled = {}
    leads: dict[str, LeadsFile] = {}
    for campaign_id, campaign in loaded.config.campaigns.items():
        for credential_id, credential in campaign.smtp_credentials.items():
            credentials[campaign_id, credential_id] = _fingerprint(credential, key)
            reenabled[campaign_id, credential_id] = credential.reenabled_at
        path = loaded.leads_path(campaign_id)
        try:
            digest = _leads_digest(path, cache)
            changed = observed.leads_digests.get(campaign_id) != digest
            read = read_leads(path, campaign.leads, progress=progress) if changed else None
        except (OSError, UnicodeDecodeError) as err:
            raise StateError(f"cannot read leads file {path}: {err}") from err
        leads[campaign_id] = LeadsFile(
            path=str(campaign.leads),
            digest=digest,
            rows=read.rows if read else None,
            problems=tuple(read.problems) if read else (),
        )
    return Desired(
        revision=revision,
        content_hash=loaded.revision,
        campaigns=campaigns,
        credentials=credentials,
        reenabled_at=reenabled,
        leads=leads,
        secret_fields=SECRET_FIELDS,
    )


def observe(ledger: Ledger | None, state: StateFile) -> Observed:
    """Read the observed state (without lead digests: see :func:`with_lead_hashes`).

    Without a ledger (none created yet) only the state file is observed.
    """
    states: dict[tuple[str, str], ObservedCredential] = {}
    for key, entry in state.credentials.items():
        campaign_id, _, credential_id = key.partition("/")
        states[campaign_id, credential_id] = ObservedCredential(
            entry.disabled_at, entry.reenabled_at
        )
    if ledger is None:
        return Observed(credential_states=states, content_hash=state.daemon.applied_content_hash)
    return Observed(
        campaigns=ledger.active_campaigns(),
        credentials=ledger.active_credentials(),
        leads_digests=ledger.leads_digests(),
        credential_states=states,
        content_hash=state.daemon.applied_content_hash,
    )


def with_lead_hashes(observed: Observed, ledger: Ledger | None, desired: Desired) -> Observed:
    """Add the ledger's lead digests for the campaigns whose leads file was read."""
    if ledger is None:
        return observed
    changed = [cid for cid, leads in desired.leads.items() if leads.rows is not None]
    return replace(observed, lead_hashes={cid: ledger.lead_hashes(cid) for cid in changed})


def config_revision(files: tuple[Path, ...], content_hash: str) -> str:
    """The git commit of the config when it is a clean git work tree, else its content hash."""
    directory = files[0].parent if files else Path()
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "-C", str(directory), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "-C", str(directory), "status", "--porcelain", "--", "."],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return f"sha256:{content_hash[:16]}"
    if head.returncode == 0 and dirty.returncode == 0 and not dirty.stdout.strip():
        return f"git:{head.stdout.strip()[:12]}"
    return f"sha256:{content_hash[:16]}"
