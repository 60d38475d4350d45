"""The public demo key encrypts the demo campaign file and nothing else.

A person starts in ``config/``, as the README says, next to the demo ``.sops.yaml``: a new
file there must never end up encrypted for a key whose private half ships with mailopsd,
and every refusal names the command to run instead, which works when copied.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from mailopsd.secrets import DEMO_RECIPIENT, parse_identities, read_metadata
from tests.configs import BASE, CANARY
from tests.sops_tools import AgeKey, CliRun, make_key, run_sops

REPO = Path(__file__).resolve().parents[3]
SECRET_FIELDS_RULE = "^(imap_password|imap_username|signing_key|smtp_password|smtp_username)$"  # noqa: S105 - field names
NEW_KEY_ADVICE = (
    "make your own key with: mailopsd secrets keygen -o ~/.config/sops/age/keys.txt, "
    "then run: mailopsd secrets encrypt --age <the age1… it prints> --in-place config/acme.yaml"
)
DEMO_REFUSED = (
    f"refusing to encrypt for the demo key {DEMO_RECIPIENT}{{source}}: its private key "
    "ships with mailopsd (config/demo-age-key.txt), so anyone could read these secrets; "
)


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's config/ (demo .sops.yaml, key and example) as the cwd.

    The person has no key of their own yet: no key variable is set and the home is empty.
    """
    for name in ("MAILOPSD_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = tmp_path / "repo" / "config"
    shutil.copytree(REPO / "config", config)
    (config / "demo-age-key.txt").chmod(0o600)
    (config / "acme.yaml").write_text(BASE)
    monkeypatch.chdir(config.parent)
    return config


def _suggested(err: str) -> list[str]:
    """The command an error suggests (after its last ``run: ``), as argv without the name."""
    command = shlex.split(err.strip().rsplit("run: ", 1)[1])
    assert command[0] == "mailopsd"
    return command[1:]


def test_shipped_constant_is_the_shipped_key() -> None:
    """DEMO_RECIPIENT is the public half of config/demo-age-key.txt."""
    key = REPO / "config" / "demo-age-key.txt"
    identities = parse_identities(key.read_text(), str(key)).identities
    assert [str(identity.to_public()) for identity in identities] == [DEMO_RECIPIENT]


def test_new_file_in_config_is_not_encrypted_for_the_demo_key(checkout: Path, run: CliRun) -> None:
    """secrets encrypt -i on a new file beside the demo .sops.yaml refuses and says what to do."""
    code, out, err = run("secrets", "encrypt", "-i", "config/acme.yaml")
    assert (code, out) == (1, "")
    assert err == (
        "error: config/acme.yaml: no age recipient to encrypt for (the creation rule for it "
        f"in config/.sops.yaml names none); {NEW_KEY_ADVICE}\n"
    )
    assert (checkout / "acme.yaml").read_text() == BASE


def test_suggestion_names_the_persons_own_key(checkout: Path, run: CliRun, tmp_path: Path) -> None:
    """With a key of one's own, the refusal suggests --age with it, and that command works."""
    code, recipient, _ = run(
        "secrets", "keygen", "-o", str(tmp_path / "home/.config/sops/age/keys.txt")
    )
    assert code == 0
    recipient = recipient.strip()
    code, _, err = run("secrets", "encrypt", "-i", "config/acme.yaml")
    assert code == 1
    assert err.endswith(
        f"; to encrypt it for your own key, run: mailopsd secrets encrypt --age {recipient} "
        "--in-place config/acme.yaml\n"
    )
    assert run(*_suggested(err)) == (0, "", "")
    text = (checkout / "acme.yaml").read_text()
    assert CANARY not in text
    meta = read_metadata(text, "acme.yaml")
    assert meta.recipients == [recipient]
    assert (meta.rule.kind, meta.rule.pattern) == ("encrypted_regex", SECRET_FIELDS_RULE)
    key = tmp_path / "home/.config/sops/age/keys.txt"
    assert run_sops(["decrypt", "config/acme.yaml"], key).returncode == 0


def test_demo_recipient_given_with_age_is_refused(checkout: Path, run: CliRun) -> None:
    """--age with the demo recipient is refused for any file but the demo campaign file."""
    code, out, err = run("secrets", "encrypt", "--age", DEMO_RECIPIENT, "-i", "config/acme.yaml")
    assert (code, out) == (1, "")
    assert err == (
        "error: config/acme.yaml: " + DEMO_REFUSED.format(source="") + NEW_KEY_ADVICE + "\n"
    )
    assert (checkout / "acme.yaml").read_text() == BASE


def test_demo_recipient_from_a_rule_is_refused(checkout: Path, run: CliRun, tmp_path: Path) -> None:
    """A .sops.yaml rule that sends every file to the demo key is refused too."""
    sops_yaml = checkout / ".sops.yaml"
    sops_yaml.write_text(f"creation_rules:\n  - age: {DEMO_RECIPIENT}\n")
    code, _, err = run("secrets", "encrypt", "-i", "config/acme.yaml")
    assert code == 1
    assert err == (
        "error: config/acme.yaml: "
        + DEMO_REFUSED.format(source=" (from config/.sops.yaml)")
        + NEW_KEY_ADVICE
        + "\n"
    )
    assert (checkout / "acme.yaml").read_text() == BASE


def test_demo_file_is_still_encrypted_for_the_demo_key(checkout: Path, run: CliRun) -> None:
    """The demo campaign file, decrypted and encrypted again, goes to the demo key by the rule."""
    key = "config/demo-age-key.txt"
    example = checkout / "campaigns.example.yaml"
    code, plain, _ = run("secrets", "decrypt", str(example), "--age-key-file", key)
    assert code == 0
    example.write_text(plain)
    assert run("secrets", "encrypt", "-i", "config/campaigns.example.yaml") == (0, "", "")
    assert read_metadata(example.read_text(), "example").recipients == [DEMO_RECIPIENT]
    assert run("validate", str(example), "--age-key-file", key)[0] == 0


def test_updatekeys_refuses_the_demo_recipient(checkout: Path, run: CliRun, tmp_path: Path) -> None:
    """updatekeys will not wrap a file's data key for the demo key; the file stays as it was."""
    own: AgeKey = make_key(tmp_path)
    path = checkout / "acme.yaml"
    assert run("secrets", "encrypt", "--age", own.recipient, "-i", "config/acme.yaml")[0] == 0
    before = path.read_text()
    sops_yaml = checkout / ".sops.yaml"
    sops_yaml.write_text(f"creation_rules:\n  - age: {own.recipient},{DEMO_RECIPIENT}\n")
    code, _, err = run("secrets", "updatekeys", "config/acme.yaml", "--age-key-file", str(own.path))
    assert code == 1
    assert err == (
        "error: config/acme.yaml: "
        + DEMO_REFUSED.format(source=" (from config/.sops.yaml)")
        + "take the demo recipient out of that rule\n"
    )
    assert path.read_text() == before


def test_file_already_encrypted_for_the_demo_key_is_moved_off_it(
    checkout: Path, run: CliRun, tmp_path: Path
) -> None:
    """rotate and edit refuse a file encrypted for the demo key; the steps they give move it."""
    path = checkout / "acme.yaml"
    made = run_sops(["encrypt", "--age", DEMO_RECIPIENT, str(path)], checkout / "demo-age-key.txt")
    assert made.returncode == 0, made.stderr
    path.write_text(made.stdout)
    demo = ("--age-key-file", "config/demo-age-key.txt")
    for verb in ("rotate", "edit"):
        code, _, err = run("secrets", verb, "config/acme.yaml", *demo)
        assert code == 1
        assert err == (
            f"error: config/acme.yaml: is encrypted for the demo key {DEMO_RECIPIENT}, whose "
            "private key ships with mailopsd (config/demo-age-key.txt), so anyone can read its "
            "secrets; move it to your own key: put your recipient in the creation rule for it "
            "in .sops.yaml, run: mailopsd secrets updatekeys config/acme.yaml --age-key-file "
            "config/demo-age-key.txt, then: mailopsd secrets rotate config/acme.yaml, and "
            "change the passwords it holds\n"
        )
    assert path.read_text() == made.stdout
    own = make_key(tmp_path)
    (checkout / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: acme\\.yaml$\n    age: {own.recipient}\n"
    )
    assert run("secrets", "updatekeys", "config/acme.yaml", *demo)[0] == 0
    assert run("secrets", "rotate", "config/acme.yaml", "--age-key-file", str(own.path))[0] == 0
    assert read_metadata(path.read_text(), "acme.yaml").recipients == [own.recipient]
    assert run_sops(["decrypt", str(path)], own.path).returncode == 0
