"""Reading config files: directories, merging, bad files, leads and templates."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailopsd.config.leads import read_leads
from mailopsd.config.loader import LoadCache, load_config
from mailopsd.errors import ConfigError
from mailopsd.progress import Work
from tests.configs import BASE, LEADS, PLAINTEXT_OK, Writer, errors_of, loads

SECOND = """\
campaigns:
  beta:
    name: Beta
    leads: leads.csv
    sequence:
      - {subject: Hello, body: Hi}
    smtp_credentials:
      main: {smtp_host: smtp.example.org, smtp_port: 465, smtp_username: u,
             smtp_password: p, from_name: Bea, from_email: bea@example.org, daily_limit: 5}
"""


class TestDirectories:
    """A directory of *.yaml/*.yml files is read sorted and merged."""

    def test_merges_campaigns_from_several_files(self, write_config: Writer) -> None:
        """Campaigns from every config file are merged; other files are ignored."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(BASE, name="conf/10-acme.yaml")
        write_config(SECOND, name="conf/20-beta.yml")
        Path("conf/notes.txt").write_text("not config")
        Path("conf/.sops.yaml").write_text("creation_rules: []\n")
        loaded = loads(Path("conf"))
        assert list(loaded.config.campaigns) == ["acme-q4", "beta"]
        assert [p.name for p in loaded.files] == ["10-acme.yaml", "20-beta.yml"]
        assert loaded.summary() == "2 campaigns, 2 credentials (0 with reply detection)"

    def test_campaign_defined_twice_names_both_places(self, write_config: Writer) -> None:
        """The same campaign id in two files is an error naming both places."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(BASE, name="conf/a.yaml")
        write_config(
            "# the same campaign again\n" + BASE,
            name="conf/b.yaml",
        )
        assert errors_of(Path("conf")) == [
            'conf/b.yaml:3:3: campaigns.acme-q4: campaign "acme-q4" is defined twice; '
            "it is also at conf/a.yaml:2:3"
        ]

    def test_empty_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A directory without config files is one clear error."""
        monkeypatch.chdir(tmp_path)
        Path("empty").mkdir()
        Path("empty/readme.md").write_text("x")
        assert errors_of(Path("empty")) == ["empty: no *.yaml or *.yml config files here"]

    def test_missing_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A path that does not exist is one clear error."""
        monkeypatch.chdir(tmp_path)
        assert errors_of(Path("nowhere.yaml")) == ["nowhere.yaml: no such file or directory"]

    def test_revision_follows_content(self, write_config: Writer) -> None:
        """The revision changes with the files' bytes and with body templates, not otherwise."""
        path = write_config()
        first = loads(path).revision
        assert loads(path).revision == first
        write_config(add="        label: Primary\n")
        assert loads(path).revision != first


class TestBadFiles:
    """Files that are not usable YAML get one error each, never a traceback."""

    def test_duplicate_key(self, write_config: Writer) -> None:
        """A key given twice is an error naming the first line (PyYAML would keep the last)."""
        path = write_config(add="        daily_limit: 200\n")
        assert errors_of(path) == [
            "c.yaml:19:9: campaigns.acme-q4.smtp_credentials.primary.daily_limit: "
            'duplicate key "daily_limit"; it is first given on line 18'
        ]

    def test_duplicate_credential_id(self, write_config: Writer) -> None:
        """A credential id given twice in a campaign is a duplicate key."""
        credential = BASE[BASE.index("      primary:") :]
        errors = errors_of(write_config(add=credential))
        assert errors == [
            "c.yaml:19:7: campaigns.acme-q4.smtp_credentials.primary: "
            'duplicate key "primary"; it is first given on line 11'
        ]

    def test_not_yaml(self, write_config: Writer) -> None:
        """A syntax error is located."""
        path = write_config(replace=("    name: ACME Q4 outreach", "    name: [ACME"))
        assert errors_of(path) == [
            "c.yaml:4:10: invalid YAML: did not find expected ',' or ']' "
            "(while parsing a flow sequence)"
        ]

    def test_not_utf8(self, write_config: Writer) -> None:
        """Bytes that are not UTF-8 are located by line and column."""
        path = write_config()
        path.write_bytes(BASE.encode().replace(b"name: ACME", b"name: \xe9ACME"))
        assert errors_of(path) == [
            "c.yaml:3:11: not UTF-8 text (byte 0xe9); save the file as UTF-8"
        ]

    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
    def test_empty(self, write_config: Writer, text: str) -> None:
        """An empty file says so."""
        assert errors_of(write_config(text)) == [
            "c.yaml: empty file: expected a mapping with campaigns:"
        ]

    @pytest.mark.parametrize(
        ("text", "got"), [("- a\n- b\n", "a list"), ("just text\n", '"just text"')]
    )
    def test_top_level_not_mapping(self, write_config: Writer, text: str, got: str) -> None:
        """The top level must be a mapping."""
        assert errors_of(write_config(text)) == [
            f"c.yaml:1:1: the top level must be a mapping with campaigns: (got {got})"
        ]

    def test_alias_bomb(self, write_config: Writer) -> None:
        """A billion-laughs file fails fast with a located-by-file error."""
        lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
        errors = errors_of(write_config("\n".join(lines) + "\n"))
        assert len(errors) == 1
        assert errors[0].startswith("c.yaml: aliases expand to more than 1,000,")

    def test_anchors_for_shared_settings(self, write_config: Writer) -> None:
        """Anchors let two credentials share a mapping; both load."""
        text = BASE.replace("      primary:\n", "      primary: &shared\n") + (
            "      backup: *shared\n"
        )
        credentials = loads(write_config(text)).config.campaigns["acme-q4"].smtp_credentials
        assert list(credentials) == ["primary", "backup"]

    def test_merge_key_explained(self, write_config: Writer) -> None:
        """<< is not merged (sops does not merge it); the error says so."""
        text = BASE.replace("      primary:\n", "      primary: &shared\n") + (
            "      backup:\n        <<: *shared\n"
        )
        assert (
            "c.yaml:20:9: campaigns.acme-q4.smtp_credentials.backup.<<: "
            "merge keys (<<) are not supported: sops keeps them as ordinary keys"
        ) in errors_of(write_config(text))

    def test_every_error_is_reported(self, write_config: Writer) -> None:
        """Errors in several places and files are all reported, sorted by position."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(
            BASE.replace("smtp_port: 587", "smtp_port: 0").replace(
                "daily_limit: 100", "daily_limit: -5"
            ),
            name="conf/a.yaml",
        )
        write_config("campaigns: [\n", name="conf/b.yaml")
        errors = errors_of(Path("conf"))
        assert [e.split(": ")[0] for e in errors] == [
            "conf/a.yaml:13:20",
            "conf/a.yaml:18:22",
            "conf/b.yaml:2:1",
        ]


class TestLeadsAndTemplates:
    """Templates are checked against the leads file's columns."""

    def test_unknown_variable_names_step_variable_and_file(self, write_config: Writer) -> None:
        """A variable with no leads column is an error naming step, variable and file."""
        path = write_config(replace=('body: "Following up"', 'body: "About {{ title }}"'))
        assert errors_of(path) == [
            "c.yaml:9:15: campaigns.acme-q4.sequence.1.body: step 2 uses {{ title }} but "
            "leads.csv has no title column (columns: email, first_name, company)"
        ]

    def test_subject_variables_checked(self, write_config: Writer) -> None:
        """Subjects are templates too."""
        path = write_config(replace=("Quick question, {{ first_name }}", "Hi {{ nick }}"))
        assert errors_of(path) == [
            "c.yaml:6:18: campaigns.acme-q4.sequence.0.subject: step 1 uses {{ nick }} but "
            "leads.csv has no nick column (columns: email, first_name, company)"
        ]

    def test_template_syntax_error(self, write_config: Writer) -> None:
        """A template that does not parse says where inside the template."""
        path = write_config(replace=('body: "Following up"', 'body: "Hi {{ first_name }"'))
        assert errors_of(path) == [
            "c.yaml:9:15: campaigns.acme-q4.sequence.1.body: template syntax error on line 1 "
            "of the template: unexpected '}'"
        ]

    def test_body_file_is_read_and_checked(self, write_config: Writer) -> None:
        """A body_file is read relative to the config file and its variables checked."""
        Path("templates").mkdir()
        Path("templates/step2.txt").write_text("Hi {{ first_name }} at {{ company }}\n")
        path = write_config(replace=('body: "Following up"', "body_file: templates/step2.txt"))
        loaded = loads(path)
        assert loaded.body("acme-q4", 1) == "Hi {{ first_name }} at {{ company }}\n"
        Path("templates/step2.txt").write_text("Hi {{ surname }}\n")
        assert errors_of(path) == [
            "c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file: step 2 uses {{ surname }} "
            "but leads.csv has no surname column (columns: email, first_name, company)"
        ]

    def test_missing_body_file(self, write_config: Writer) -> None:
        """A body_file that does not exist is located at the field."""
        path = write_config(replace=('body: "Following up"', "body_file: nope.txt"))
        assert errors_of(path) == [
            "c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file: template file nope.txt not found"
        ]

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "leads file leads.csv not found"),
            ("", "leads file leads.csv is empty; it needs a header row with email"),
            ("mail,name\n", "leads file leads.csv has no email column (columns: mail, name)"),
            ("email,name,name\n", "leads file leads.csv repeats the column name"),
        ],
    )
    def test_bad_leads_file(self, write_config: Writer, content: str | None, message: str) -> None:
        """The leads file must exist and have a header row with an email column."""
        path = write_config()
        if content is None:
            Path("leads.csv").unlink()
        else:
            Path("leads.csv").write_text(content)
        assert errors_of(path) == [f"c.yaml:4:12: campaigns.acme-q4.leads: {message}"]

    def test_leads_file_not_utf8_past_its_header(self, write_config: Writer) -> None:
        """A byte that is not UTF-8 anywhere in the leads file is an error giving its line."""
        path = write_config()
        rows = "".join(f"lead{i}@example.com,Lead,Co\n" for i in range(1000))
        Path("leads.csv").write_bytes((LEADS + rows).encode() + b"caf\xe9@example.com,Cafe,Co\n")
        assert errors_of(path) == [
            "c.yaml:4:12: campaigns.acme-q4.leads: leads file leads.csv is not UTF-8 text "
            "(line 1003, byte 0xe9); save it as UTF-8"
        ]

    def test_leads_header_with_bom_and_spaces(self, write_config: Writer) -> None:
        """A spreadsheet export (BOM, spaces around names) still has its columns read."""
        path = write_config()
        Path("leads.csv").write_text("\ufeffemail , first_name\n" + LEADS.split("\n", 1)[1])
        assert loads(path).leads_columns["acme-q4"] == ("email", "first_name")


def test_leads_progress(tmp_path: Path) -> None:
    """Reading a large leads file reports progress every 1,000 rows, then once done."""
    path = tmp_path / "leads.csv"
    path.write_text("email\n" + "".join(f"l{i}@example.net\n" for i in range(2_500)))
    reports: list[Work] = []
    read = read_leads(path, "leads.csv", progress=reports.append)
    assert len(read.rows) == 2_500
    assert [(work.note, work.finished) for work in reports] == [
        ("0 rows", False),
        ("1,000 rows", False),
        ("2,000 rows", False),
        ("2,500 rows", True),
    ]


class TestReloadCache:
    """A daemon's cache: a reload redoes only what changed and gives the same result."""

    def _setup(self, write_config: Writer) -> Path:
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(BASE, name="conf/10-acme.yaml")
        write_config(SECOND, name="conf/20-beta.yml")
        return Path("conf")

    def test_unchanged_files_are_kept_changed_ones_read(self, write_config: Writer) -> None:
        """An edit in one file is seen; the other file's campaign is reused as validated."""
        conf = self._setup(write_config)
        cache = LoadCache()
        first = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert first.config == loads(conf).config
        beta = conf / "20-beta.yml"
        beta.write_text(beta.read_text().replace("daily_limit: 5", "daily_limit: 7"))
        second = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert second.config.campaigns["acme-q4"] is first.config.campaigns["acme-q4"]
        assert second.config.campaigns["beta"].smtp_credentials["main"].daily_limit == 7
        assert second.config == loads(conf).config
        assert second.revision != first.revision

    def test_errors_are_the_same_with_a_cache(self, write_config: Writer) -> None:
        """A bad edit after a good load is reported exactly as without a cache."""
        conf = self._setup(write_config)
        cache = LoadCache()
        load_config(conf, PLAINTEXT_OK, cache=cache)
        beta = conf / "20-beta.yml"
        beta.write_text(beta.read_text().replace("daily_limit: 5", "daily_limit: 0"))
        with pytest.raises(ConfigError) as cached:
            load_config(conf, PLAINTEXT_OK, cache=cache)
        assert [str(i) for i in cached.value.issues] == errors_of(conf)
        assert "daily_limit: must be an integer ≥ 1 (got 0)" in str(cached.value.issues[0])

    def test_settled_files_are_not_read_again_changed_ones_are(self, write_config: Writer) -> None:
        """Files untouched for a while are known by their stamp; an edit is still seen,
        even one that puts the modification time back (the change time moves)."""
        conf = self._setup(write_config)
        old = time.time() - 60
        for path in conf.glob("*.y*ml"):
            os.utime(path, (old, old))
        time.sleep(2.1)  # the change times set by utime settle
        cache = LoadCache()
        first = load_config(conf, PLAINTEXT_OK, cache=cache)
        beta = conf / "20-beta.yml"
        beta.write_text(beta.read_text().replace("daily_limit: 5", "daily_limit: 6"))
        os.utime(beta, (old, old))
        second = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert second.config.campaigns["beta"].smtp_credentials["main"].daily_limit == 6
        assert second.config.campaigns["acme-q4"] is first.config.campaigns["acme-q4"]
        assert second.config == loads(conf).config

    def test_files_added_removed_or_renamed_in_a_settled_directory_are_seen(
        self, write_config: Writer
    ) -> None:
        """The directory is listed again when it changes, however long it was settled."""
        conf = self._setup(write_config)
        old = time.time() - 60
        for path in [conf, *conf.iterdir()]:
            os.utime(path, (old, old))
        time.sleep(2.1)  # the change times set by utime settle
        cache = LoadCache()
        assert set(load_config(conf, PLAINTEXT_OK, cache=cache).config.campaigns) == {
            "acme-q4",
            "beta",
        }
        (conf / "20-beta.yml").rename(conf / "20-beta.yml.off")
        assert set(load_config(conf, PLAINTEXT_OK, cache=cache).config.campaigns) == {"acme-q4"}
        time.sleep(2.1)  # settled again: the listing is kept
        assert set(load_config(conf, PLAINTEXT_OK, cache=cache).config.campaigns) == {"acme-q4"}
        (conf / "20-beta.yml.off").rename(conf / "30-beta.yaml")
        loaded = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert set(loaded.config.campaigns) == {"acme-q4", "beta"}
        assert loaded.files == (conf / "10-acme.yaml", conf / "30-beta.yaml")

    def test_a_file_changed_as_it_was_read_is_read_again(self, write_config: Writer) -> None:
        """A file changed within the clock's tick of its read has the same stamp: files
        that changed in the last seconds are always read."""
        conf = self._setup(write_config)
        cache = LoadCache()
        load_config(conf, PLAINTEXT_OK, cache=cache)
        beta = conf / "20-beta.yml"
        stat = beta.stat()
        beta.write_text(beta.read_text().replace("daily_limit: 5", "daily_limit: 8"))
        os.utime(beta, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
        loaded = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert loaded.config.campaigns["beta"].smtp_credentials["main"].daily_limit == 8

    def test_a_shared_file_read_once_is_reported_at_each_campaign(
        self, write_config: Writer
    ) -> None:
        """Two campaigns naming one missing leads file each get the error, at their own
        leads field (the file is looked for once)."""
        conf = self._setup(write_config)
        (conf / "leads.csv").unlink()
        errors = [line for line in errors_of(conf) if "leads file" in line]
        assert len(errors) == 2
        assert "campaigns.acme-q4.leads: leads file" in errors[0]
        assert "campaigns.beta.leads: leads file" in errors[1]
        assert all(line.endswith("leads.csv not found") for line in errors)

    def test_secrets_in_clear_are_reported_at_every_reload(self, write_config: Writer) -> None:
        """What is found of an unchanged campaign is kept, and still reported."""
        conf = self._setup(write_config)
        cache = LoadCache()
        found = []
        for _ in range(2):
            with pytest.raises(ConfigError) as caught:
                load_config(conf, cache=cache)
            found.append([str(issue) for issue in caught.value.issues])
        assert found[0] == found[1]
        assert [line.split(": ")[0] for line in found[0]] == [
            "conf/10-acme.yaml:14:24",
            "conf/20-beta.yml:8:74",
        ]
        assert all("2 secret fields are stored in clear text" in line for line in found[0])

    def test_a_new_leads_header_is_read(self, write_config: Writer) -> None:
        """The leads header is read again when the file changes."""
        conf = self._setup(write_config)
        cache = LoadCache()
        load_config(conf, PLAINTEXT_OK, cache=cache)
        (conf / "leads.csv").write_text("email,first_name,company,city\ngrace@example.com,G,N,P\n")
        loaded = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert loaded.leads_columns["beta"] == ("email", "first_name", "company", "city")


KEY_TEXT = "# public key: age1demo\nAGE-SECRET-KEY-1SHOULDNEVERBEREAD\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory ``config/`` (the cwd, holding leads.csv) next to an age key."""
    directory = tmp_path / "config"
    directory.mkdir()
    monkeypatch.chdir(directory)
    (directory / "leads.csv").write_text(LEADS)
    (tmp_path / "age-key.txt").write_text(KEY_TEXT)
    return directory


def _write_in(tree: Path, old: str, new: str) -> Path:
    """Write BASE, with ``old`` replaced by ``new``, as c.yaml in ``tree``."""
    assert old in BASE
    (tree / "c.yaml").write_text(BASE.replace(old, new, 1))
    return tree


_BODY = ('body: "Following up"', "body_file: {}")
_BODY_AT = "c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file"
_LEADS = ("leads: leads.csv", "leads: {}")
_LEADS_AT = "c.yaml:4:12: campaigns.acme-q4.leads"


class TestReferencedFiles:
    """Files a config names are read only from inside its directory, regular and bounded."""

    @staticmethod
    def _outside(tree: Path, given: str, what: str, *, via: str = "") -> str:
        return (
            f"{what} {given} is outside the config directory {tree}{via}; put the file in "
            "that directory or below it and give its path relative to the config file"
        )

    def test_body_file_dotdot_escape(self, tree: Path) -> None:
        """A body_file reaching out of the tree with .. (the age key) is a located error."""
        _write_in(tree, _BODY[0], _BODY[1].format("../age-key.txt"))
        errors = errors_of(Path())
        assert errors == [f"{_BODY_AT}: {self._outside(tree, '../age-key.txt', 'template file')}"]
        assert "AGE-SECRET-KEY" not in "".join(errors)

    def test_body_file_absolute_path(self, tree: Path) -> None:
        """An absolute body_file outside the tree is a located error."""
        key = tree.parent / "age-key.txt"
        _write_in(tree, _BODY[0], _BODY[1].format(key))
        assert errors_of(Path()) == [
            f"{_BODY_AT}: {self._outside(tree, str(key), 'template file')}"
        ]

    def test_body_file_symlink_out_of_the_tree(self, tree: Path) -> None:
        """A body_file that is a symlink leading out of the tree is a located error."""
        (tree / "step2.txt").symlink_to(tree.parent / "age-key.txt")
        _write_in(tree, _BODY[0], _BODY[1].format("step2.txt"))
        via = f" (it leads to {tree.parent / 'age-key.txt'})"
        assert errors_of(Path()) == [
            f"{_BODY_AT}: {self._outside(tree, 'step2.txt', 'template file', via=via)}"
        ]

    def test_symlink_inside_the_tree_is_fine(self, tree: Path) -> None:
        """Symlinks that resolve inside the tree are followed as before."""
        (tree / "templates").mkdir()
        (tree / "templates" / "real.txt").write_text("Hi {{ first_name }}\n")
        (tree / "step2.txt").symlink_to(tree / "templates" / "real.txt")
        (tree / "people.csv").symlink_to("leads.csv")
        (tree / "c.yaml").write_text(
            BASE.replace(_BODY[0], _BODY[1].format("step2.txt")).replace(
                "leads: leads.csv", "leads: people.csv"
            )
        )
        loaded = loads(Path())
        assert loaded.body("acme-q4", 1) == "Hi {{ first_name }}\n"
        assert loaded.leads_columns["acme-q4"] == ("email", "first_name", "company")

    def test_body_file_dev_zero(self, tree: Path) -> None:
        """body_file: /dev/zero is a located error, not a memory error."""
        _write_in(tree, _BODY[0], _BODY[1].format("/dev/zero"))
        assert errors_of(Path()) == [
            f"{_BODY_AT}: {self._outside(tree, '/dev/zero', 'template file')}"
        ]

    def test_leads_dev_zero(self, tree: Path) -> None:
        """leads: /dev/zero is a located error, not a hang."""
        _write_in(tree, _LEADS[0], _LEADS[1].format("/dev/zero"))
        assert errors_of(Path()) == [
            f"{_LEADS_AT}: {self._outside(tree, '/dev/zero', 'leads file')}"
        ]

    def test_leads_dotdot_escape(self, tree: Path) -> None:
        """A leads file reaching out of the tree with .. is a located error."""
        (tree.parent / "other.csv").write_text(LEADS)
        _write_in(tree, _LEADS[0], _LEADS[1].format("../other.csv"))
        assert errors_of(Path()) == [
            f"{_LEADS_AT}: {self._outside(tree, '../other.csv', 'leads file')}"
        ]

    def test_leads_fifo(self, tree: Path) -> None:
        """A FIFO as leads file is a located error, not a blocked load."""
        os.mkfifo(tree / "fifo.csv")
        _write_in(tree, _LEADS[0], _LEADS[1].format("fifo.csv"))
        assert errors_of(Path()) == [
            f"{_LEADS_AT}: leads file fifo.csv is a FIFO, not a regular file; give a file"
        ]

    def test_leads_directory(self, tree: Path) -> None:
        """A directory as leads file is a located error."""
        (tree / "leads.d").mkdir()
        _write_in(tree, _LEADS[0], _LEADS[1].format("leads.d"))
        assert errors_of(Path()) == [
            f"{_LEADS_AT}: leads file leads.d is a directory, not a regular file; give a file"
        ]

    def test_leads_over_size(self, tree: Path) -> None:
        """A leads file over 1 GiB is a located error (a sparse file: nothing is written)."""
        with (tree / "leads.csv").open("r+b") as stream:
            stream.truncate((1 << 30) + 1)
        _write_in(tree, "x", "x")
        assert errors_of(Path()) == [
            f"{_LEADS_AT}: leads file leads.csv is larger than the limit of 1 GiB; make it smaller"
        ]

    def test_body_file_over_size(self, tree: Path) -> None:
        """A body_file over 1 MiB is a located error."""
        (tree / "big.txt").write_text("x" * ((1 << 20) + 1))
        _write_in(tree, _BODY[0], _BODY[1].format("big.txt"))
        assert errors_of(Path()) == [
            f"{_BODY_AT}: template file big.txt is larger than the limit of 1 MiB; make it smaller"
        ]

    def test_ca_file_outside(self, tree: Path) -> None:
        """A tls_ca_file outside the tree is a located error."""
        _write_in(tree, "daily_limit: 100", "daily_limit: 100\n        tls_ca_file: ../age-key.txt")
        assert errors_of(Path()) == [
            "c.yaml:19:22: campaigns.acme-q4.smtp_credentials.primary.tls_ca_file: "
            + self._outside(tree, "../age-key.txt", "CA file")
        ]

    def test_config_file_symlink_out_of_the_tree(self, tree: Path) -> None:
        """A *.yaml in the config directory that leads out of it is refused, unread."""
        _write_in(tree, "x", "x")
        (tree / "z.yaml").symlink_to(tree.parent / "age-key.txt")
        via = f" (it leads to {tree.parent / 'age-key.txt'})"
        errors = errors_of(Path())
        assert errors == [f"z.yaml: {self._outside(tree, 'z.yaml', 'config file', via=via)}"]

    def test_ca_file_device(self, tree: Path) -> None:
        """An absolute CA file may name a system bundle, but never a device such as /dev/zero."""
        _write_in(tree, "daily_limit: 100", "daily_limit: 100\n        tls_ca_file: /dev/zero")
        assert errors_of(Path()) == [
            "c.yaml:19:22: campaigns.acme-q4.smtp_credentials.primary.tls_ca_file: "
            "CA file /dev/zero is a character device, not a regular file; give a file"
        ]


_HUGE = (
    "the template would make a text of 3,000,000,000 characters, over the limit of "
    "2,097,152 characters: make the template or what it repeats shorter"
)


class TestTemplateLimits:
    """validate finds a template that makes a text over the limit whatever the leads hold."""

    def test_huge_repetition_in_a_body(self, write_config: Writer) -> None:
        """{{ 'x' * 3000000000 }} as a body is a config error located at the body."""
        path = write_config(replace=('body: "Following up"', "body: \"{{ 'x' * 3000000000 }}\""))
        assert errors_of(path) == [f"c.yaml:9:15: campaigns.acme-q4.sequence.1.body: {_HUGE}"]

    def test_huge_repetition_in_a_subject(self, write_config: Writer) -> None:
        """A subject that repeats a text past the limit is located at the subject."""
        path = write_config(
            replace=(
                '"Quick question, {{ first_name }}"',
                "\"{{ first_name }}{{ 'x' * 3000000000 }}\"",
            )
        )
        assert errors_of(path) == [f"c.yaml:6:18: campaigns.acme-q4.sequence.0.subject: {_HUGE}"]

    def test_huge_repetition_in_a_body_file(self, write_config: Writer) -> None:
        """A body_file that repeats a text past the limit is located at the body_file."""
        Path("step2.txt").write_text("{{ 'x' * 3000000000 }}\n")
        path = write_config(replace=('body: "Following up"', "body_file: step2.txt"))
        assert errors_of(path) == [f"c.yaml:9:20: campaigns.acme-q4.sequence.1.body_file: {_HUGE}"]
