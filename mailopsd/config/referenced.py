"""The files a campaign names, checked when the config is loaded.

A campaign's leads file must have a usable header (all of the file UTF-8), its body
templates must read and render and use only the leads' columns, and each CA file its
credentials name must be a regular file of bounded size. Each file is read through
:mod:`mailopsd.config.confined`: inside the config tree, a regular file, bounded. A
problem is an issue at the field that names the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailopsd.config import confined, leads, mailboxes, suggest, templates
from mailopsd.config.cache import LoadCache, per_campaign
from mailopsd.config.models import Campaign, Config, Step, Variant
from mailopsd.config.origins import Loc, Merge, Source
from mailopsd.errors import ConfigIssue

__all__ = ["CampaignFiles", "Checked", "FilesRead", "check_ca_files", "check_campaigns"]


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
class FilesRead:
    """The files read by one load, by path, each read once.

    Campaigns often share a leads file or a template: a thousand campaigns read one
    leads header a thousand times before. Each holds what reading gave: the content,
    or the error to report (at each campaign that names the file).
    """

    columns: dict[Path, tuple[str, ...] | Exception] = field(default_factory=dict)
    bodies: dict[Path, tuple[bytes, str] | Exception] = field(default_factory=dict)


@dataclass
class CampaignFiles:
    """Checks the files one campaign names: its leads header, and its templates against it."""

    campaign_id: str
    campaign: Campaign
    source: Source
    root: Path
    read: FilesRead = field(default_factory=FilesRead)
    issues: list[ConfigIssue] = field(default_factory=list)
    bodies: dict[tuple[str, int, str], str] = field(default_factory=dict)
    """Each step's and variant's body text."""
    opened: list[tuple[Path, bytes]] = field(default_factory=list)
    """Each template read, with its bytes, in the order read (the revision hashes them)."""
    unread: bool = False
    """A template could not be read."""

    def _issue(self, loc: Loc, message: str) -> None:
        self.issues.append(self.source.issue(["campaigns", self.campaign_id, *loc], message))

    @property
    def leads_path(self) -> Path:
        """The campaign's leads file."""
        return self.source.path.parent / self.campaign.leads

    def columns(self, cache: LoadCache | None) -> tuple[str, ...] | None:
        """Return the leads file's columns, or ``None`` after noting why they cannot be read."""
        path = self.leads_path
        try:
            found = self.columns_at(path, cache)
            if isinstance(found, Exception):
                raise found
            return found
        except FileNotFoundError:
            self._issue(["leads"], f"leads file {path} not found")
            return None
        except (ValueError, confined.RefusedFileError) as err:
            self._issue(["leads"], str(err))
            return None

    def columns_at(self, path: Path, cache: LoadCache | None) -> tuple[str, ...] | Exception:
        """The columns of the leads file at ``path``, or why they cannot be read."""
        found = self.read.columns.get(path)
        if found is None:
            try:
                found = self.read.columns[path] = self._read_columns(path, cache)
            except (FileNotFoundError, ValueError, confined.RefusedFileError) as err:
                found = self.read.columns[path] = err
        return found

    def _read_columns(self, path: Path, cache: LoadCache | None) -> tuple[str, ...]:
        if cache is None:
            return _read_leads_columns(path, self.root)
        try:  # checked every time: a symlink may now lead elsewhere with the same stamp
            stat = confined.confine(path, self.root, what="leads file").stat()
        except OSError:  # reading says why, in the words of a load without a cache
            return _read_leads_columns(path, self.root)
        return cache.leads_columns(
            path,
            (stat.st_mtime_ns, stat.st_size),
            lambda: _read_leads_columns(path, self.root),
        )

    def read_body(self, path: Path) -> tuple[bytes, str]:
        """The bytes and text of a template file, read once per load.

        Raises:
            OSError: It cannot be read (``RefusedFileError``: it must not be).
            UnicodeDecodeError: It is not UTF-8.
        """
        found = self.read.bodies.get(path)
        if found is None:
            try:
                raw = confined.read_bytes(
                    path, self.root, what="template file", limit_bytes=confined.BODY_MAX_BYTES
                )
                found = self.read.bodies[path] = (raw, raw.decode("utf-8"))
            except (OSError, UnicodeDecodeError) as err:  # RefusedFileError is an OSError
                found = self.read.bodies[path] = err
        if isinstance(found, Exception):
            raise found
        return found

    def _body(self, where: Step | Variant, loc: Loc) -> str | None:
        """The body of a step or variant: as written, or read from its ``body_file``."""
        if where.body is not None:
            return where.body
        if where.body_file is None:
            return None
        path = self.source.path.parent / str(where.body_file)
        try:
            raw, text = self.read_body(path)
        except confined.RefusedFileError as err:
            self.unread = True
            self._issue([*loc, "body_file"], str(err))
            return None
        except (OSError, UnicodeDecodeError) as err:
            self.unread = True
            reason = "not found" if isinstance(err, FileNotFoundError) else f"unreadable: {err}"
            self._issue([*loc, "body_file"], f"template file {path} {reason}")
            return None
        self.opened.append((path, raw))
        return text

    def checked(self, cache: LoadCache | None) -> Checked:
        """Check the leads header, the templates against it and the time zone column."""
        found = self.columns(cache)
        self.check(found)
        self.check_zone_column(found)
        return Checked(
            self.root,
            self.leads_path,
            found,
            tuple(self.opened),
            tuple(self.issues),
            tuple(self.bodies.items()),
            complete=found is not None and not self.unread,
        )

    def check_zone_column(self, columns: tuple[str, ...] | None) -> None:
        """Check that the column of the leads' time zones (``send_window.timezone``) exists."""
        window = self.campaign.send_window
        column = None if window is None else window.zone_column
        if column is None or columns is None or column in columns:
            return
        hint = suggest.did_you_mean(column, columns)
        self._issue(
            ["send_window", "timezone"],
            f"the leads' time zones are read from column {column}, but {self.campaign.leads} "
            f"has no {column} column{f'; {hint}' if hint else ''} (columns: {', '.join(columns)})",
        )

    def check(self, columns: tuple[str, ...] | None) -> None:
        """Read each step's and variant's body and check the templates (against ``columns``)."""
        for index, step in enumerate(self.campaign.sequence):
            versions: list[tuple[str, Step | Variant, Loc]] = [("", step, ["sequence", index])]
            versions += [
                (name, variant, ["sequence", index, "variants", name])
                for name, variant in (step.variants or {}).items()
            ]
            for name, version, loc in versions:
                body = self._body(version, loc)
                if body is not None:
                    self.bodies[self.campaign_id, index, name] = body
                field = "body" if version.body is not None else "body_file"
                self._check_template(index, [*loc, "subject"], version.subject, columns)
                self._check_template(index, [*loc, field], body, columns)

    def _check_template(
        self, index: int, loc: Loc, source: str | None, columns: tuple[str, ...] | None
    ) -> None:
        if source is None:
            return
        try:
            variables = templates.template_variables(source)
            templates.check_render(source, variables)
        except templates.TemplateError as err:
            self._issue(loc, str(err))
            return
        if columns is None:
            return
        for variable in sorted(variables - set(columns)):
            hint = suggest.did_you_mean(variable, columns)
            self._issue(
                loc,
                f"step {index + 1} uses {{{{ {variable} }}}} but {self.campaign.leads} has "
                f"no {variable} column{f'; {hint}' if hint else ''} "
                f"(columns: {', '.join(columns)})",
            )


@dataclass(frozen=True)
class Checked:
    """What checking one campaign's files gave, and what it read to give it.

    A complete one holds while the campaign object is the same (its file and the
    mailboxes it names are unchanged, see ``LoadCache``), the root is, its leads file has
    the same columns and each template it read has the same bytes.
    """

    root: Path
    leads: Path
    columns: tuple[str, ...] | None
    opened: tuple[tuple[Path, bytes], ...]
    issues: tuple[ConfigIssue, ...]
    bodies: tuple[tuple[tuple[str, int, str], str], ...]
    complete: bool
    """The leads header and every template were read: it may be kept for the next load."""

    def holds(self, checker: CampaignFiles, cache: LoadCache | None) -> bool:
        """Tell whether the files read are unchanged (read again, once per load, to see)."""
        if checker.root != self.root or checker.columns_at(self.leads, cache) != self.columns:
            return False
        for path, raw in self.opened:
            try:
                if checker.read_body(path)[0] != raw:
                    return False
            except (OSError, UnicodeDecodeError):
                return False
        return True


def check_campaigns(
    config: Config,
    merge: Merge,
    root: Path,
    cache: LoadCache | None,
    bodies: dict[tuple[str, int, str], str],
    body_files: list[bytes],
) -> dict[str, tuple[str, ...]]:
    """Check the files each campaign names; return each campaign's leads columns.

    Every file is read (once per load, however many campaigns name it); with a cache, a
    campaign whose files read the same as at the last load is not checked again: what
    was found then is reported again (1,000 campaigns: about 20 ms a reload before, 5 ms).

    Args:
        config: The validated config.
        merge: The merged tree, for the file of each campaign.
        root: The config tree.
        cache: Kept between loads, or ``None``.
        bodies: Filled with each step's and variant's body text.
        body_files: Filled with each template's bytes, in order (for the revision).
    """
    columns: dict[str, tuple[str, ...]] = {}
    read = FilesRead()
    kept = cache.worked.get("files", {}) if cache is not None else {}
    now: dict[int, tuple[Campaign, object]] = {}
    for campaign_id, campaign in config.campaigns.items():
        source = merge.source_for(["campaigns", campaign_id])
        checker = CampaignFiles(campaign_id, campaign, source, root, read)
        known = kept.get(id(campaign))
        checked = known[1] if known is not None and known[0] is campaign else None
        if not isinstance(checked, Checked) or not checked.holds(checker, cache):
            checked = checker.checked(cache)
        merge.issues.extend(checked.issues)
        bodies.update(checked.bodies)
        body_files.extend(raw for _, raw in checked.opened)
        if checked.columns is not None:
            columns[campaign_id] = checked.columns
        if checked.complete:
            now[id(campaign)] = (campaign, checked)
    if cache is not None:
        cache.worked["files"] = now
    return columns


def check_ca_files(
    config: Config,
    merge: Merge,
    root: Path,
    cache: LoadCache | None,
) -> None:
    """Check that each CA file a credential names is a regular file of bounded size.

    A relative path is read from the directory of the file that declares the credential
    (a campaign's, or a shared mailbox's) and must stay inside the tree, as every other;
    an absolute one may name a system bundle (``/etc/ssl/certs/ca-certificates.crt``): a
    CA file is only ever parsed by OpenSSL as certificates, never sent, logged or shown.
    Every file is looked at each load; with a cache, which credentials name one is kept
    per unchanged campaign.

    Args:
        config: The validated config.
        merge: The merged tree, for the file of each place; problems go to its issues,
            at the field that names the file.
        root: The config tree.
        cache: Kept between loads, or ``None``.
    """
    named = [
        _ca_files(mailboxes.mailbox_places(config)),
        *per_campaign(
            cache,
            config.campaigns,
            lambda cid, campaign: _ca_files(mailboxes.campaign_places(cid, campaign)),
            kind="ca_files",
        ),
    ]
    for loc, name, given in (found for part in named for found in part):
        source = merge.source_for(loc)
        path = source.path.parent / given
        within = None if Path(given).is_absolute() else root
        try:
            confined.check_file(path, within, what="CA file", limit_bytes=confined.CA_MAX_BYTES)
        except FileNotFoundError:
            message = f"CA file {path} not found"
        except confined.RefusedFileError as err:
            message = str(err)
        except OSError as err:
            message = f"cannot read CA file {path}: {err.strerror}"
        else:
            continue
        merge.issues.append(source.issue([*loc, name], message))


def _ca_files(places: Iterable[mailboxes.Place]) -> tuple[tuple[tuple[str, ...], str, str], ...]:
    """Each CA file named by these credentials: where, in which field, the path given."""
    return tuple(
        (loc, name, given)
        for loc, credential in places
        for name in ("tls_ca_file", "imap_tls_ca_file")
        if (given := getattr(credential, name)) is not None
    )
