"""The files campaigns name: one file named by several campaigns is checked for each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailopsd.config.loader import LoadCache, load_config
from mailopsd.errors import ConfigError, ConfigIssue
from tests.configs import BASE, PLAINTEXT_OK, Writer, errors_of, loads

# A second campaign after BASE's, in the same file: it starts on line 19.
BETA = """\
  beta:
    name: Beta
    leads: leads.csv
    sequence:
      - {subject: Hello, body: Hi}
      - {delay: 2 days, body_file: step2.txt}
    smtp_credentials:
      main: {smtp_host: smtp.example.org, smtp_port: 465, smtp_username: u,
             smtp_password: p, from_name: Bea, from_email: bea@example.org, daily_limit: 5}
"""
TWO = BASE.replace('body: "Following up"', "body_file: step2.txt") + BETA


def _errors_with(cache: LoadCache, path: Path) -> list[ConfigIssue]:
    """The issues of a load with ``cache``, checked to be those of a cold load."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, PLAINTEXT_OK, cache=cache)
    assert [str(issue) for issue in caught.value.issues] == errors_of(path)
    return list(caught.value.issues)


class TestNamedFiles:
    """A leads file or template named by many campaigns is read once, reported at each."""

    def test_a_bad_leads_header_is_reported_at_each_campaign(self, write_config: Writer) -> None:
        """A header without email is an error at each campaign naming the file."""
        Path("step2.txt").write_text("Later\n")
        path = write_config(TWO)
        Path("leads.csv").write_text("mail,name\n")
        message = "leads file leads.csv has no email column (columns: mail, name)"
        assert errors_of(path) == [
            f"c.yaml:4:12: campaigns.acme-q4.leads: {message}",
            f"c.yaml:21:12: campaigns.beta.leads: {message}",
        ]

    def test_a_missing_template_is_reported_at_each_step(self, write_config: Writer) -> None:
        """Two steps naming one missing template each get the error at their body_file."""
        path = write_config(TWO)
        assert errors_of(path) == [
            "c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file: template file step2.txt "
            "not found",
            "c.yaml:24:36: campaigns.beta.sequence.1.body_file: template file step2.txt not found",
        ]

    def test_a_shared_template_is_checked_against_each_campaigns_leads(
        self, write_config: Writer
    ) -> None:
        """One template is checked against the columns of each campaign's own leads file."""
        Path("step2.txt").write_text("Later, {{ company }}\n")
        path = write_config(TWO.replace("Beta\n    leads: leads.csv", "Beta\n    leads: few.csv"))
        Path("few.csv").write_text("email,first_name\n")
        assert errors_of(path) == [
            "c.yaml:24:36: campaigns.beta.sequence.1.body_file: step 2 uses {{ company }} "
            "but few.csv has no company column (columns: email, first_name)"
        ]

    def test_a_shared_template_is_each_steps_body(self, write_config: Writer) -> None:
        """Each step naming a template has its text, and the revision follows it."""
        Path("step2.txt").write_text("Later, {{ first_name }}\n")
        path = write_config(TWO)
        loaded = loads(path)
        assert loaded.body("acme-q4", 1) == loaded.body("beta", 1) == "Later, {{ first_name }}\n"
        Path("step2.txt").write_text("Later\n")
        assert loads(path).revision != loaded.revision

    def test_a_reload_reports_as_a_cold_load(self, write_config: Writer) -> None:
        """With a cache, a leads file gone since the last load is reported at each campaign."""
        Path("step2.txt").write_text("Later\n")
        path = write_config(TWO)
        cache = LoadCache()
        load_config(path, PLAINTEXT_OK, cache=cache)
        Path("leads.csv").unlink()
        assert len(_errors_with(cache, path)) == 2

    def test_a_leads_path_through_a_file_is_reported(self, write_config: Writer) -> None:
        """A leads path under a file (not a directory) is an error, with a cache too."""
        Path("step2.txt").write_text("Later\n")
        path = write_config(TWO.replace("leads: leads.csv", "leads: leads.csv/more.csv"))
        assert [issue.path for issue in _errors_with(LoadCache(), path)] == [
            "campaigns.acme-q4.leads",
            "campaigns.beta.leads",
        ]


class TestReloads:
    """With a cache, an unchanged campaign is not checked again, but what it reads is."""

    def _loaded_twice(
        self, write_config: Writer, edit: Callable[[], object]
    ) -> tuple[Path, LoadCache]:
        """TWO loaded with a cache, then ``edit`` made."""
        Path("step2.txt").write_text("Later, {{ first_name }}\n")
        path = write_config(TWO)
        cache = LoadCache()
        load_config(path, PLAINTEXT_OK, cache=cache)
        edit()
        return path, cache

    def test_an_edited_template_is_checked_again(self, write_config: Writer) -> None:
        """A template now naming a column the leads lack is an error at each campaign."""
        path, cache = self._loaded_twice(
            write_config, lambda: Path("step2.txt").write_text("Later, {{ city }}\n")
        )
        assert [issue.path for issue in _errors_with(cache, path)] == [
            "campaigns.acme-q4.sequence.1.body_file",
            "campaigns.beta.sequence.1.body_file",
        ]

    def test_an_edited_template_is_the_new_body(self, write_config: Writer) -> None:
        """The body and the revision follow the template's new text, as a cold load's."""
        path, cache = self._loaded_twice(
            write_config, lambda: Path("step2.txt").write_text("Soon\n")
        )
        loaded = load_config(path, PLAINTEXT_OK, cache=cache)
        assert loaded.body("acme-q4", 1) == loaded.body("beta", 1) == "Soon\n"
        assert loaded.revision == loads(path).revision

    def test_a_new_leads_column_is_seen_by_the_templates(self, write_config: Writer) -> None:
        """A template rejected for a missing column is accepted once the leads have it."""
        Path("step2.txt").write_text("Later, {{ city }}\n")
        path = write_config(TWO)
        cache = LoadCache()
        with pytest.raises(ConfigError):
            load_config(path, PLAINTEXT_OK, cache=cache)
        Path("leads.csv").write_text("email,first_name,company,city\ngrace@example.com,G,N,P\n")
        loaded = load_config(path, PLAINTEXT_OK, cache=cache)
        assert loaded.leads_columns["beta"][-1] == "city"
        Path("leads.csv").write_text("email,first_name,company\ngrace@example.com,G,N\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path, PLAINTEXT_OK, cache=cache)
        assert "has no city column" in str(caught.value.issues[0])

    def test_a_template_gone_is_reported_after_a_good_load(self, write_config: Writer) -> None:
        """A template deleted after a good load is an error at each step naming it."""
        path, cache = self._loaded_twice(write_config, Path("step2.txt").unlink)
        assert all("step2.txt not found" in str(issue) for issue in _errors_with(cache, path))
