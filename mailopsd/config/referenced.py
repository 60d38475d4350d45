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

from mailopsd.config import confined, leads, suggest, templates
from mailopsd.config.cache import LoadCache
from mailopsd.config.models import Campaign, Credential, Step, Variant
from mailopsd.config.origins import Loc, Merge, Source
from mailopsd.errors import ConfigIssue

__all__ = ["CampaignFiles", "FilesRead", "check_ca_files"]


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
    """Checks the files one campaign names: its leads header, its templates against it, CA files."""

    campaign_id: str
    campaign: Campaign
    source: Source
    issues: list[ConfigIssue]
    bodies: dict[tuple[str, int, str], str]
    body_files: list[bytes]
    root: Path
    read: FilesRead = field(default_factory=FilesRead)

    def _issue(self, loc: Loc, message: str) -> None:
        self.issues.append(self.source.issue(["campaigns", self.campaign_id, *loc], message))

    def columns(self, cache: LoadCache | None) -> tuple[str, ...] | None:
        """Return the leads file's columns, or ``None`` after noting why they cannot be read."""
        path = self.source.path.parent / self.campaign.leads
        found = self.read.columns.get(path)
        if found is None:
            try:
                found = self.read.columns[path] = self._read_columns(path, cache)
            except (FileNotFoundError, ValueError, confined.RefusedFileError) as err:
                found = self.read.columns[path] = err
        try:
            if isinstance(found, Exception):
                raise found
            return found
        except FileNotFoundError:
            self._issue(["leads"], f"leads file {path} not found")
            return None
        except (ValueError, confined.RefusedFileError) as err:
            self._issue(["leads"], str(err))
            return None

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

    def _read_body(self, path: Path) -> tuple[bytes, str]:
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
            raw, text = self._read_body(path)
        except confined.RefusedFileError as err:
            self._issue([*loc, "body_file"], str(err))
            return None
        except (OSError, UnicodeDecodeError) as err:
            reason = "not found" if isinstance(err, FileNotFoundError) else f"unreadable: {err}"
            self._issue([*loc, "body_file"], f"template file {path} {reason}")
            return None
        self.body_files.append(raw)
        return text

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


def check_ca_files(
    places: Iterable[tuple[tuple[str, ...], Credential]],
    merge: Merge,
    root: Path,
    issues: list[ConfigIssue],
) -> None:
    """Check that each CA file a credential names is a regular file of bounded size.

    A relative path is read from the directory of the file that declares the credential
    (a campaign's, or a shared mailbox's) and must stay inside the tree, as every other;
    an absolute one may name a system bundle (``/etc/ssl/certs/ca-certificates.crt``): a
    CA file is only ever parsed by OpenSSL as certificates, never sent, logged or shown.

    Args:
        places: Each credential with where it is declared (``mailboxes.places``).
        merge: The merged tree, for the file of each place.
        root: The config tree.
        issues: Where a problem goes, at the field that names the file.
    """
    for loc, credential in places:
        for name in ("tls_ca_file", "imap_tls_ca_file"):
            given = getattr(credential, name)
            if given is None:
                continue
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
            issues.append(source.issue([*loc, name], message))
