"""Shared mailboxes: declared once under mailboxes:, named by campaigns, each mistake located."""

from __future__ import annotations

from pathlib import Path

from mailopsd.config import load_config
from mailopsd.config.loader import LoadCache
from tests.configs import CANARY, PLAINTEXT_OK, Writer, errors_of, loads

ADA = f"""\
mailboxes:
  ada:
    smtp_host: smtp.example.com
    smtp_port: 587
    smtp_username: ada@example.com
    smtp_password: {CANARY}
    from_name: Ada
    from_email: ada@example.com
    daily_limit: 40
"""

CAMPAIGN = """\
  {cid}:
    name: {cid}
    leads: leads.csv
    sequence:
      - subject: "Hello"
        body: "Hi"
    smtp_credentials:
{credentials}"""

OWN = """\
      {cid}:
        smtp_host: {host}
        smtp_port: 587
        smtp_username: {user}
        smtp_password: pw
        from_name: Bob
        from_email: bob@example.com
        daily_limit: 10
"""


def _config(*campaigns: tuple[str, str], mailboxes: str = ADA) -> str:
    body = "".join(CAMPAIGN.format(cid=cid, credentials=creds) for cid, creds in campaigns)
    return mailboxes + "campaigns:\n" + body


def _uses(mailbox: str = "ada", as_id: str = "main") -> str:
    return f"      {as_id}: {{mailbox: {mailbox}}}\n"


def test_two_campaigns_hold_the_same_mailbox(write_config: Writer) -> None:
    """Both campaigns get the one mailbox object; it knows its id; summary counts it."""
    path = write_config(_config(("c1", _uses()), ("c2", _uses(as_id="ada"))))
    loaded = loads(path)
    one = loaded.config.campaigns["c1"].smtp_credentials["main"]
    two = loaded.config.campaigns["c2"].smtp_credentials["ada"]
    assert one is two is loaded.config.mailboxes["ada"]
    assert one.shared_as == "ada"
    assert one.daily_limit == 40
    assert loaded.config.mailbox_uses == {"ada": (("c1", "main"), ("c2", "ada"))}
    assert loaded.credential_dir("c1", one) == Path("c.yaml").parent
    assert loaded.notes == ()
    assert loaded.summary() == (
        "2 campaigns, 2 credentials (0 with reply detection), 1 shared mailbox"
    )


def test_a_mailbox_in_another_file_of_the_directory(tmp_path: Path, monkeypatch: object) -> None:
    """Mailboxes merge by id across the files of a config directory, like campaigns."""
    directory = tmp_path / "conf"
    directory.mkdir()
    (directory / "leads.csv").write_text("email\nx@example.com\n")
    (directory / "a-mailboxes.yaml").write_text(ADA)
    (directory / "b-campaigns.yaml").write_text(_config(("c1", _uses()), mailboxes=""))
    loaded = load_config(directory, PLAINTEXT_OK)
    assert loaded.mailbox_files == {"ada": directory / "a-mailboxes.yaml"}
    (directory / "c-more.yaml").write_text(ADA.replace("daily_limit: 40", "daily_limit: 4"))
    errors = errors_of(directory)
    assert errors == [
        f'{directory}/c-more.yaml:2:3: mailboxes.ada: mailbox "ada" is defined twice; it is '
        f"also at {directory}/a-mailboxes.yaml:2:3"
    ]


def test_an_unknown_mailbox_is_located_with_a_suggestion(write_config: Writer) -> None:
    """A misspelt id: the declared ones, and the closest."""
    path = write_config(_config(("c1", _uses(mailbox="adda"))))
    assert errors_of(path) == [
        'c.yaml:18:23: campaigns.c1.smtp_credentials.main.mailbox: no mailbox "adda" under '
        'the top-level mailboxes: (declared: ada); did you mean "ada"?'
    ]


def test_a_reference_holds_nothing_else(write_config: Writer) -> None:
    """Fields beside mailbox: are the mailbox's to set, and say where."""
    path = write_config(_config(("c1", "      main: {mailbox: ada, daily_limit: 5}\n")))
    assert errors_of(path) == [
        "c.yaml:18:41: campaigns.c1.smtp_credentials.main.daily_limit: a credential that "
        "names a shared mailbox has only mailbox:; its other fields are those of mailboxes.ada"
    ]


def test_a_mailbox_error_is_reported_once_where_it_is(write_config: Writer) -> None:
    """An invalid mailbox: its error at mailboxes.ada, and each use says to look there."""
    path = write_config(
        _config(("c1", _uses()), ("c2", _uses()), mailboxes=ADA.replace("587", "0"))
    )
    assert errors_of(path) == [
        "c.yaml:4:16: mailboxes.ada.smtp_port: must be a port number from 1 to 65535 (got 0)",
        'c.yaml:18:23: campaigns.c1.smtp_credentials.main.mailbox: mailbox "ada" is invalid: '
        "see mailboxes.ada",
        'c.yaml:26:23: campaigns.c2.smtp_credentials.main.mailbox: mailbox "ada" is invalid: '
        "see mailboxes.ada",
    ]


def test_one_campaign_names_a_mailbox_once(write_config: Writer) -> None:
    """Twice in one campaign would count it twice in its rotation."""
    path = write_config(_config(("c1", _uses() + _uses(as_id="again"))))
    assert errors_of(path) == [
        'c.yaml:19:24: campaigns.c1.smtp_credentials.again.mailbox: mailbox "ada" is '
        "already used by smtp_credentials.main of this campaign; a campaign uses a mailbox once"
    ]


def test_an_unused_mailbox_is_a_warning(write_config: Writer) -> None:
    """Valid, but worth saying: nothing sends from it."""
    path = write_config(_config(("c1", OWN.format(cid="own", host="h.example.com", user="b"))))
    assert [str(note) for note in loads(path).notes] == [
        "c.yaml:2:3: mailboxes.ada: no campaign uses this mailbox; name it in a campaign's "
        "smtp_credentials ({mailbox: ada}), or remove it"
    ]


def test_one_login_in_two_places_is_a_warning_naming_both(write_config: Writer) -> None:
    """The same SMTP login declared twice without sharing: the second names the first."""
    twice = OWN.format(cid="own", host="SMTP.example.com", user="ada@example.com")
    other = OWN.format(cid="own", host="smtp.example.com", user="someone-else")
    path = write_config(_config(("c1", _uses()), ("c2", twice), ("c3", other)))
    notes = [str(note) for note in loads(path).notes]
    assert notes == [
        "c.yaml:29:24: campaigns.c2.smtp_credentials.own.smtp_username: the same SMTP login "
        "(SMTP.example.com:587) as mailboxes.ada (c.yaml:2:3): each place has its own "
        "daily_limit and rate limit, so together they send more than either allows; name the "
        "shared mailbox instead of these fields: own: {mailbox: ada}"
    ]
    assert all(CANARY not in note and "ada@example.com" not in note for note in notes)


def test_a_clear_mailbox_password_is_refused_at_its_place(write_config: Writer) -> None:
    """Secrets of a shared mailbox follow the rule of every secret, located where they are."""
    path = write_config(_config(("c1", _uses())))
    errors = [str(issue) for issue in _refused(path)]
    assert errors[0].startswith("c.yaml:5:20: mailboxes.ada.smtp_username: 2 secret fields")
    assert all(CANARY not in error for error in errors)


def _refused(path: Path) -> list[object]:
    from mailopsd.errors import ConfigError

    try:
        load_config(path)
    except ConfigError as err:
        return list(err.issues)
    raise AssertionError("a clear password was accepted")


def test_a_reload_sees_a_changed_mailbox_in_unchanged_campaigns(write_config: Writer) -> None:
    """The cache keeps a campaign only while the mailbox it names is the same."""
    cache = LoadCache()
    path = write_config(_config(("c1", _uses())))
    first = load_config(path, PLAINTEXT_OK, cache=cache)
    assert first.config.campaigns["c1"].smtp_credentials["main"].daily_limit == 40
    path.write_text(path.read_text().replace("daily_limit: 40", "daily_limit: 7"))
    again = load_config(path, PLAINTEXT_OK, cache=cache)
    shared = again.config.campaigns["c1"].smtp_credentials["main"]
    assert shared.daily_limit == 7
    assert shared is again.config.mailboxes["ada"]


def test_a_login_in_many_places_is_one_warning_naming_them(write_config: Writer) -> None:
    """Three campaigns with one login: one note, at the second, naming the first and third."""
    own = OWN.format(cid="own", host="h.example.com", user="same")
    path = write_config(_config(("c1", own), ("c2", own), ("c3", own), mailboxes=""))
    notes = [str(note) for note in loads(path).notes]
    assert len(notes) == 1
    assert notes[0].startswith(
        "c.yaml:27:24: campaigns.c2.smtp_credentials.own.smtp_username: the same SMTP login "
        "(h.example.com:587) as campaigns.c1.smtp_credentials.own (c.yaml:9:7); also at "
        "campaigns.c3.smtp_credentials.own: each place"
    )


def test_a_reload_notes_logins_as_a_cold_load_does(write_config: Writer) -> None:
    """Unchanged campaigns' logins are kept between loads; the notes are those of a cold load.

    A second campaign taking the first's login gets the note at once; changing it back
    drops it, and a campaign removed takes its logins with it.
    """
    cache = LoadCache()
    own = OWN.format(cid="own", host="h.example.com", user="same")
    other = OWN.format(cid="own", host="h.example.com", user="other")
    path = write_config(_config(("c1", own), ("c2", other), mailboxes=""))
    versions = [
        _config(("c1", own), ("c2", other), mailboxes=""),
        _config(("c1", own), ("c2", own), mailboxes=""),
        _config(("c1", own), ("c2", other), mailboxes=""),
        _config(("c1", own), ("c3", own), mailboxes=""),
        _config(("c3", own), mailboxes=""),
    ]
    seen = []
    for text in versions:
        path.write_text(text)
        reloaded = [str(note) for note in load_config(path, PLAINTEXT_OK, cache=cache).notes]
        assert reloaded == [str(note) for note in loads(path).notes]
        seen.append(len(reloaded))
    assert seen == [0, 1, 0, 1, 0]
