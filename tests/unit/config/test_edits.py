"""Adding, updating and deleting credentials in a config file's text, all else kept."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailopsd import goyaml
from mailopsd.config import LoadedConfig, edits, load_config
from mailopsd.config.loader import LoadOptions
from tests.configs import BASE, LEADS

WHERE = "c.yaml"
PLAINTEXT_OK = LoadOptions(allow_plaintext_secrets=True)

NEW = {
    "smtp_port": 465,
    "smtp_host": "smtp.new.example.com",
    "smtp_username": "0123",
    "smtp_password": "yes",
    "from_name": "Bob: the #1",
    "from_email": "bob@example.com",
    "daily_limit": 50,
    "label": " spaced ",
}
NEW_LINES = [
    "      second:",
    '        label: " spaced "',
    "        smtp_host: smtp.new.example.com",
    "        smtp_port: 465",
    '        smtp_username: "0123"',
    '        smtp_password: "yes"',
    '        from_name: "Bob: the #1"',
    "        from_email: bob@example.com",
    "        daily_limit: 50",
]

# BASE with comments above, inside and after the credentials, and a second campaign.
COMMENTED = BASE.replace(
    "    smtp_credentials:\n      primary:\n",
    "    smtp_credentials:   # the mailboxes\n      # the main mailbox\n      primary:  # first\n",
).replace(
    "        daily_limit: 100\n", "        daily_limit: 100  # per day\n        # end of primary\n"
)
COMMENTED += "    # after the credentials\n    bounce_min_sends: 20\n# the end\n"


def campaign(campaign_id: str, credential_id: str) -> str:
    """A campaign with one credential, in BASE's layout."""
    body = BASE.removeprefix("campaigns:\n").replace("acme-q4:", f"{campaign_id}:", 1)
    return body.replace("      primary:", f"      {credential_id}:", 1)


SEVERAL = "campaigns:\n" + "".join(
    campaign(name, f"{name}-box") for name in ("first", "middle", "last")
)


def loaded(tmp_path: Path, text: str) -> LoadedConfig:
    """Write ``text`` as a config beside its leads file and load it (plaintext secrets)."""
    (tmp_path / "leads.csv").write_text(LEADS)
    path = tmp_path / WHERE
    path.write_text(text)
    return load_config(path, PLAINTEXT_OK)


def changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines removed and the lines added, as difflib sees them."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return (
        [line[2:] for line in diff if line.startswith("- ")],
        [line[2:] for line in diff if line.startswith("+ ")],
    )


def fields_of(config: LoadedConfig, campaign_id: str, credential_id: str) -> dict[str, object]:
    """A credential's fields as loaded, secrets revealed."""
    credential = config.config.campaigns[campaign_id].smtp_credentials[credential_id]
    return {
        "label": credential.label,
        "smtp_host": credential.smtp_host,
        "smtp_port": credential.smtp_port,
        "smtp_username": credential.smtp_username.get_secret_value(),
        "smtp_password": credential.smtp_password.get_secret_value(),
        "from_name": credential.from_name,
        "from_email": credential.from_email,
        "daily_limit": credential.daily_limit,
    }


class TestAddCredential:
    def test_only_the_new_lines_are_added(self) -> None:
        """The new entry goes after the last one's lines, comments and all else kept."""
        after = edits.add_credential(COMMENTED, "acme-q4", "second", NEW, WHERE)
        assert changes(COMMENTED, after) == ([], NEW_LINES)
        at = after.index("      second:")
        assert after[:at] == COMMENTED[: COMMENTED.index("    # after the credentials")]
        assert after[at:].endswith(
            "    # after the credentials\n    bounce_min_sends: 20\n# the end\n"
        )

    def test_loads_back_typed(self, tmp_path: Path) -> None:
        """Values YAML would mistype come back as written: "0123" and "yes" stay text."""
        config = loaded(tmp_path, edits.add_credential(COMMENTED, "acme-q4", "second", NEW, WHERE))
        assert fields_of(config, "acme-q4", "second") == NEW
        assert fields_of(config, "acme-q4", "primary")["smtp_port"] == 587

    @pytest.mark.parametrize("target", ["first", "middle", "last"])
    def test_any_campaign_of_several(self, tmp_path: Path, target: str) -> None:
        """A campaign first, in the middle or last of the file gets the entry; others stay."""
        after = edits.add_credential(SEVERAL, target, "second", NEW, WHERE)
        assert changes(SEVERAL, after) == ([], NEW_LINES)
        config = loaded(tmp_path, after)
        for name in ("first", "middle", "last"):
            expected = {f"{name}-box", "second"} if name == target else {f"{name}-box"}
            assert set(config.config.campaigns[name].smtp_credentials) == expected
        assert fields_of(config, target, "second") == NEW

    @pytest.mark.parametrize(
        ("empty", "head"),
        [
            ("    smtp_credentials: {}  # none yet\n", "    smtp_credentials:  # none yet\n"),
            ("    smtp_credentials: ~\n", "    smtp_credentials:\n"),
            ("    smtp_credentials:\n", "    smtp_credentials:\n"),
            ("", "    smtp_credentials:\n"),
        ],
        ids=["flow-empty", "tilde", "null", "missing"],
    )
    def test_empty_or_missing_credentials(self, tmp_path: Path, empty: str, head: str) -> None:
        """An empty or missing ``smtp_credentials`` gets block lines, 2 deeper than its key."""
        before = BASE[: BASE.index("    smtp_credentials:")] + empty
        after = edits.add_credential(before, "acme-q4", "second", NEW, WHERE)
        assert (
            after
            == BASE[: BASE.index("    smtp_credentials:")] + head + "\n".join(NEW_LINES) + "\n"
        )
        assert fields_of(loaded(tmp_path, after), "acme-q4", "second") == NEW

    def test_no_final_line_break(self) -> None:
        """A file that does not end with a line break gets one before the new lines."""
        after = edits.add_credential(BASE.rstrip("\n"), "acme-q4", "second", NEW, WHERE)
        assert after == BASE + "\n".join(NEW_LINES) + "\n"

    def test_indentation_follows_the_file(self, tmp_path: Path) -> None:
        """Entries indented by 4 get a new entry indented by 4, its fields too."""
        wide = BASE.replace("      primary:\n", "        primary:\n").replace(
            "\n        smtp_", "\n            smtp_"
        )
        wide = wide.replace("\n        from_", "\n            from_").replace(
            "\n        daily", "\n            daily"
        )
        assert fields_of(loaded(tmp_path, wide), "acme-q4", "primary")["smtp_port"] == 587
        after = edits.add_credential(wide, "acme-q4", "second", {"smtp_port": 25}, WHERE)
        assert changes(wide, after) == ([], ["        second:", "            smtp_port: 25"])

    def test_existing_id_refused(self) -> None:
        """An id the campaign already has is refused, naming the file, line and path."""
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.add_credential(BASE, "acme-q4", "primary", NEW, WHERE)
        assert caught.value.reason == "exists"
        assert str(caught.value) == (
            "c.yaml:11:7: campaigns.acme-q4.smtp_credentials.primary: credential "
            "acme-q4/primary already exists; update it instead"
        )

    def test_unknown_campaign_refused(self) -> None:
        """An unknown campaign is refused with the campaigns the file has."""
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.add_credential(SEVERAL, "nope", "x", NEW, WHERE)
        assert caught.value.reason == "unknown-campaign"
        assert str(caught.value) == (
            "c.yaml: campaigns.nope: defines no campaign nope "
            "(campaigns in this file: first, middle, last)"
        )

    def test_campaign_in_another_document_refused(self) -> None:
        """A campaign in a second YAML document is refused (a config file holds one)."""
        text = BASE + "---\n" + "campaigns:\n" + campaign("other", "box")
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.add_credential(text, "other", "x", NEW, WHERE)
        assert caught.value.reason == "other-document"
        assert "c.yaml:21:3: campaigns.other: campaign other is in document 2" in str(caught.value)

    def test_flow_mapping_refused(self) -> None:
        """Credentials written as a flow mapping with entries are refused, not rewritten."""
        text = BASE[: BASE.index("    smtp_credentials:")] + "    smtp_credentials: {a: {b: 1}}\n"
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.add_credential(text, "acme-q4", "x", NEW, WHERE)
        assert caught.value.reason == "unsupported"
        assert "flow mapping" in str(caught.value)


class TestUpdateCredential:
    def test_values_replaced_on_their_lines(self, tmp_path: Path) -> None:
        """Each changed value changes its own line; a comment after the value stays."""
        after = edits.update_credential(
            COMMENTED, "acme-q4", "primary", {"smtp_port": 2525, "daily_limit": 7}, WHERE
        )
        assert changes(COMMENTED, after) == (
            ["        smtp_port: 587", "        daily_limit: 100  # per day"],
            ["        smtp_port: 2525", "        daily_limit: 7  # per day"],
        )
        config = loaded(tmp_path, after)
        assert fields_of(config, "acme-q4", "primary")["smtp_port"] == 2525

    def test_missing_added_and_none_removed(self, tmp_path: Path) -> None:
        """A missing field is added at the end of the credential; ``None`` removes a line."""
        before = COMMENTED.replace(
            "        from_name: Ada\n", "        label: old  # to go\n        from_name: Ada\n"
        )
        after = edits.update_credential(
            before, "acme-q4", "primary", {"label": None, "dkim_selectors": ["s1", "0123"]}, WHERE
        )
        assert changes(before, after) == (
            ["        label: old  # to go"],
            ['        dkim_selectors: [s1, "0123"]'],
        )
        assert after.index("dkim_selectors") > after.index("# end of primary")
        credential = loaded(tmp_path, after).config.campaigns["acme-q4"].smtp_credentials
        assert credential["primary"].label is None
        assert list(credential["primary"].dkim_selectors or ()) == ["s1", "0123"]

    def test_multiline_value_replaced_whole(self, tmp_path: Path) -> None:
        """A block scalar is replaced whole by a one-line value; the lines after stay."""
        before = BASE.replace(
            "        from_name: Ada\n", "        from_name: |-\n          Ada\n\n"
        )
        after = edits.update_credential(before, "acme-q4", "primary", {"from_name": "Bob"}, WHERE)
        assert changes(before, after) == (
            ["        from_name: |-", "          Ada"],
            ["        from_name: Bob"],
        )
        assert fields_of(loaded(tmp_path, after), "acme-q4", "primary")["from_name"] == "Bob"

    def test_empty_value_filled(self) -> None:
        """A field with no value (``label:``) gets one after its colon."""
        before = BASE.replace(
            "        daily_limit: 100\n", "        daily_limit: 100\n        label:\n"
        )
        after = edits.update_credential(before, "acme-q4", "primary", {"label": "L"}, WHERE)
        assert changes(before, after) == (["        label:"], ["        label: L"])

    def test_unknown_credential_refused(self) -> None:
        """An unknown credential is refused, with the ids the campaign has."""
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.update_credential(BASE, "acme-q4", "spare", {"label": "x"}, WHERE)
        assert caught.value.reason == "unknown-credential"
        assert str(caught.value) == (
            "c.yaml:10:5: campaigns.acme-q4.smtp_credentials.spare: defines no credential "
            "acme-q4/spare (credentials of acme-q4: primary)"
        )

    def test_flow_credential_refused(self) -> None:
        """A credential written as ``{mailbox: id}`` is refused."""
        text = SEVERAL.replace(
            "      last-box:\n", "      shared: {mailbox: team}\n      last-box:\n"
        )
        with pytest.raises(edits.CredentialEditError) as caught:
            edits.update_credential(text, "last", "shared", {"label": "x"}, WHERE)
        assert caught.value.reason == "unsupported"


class TestDeleteCredential:
    def test_entry_and_its_comments_removed(self, tmp_path: Path) -> None:
        """The entry, the comment above it and its inner comments go; the rest stays."""
        text = edits.add_credential(COMMENTED, "acme-q4", "second", NEW, WHERE)
        after = edits.delete_credential(text, "acme-q4", "primary", WHERE)
        removed, added = changes(text, after)
        assert added == []
        assert (
            removed
            == COMMENTED[
                COMMENTED.index("      # the main") : COMMENTED.index("    # after")
            ].splitlines()
        )
        assert set(loaded(tmp_path, after).config.campaigns["acme-q4"].smtp_credentials) == {
            "second"
        }

    @pytest.mark.parametrize("target", ["first", "middle", "last"])
    def test_only_that_campaign_changes(self, tmp_path: Path, target: str) -> None:
        """Deleting a credential added before gives back the file byte for byte."""
        added = edits.add_credential(SEVERAL, target, "second", NEW, WHERE)
        assert edits.delete_credential(added, target, "second", WHERE) == SEVERAL

    def test_blank_line_between_entries_not_doubled(self) -> None:
        """Entries separated by blank lines keep one blank line between them."""
        text = SEVERAL.replace(
            "      middle-box:", "      spare: {mailbox: team}\n\n      middle-box:"
        )
        text = text.replace("      spare:", "\n      spare:")
        after = edits.delete_credential(text, "middle", "spare", WHERE)
        assert after == SEVERAL.replace("      middle-box:", "\n      middle-box:")

    def test_last_credential_leaves_an_empty_mapping(self) -> None:
        """Deleting the only credential leaves ``smtp_credentials: {}``."""
        after = edits.delete_credential(COMMENTED, "acme-q4", "primary", WHERE)
        head = COMMENTED[: COMMENTED.index("    smtp_credentials:")]
        assert after == head + (
            "    smtp_credentials: {}   # the mailboxes\n"
            "    # after the credentials\n    bounce_min_sends: 20\n# the end\n"
        )
        assert goyaml.parse_yaml(after).data["campaigns"]["acme-q4"]["smtp_credentials"] == {}

    def test_unknown_campaign_refused(self) -> None:
        """An unknown campaign is refused."""
        with pytest.raises(edits.CredentialEditError, match="defines no campaign nope"):
            edits.delete_credential(BASE, "nope", "primary", WHERE)


TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


class TestRoundTrip:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(label=TEXT, name=TEXT, login=TEXT, port=st.integers(0, 65535))
    @example(label="a: b # c", name="'\"", login="0x1F", port=0)
    @example(label="yes", name="null", login="1e3", port=1)
    @example(label="- x", name="[a]", login="*alias", port=2)
    def test_values_load_back_equal(self, label: str, name: str, login: str, port: int) -> None:
        """Any text (quotes, colons, '#', unicode, line breaks) reads back as written."""
        fields = {"label": label, "from_name": name, "smtp_password": login, "smtp_port": port}
        after = edits.add_credential(COMMENTED, "acme-q4", "new", fields, WHERE)
        data = goyaml.parse_yaml(after).data
        assert data["campaigns"]["acme-q4"]["smtp_credentials"]["new"] == fields
        updated = edits.update_credential(after, "acme-q4", "primary", fields, WHERE)
        data = goyaml.parse_yaml(updated).data
        assert data["campaigns"]["acme-q4"]["smtp_credentials"]["primary"] == {
            **goyaml.parse_yaml(COMMENTED).data["campaigns"]["acme-q4"]["smtp_credentials"][
                "primary"
            ],
            **fields,
        }
