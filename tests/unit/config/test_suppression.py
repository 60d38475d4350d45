"""Suppression lists and the domain fields of the config: read, checked, located."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailopsd.config.loader import LoadCache, load_config
from mailopsd.config.suppression import ListEntry, ListProblem, iter_list
from mailopsd.daemon.watcher import watched_files
from mailopsd.errors import ConfigError, ConfigIssue
from tests.configs import PLAINTEXT_OK, Writer, errors_of, loads

# BASE has 18 lines: what a test adds starts on line 19.
LISTS = "suppress:\n  default: [suppress/dnc.txt]\n"


def _errors(path: Path, cache: LoadCache) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, PLAINTEXT_OK, cache=cache)
    return list(caught.value.issues)


def _entries(path: Path) -> list[ListEntry | ListProblem]:
    return list(iter_list(path, root=path.parent.resolve()))


class TestLineLists:
    """One entry a line: an address, or a whole domain written @domain."""

    def test_entries_comments_and_blank_lines(self, tmp_path: Path) -> None:
        """Entries take the leads' normal form; comments and blank lines are skipped."""
        path = tmp_path / "dnc.txt"
        path.write_text(
            "\ufeff# people who asked\nAda@Example.COM\n\n  @Bücher.de   # the whole company\n"
            "bob@acme.example\t# tab, then a comment\n"
        )
        assert _entries(path) == [
            ListEntry("address", "ada@example.com", 2),
            ListEntry("domain", "xn--bcher-kva.de", 4),
            ListEntry("address", "bob@acme.example", 5),
        ]

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                "acme.example",
                'neither an address nor a domain (got "acme.example"): write an address such '
                "as ada@example.com, or a whole domain with its @, as in @acme.example",
            ),
            ("ada@", 'not an address (got "ada@"): there must be something after the @-sign'),
            ("@localhost", 'not a domain (got "@localhost"): the domain is not valid'),
            (
                "ada@example.com bob@example.com",
                'more than one entry on a line (got "ada@example.com bob@example.com"): write '
                "one address or @domain a line, and start a comment with #",
            ),
        ],
    )
    def test_malformed_line(self, tmp_path: Path, line: str, message: str) -> None:
        """A malformed line says what is wrong at its line and column."""
        path = tmp_path / "dnc.txt"
        path.write_text(f"ok@example.com\n  {line}\n")
        found = _entries(path)[1]
        assert isinstance(found, ListProblem)
        assert (found.line, found.column) == (2, 3)
        assert found.message.startswith(message)


class TestCsvLists:
    """A .csv list has an email column, a domain column, or both."""

    def test_columns(self, tmp_path: Path) -> None:
        """Each row fills one of email and domain (with or without its @); others skipped."""
        path = tmp_path / "export.csv"
        path.write_text(
            "name,email,domain\nAda,ada@example.com,\nAcme,,acme.example\n"
            'Bee,,"@Bee.example"\nNobody,,\n'
        )
        assert _entries(path) == [
            ListEntry("address", "ada@example.com", 2),
            ListEntry("domain", "acme.example", 3),
            ListEntry("domain", "bee.example", 4),
        ]

    @pytest.mark.parametrize(
        ("text", "where", "message"),
        [
            ("name\nAda\n", (1, 1), "has no email or domain column (columns: name)"),
            ("email,email\na@example.com,b@example.com\n", (1, 1), "repeats the column email"),
            (
                "email,domain\na@example.com,\nb@example.com,example.com\n",
                (3, 1),
                "both email and domain are filled: give one a row (two rows for both)",
            ),
            ("email\nok@example.com\n" + "x" * 200_000 + "\n", (3, 1), "cannot be read as CSV"),
        ],
        ids=["no-column", "repeated-column", "both-filled", "over-the-csv-field-limit"],
    )
    def test_malformed(
        self, tmp_path: Path, text: str, where: tuple[int, int], message: str
    ) -> None:
        """A bad header or row says what is wrong at its line."""
        path = tmp_path / "export.csv"
        path.write_text(text)
        problems = [item for item in _entries(path) if isinstance(item, ListProblem)]
        assert [(p.line, p.column) for p in problems] == [where]
        assert problems[0].message.startswith(message)


class TestLoading:
    """The config's suppress: and domain fields, checked when it is loaded."""

    def test_valid(self, write_config: Writer) -> None:
        """Lists, free_mail_domains and the campaign's domain fields load."""
        Path("suppress").mkdir()
        Path("suppress/dnc.txt").write_text("ada@example.com\n@acme.example\n")
        Path("suppress/x.csv").write_text("domain\nbee.example\n")
        path = write_config(
            replace=(
                "    leads: leads.csv\n",
                "    leads: leads.csv\n"
                "    stop_on_domain_reply: true\n"
                "    max_per_recipient_domain_per_day: 2\n",
            ),
            add="suppress:\n  default: [suppress/dnc.txt, suppress/x.csv]\n"
            "free_mail_domains: [Mail.Example.org, isp.*]\n",
        )
        loaded = loads(path)
        campaign = loaded.config.campaigns["acme-q4"]
        assert (campaign.stop_on_domain_reply, campaign.max_per_recipient_domain_per_day) == (
            True,
            2,
        )
        assert loaded.config.free_mail_domains == ("mail.example.org", "isp.*")
        assert loaded.suppression_lists.paths("default") == (
            Path("suppress/dnc.txt"),
            Path("suppress/x.csv"),
        )
        assert loaded.summary().endswith(", 2 suppression lists for 1 account")

    def test_the_daemon_watches_the_lists(self, write_config: Writer) -> None:
        """An edited list makes the running daemon reload, as an edited leads file does."""
        Path("suppress").mkdir()
        Path("suppress/dnc.txt").write_text("ada@example.com\n")
        watched = watched_files(loads(write_config(add=LISTS)))
        assert Path("suppress/dnc.txt").resolve() in watched

    def test_malformed_lines_point_into_the_list(self, write_config: Writer) -> None:
        """Each malformed line is an error at its file, line and column, with the field."""
        Path("suppress").mkdir()
        Path("suppress/dnc.txt").write_text("ada@example.com\nacme.example\n  bob@\n")
        assert errors_of(write_config(add=LISTS)) == [
            "suppress/dnc.txt:2:1: suppress.default.0: neither an address nor a domain (got "
            '"acme.example"): write an address such as ada@example.com, or a whole domain '
            "with its @, as in @acme.example",
            'suppress/dnc.txt:3:3: suppress.default.0: not an address (got "bob@"): there '
            "must be something after the @-sign",
        ]

    def test_many_malformed_lines_are_counted(self, write_config: Writer) -> None:
        """Past 20 malformed lines in a file, the rest are counted at the field."""
        Path("suppress").mkdir()
        Path("suppress/dnc.txt").write_text("nobody\n" * 25)
        errors = errors_of(write_config(add=LISTS))
        assert len(errors) == 21
        assert "c.yaml:20:13: suppress.default.0: 5 more malformed lines after line 20" in errors

    def test_missing_and_outside_files(self, write_config: Writer, tmp_path: Path) -> None:
        """A list must exist inside the config directory."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")
        (tmp_path / "secret.txt").write_text("ada@example.com\n")
        write_config(add="suppress:\n  default: [nothing.txt, ../secret.txt]\n", name="conf/c.yaml")
        errors = errors_of(Path("conf"))
        assert errors[0] == (
            "conf/c.yaml:20:13: suppress.default.0: suppression list conf/nothing.txt not found"
        )
        assert errors[1].startswith(
            "conf/c.yaml:20:26: suppress.default.1: suppression list conf/../secret.txt is "
            "outside the config directory"
        )

    def test_account_without_campaign(self, write_config: Writer) -> None:
        """A list for an account no campaign belongs to is an error."""
        Path("dnc.txt").write_text("ada@example.com\n")
        assert errors_of(write_config(add="suppress:\n  sales: [dnc.txt]\n")) == [
            'c.yaml:20:10: suppress.sales: no campaign belongs to account "sales" '
            "(accounts: default); suppression lists are per account"
        ]

    @pytest.mark.parametrize(
        ("add", "error"),
        [
            (
                "suppress:\n  default: dnc.txt\n",
                "c.yaml:20:12: suppress.default: must be a non-empty list of file paths such "
                'as [suppress/do-not-contact.txt] (got "dnc.txt")',
            ),
            (
                "suppress:\n  default: [dnc.txt, dnc.txt]\n",
                "c.yaml:20:12: suppress.default: lists a file twice",
            ),
            (
                "free_mail_domains: [gmail]\n",
                "c.yaml:19:21: free_mail_domains.0: must be a domain such as mail.example.org, "
                'or name.* such as gmx.* (got "gmail"): the domain is not valid. It should '
                "have a period",
            ),
        ],
    )
    def test_field_errors(self, write_config: Writer, add: str, error: str) -> None:
        """The new top-level fields are checked strictly, at their position."""
        Path("dnc.txt").write_text("ada@example.com\n")
        assert errors_of(write_config(add=add)) == [error]

    @pytest.mark.parametrize(
        ("line", "error"),
        [
            (
                "    stop_on_domain_reply: yes\n",
                "c.yaml:5:27: campaigns.acme-q4.stop_on_domain_reply: must be true or false (got "
                '"yes")',
            ),
            (
                "    max_per_recipient_domain_per_day: 0\n",
                "c.yaml:5:39: campaigns.acme-q4.max_per_recipient_domain_per_day: must be an "
                "integer ≥ 1 (got 0)",
            ),
        ],
    )
    def test_campaign_fields_are_strict(self, write_config: Writer, line: str, error: str) -> None:
        """A flag must be true or false; a cap a positive integer."""
        path = write_config(replace=("    leads: leads.csv\n", "    leads: leads.csv\n" + line))
        assert errors_of(path)[0].startswith(error)

    def test_defined_twice_across_files(self, write_config: Writer) -> None:
        """An account's lists are given in one file only."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")
        Path("conf/dnc.txt").write_text("ada@example.com\n")
        write_config(add="suppress:\n  default: [dnc.txt]\n", name="conf/a.yaml")
        Path("conf/b.yaml").write_text("suppress:\n  default: [dnc.txt]\n")
        assert errors_of(Path("conf")) == [
            'conf/b.yaml:2:3: suppress.default: the suppression lists of account "default" '
            "is defined twice; it is also at conf/a.yaml:20:3"
        ]

    def test_reload_reads_a_list_again_only_when_it_changes(self, write_config: Writer) -> None:
        """With a cache, an unchanged list is not read again; a changed one is."""
        Path("suppress").mkdir()
        dnc = Path("suppress/dnc.txt")
        dnc.write_text("ada@example.com\n")
        path = write_config(add=LISTS)
        cache = LoadCache()
        load_config(path, PLAINTEXT_OK, cache=cache)
        assert len(cache.lists) == 1
        dnc.write_text("nobody\n")
        stamp = os.stat(dnc)
        os.utime(dnc, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
        assert [str(e) for e in _errors(path, cache)] == [
            "suppress/dnc.txt:1:1: suppress.default.0: neither an address nor a domain (got "
            '"nobody"): write an address such as ada@example.com, or a whole domain with its '
            "@, as in @nobody"
        ]
