"""The read-only credentials API over real HTTP to a running daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mailopsd.http.apikeys import hash_api_key
from mailopsd.state.statefile import CredentialState, StateFile, save_state
from tests.dispatch_setup import campaign_tree, credential, write_config, write_leads
from tests.integration.test_http import KEY, Reply, Running, _daemon
from tests.printed import run_as_printed, suggested_commands
from tests.servers.smtp import SmtpServer

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DISABLED_AT = START - timedelta(hours=2)
KEY_A = "mk_account-a-key-0123456789abcdefghijklmnopqrs"
KEY_B = "mk_account-b-key-0123456789abcdefghijklmnopqrs"
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}
SECRETS = ("pw-ada", "pw-box2", "pw-box3", '"ada"', '"box2"', '"box3"', KEY, KEY_A, KEY_B)


def _write_config(tmp_path: Path, smtp: SmtpServer) -> Path:
    write_leads(tmp_path / "leads.csv", 3)
    unsubscribe = {"footer_html": '<p><a href="%%UNSUBSCRIBE%%">Stop</a></p>'}
    boxes = {"a": credential(smtp, "ada", label="Primary"), "b": credential(smtp, "box2")}
    others = {"e": credential(smtp, "box3")}
    return write_config(
        tmp_path,
        {
            "camp": campaign_tree(boxes, unsubscribe=unsubscribe),
            "other": campaign_tree(
                others, name="Other account", unsubscribe=unsubscribe, account="acct-b"
            ),
        },
        http={
            "listen": "127.0.0.1:0",
            "public_base_url": "https://mail.example.com",
            "signing_key": KEY,
        },
        api_keys={
            "ops": {"account": "default", "sha256": hash_api_key(KEY_A)},
            "partner": {"account": "acct-b", "sha256": hash_api_key(KEY_B)},
        },
    )


@pytest.fixture
def api(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Running]:
    """A daemon with two accounts, credential camp/b auto-disabled, step 1 sent."""
    _write_config(tmp_path, smtp_server)
    disabled = CredentialState(disabled_at=DISABLED_AT, disabled_reason="bounce rate 30%")
    (tmp_path / "state").mkdir(mode=0o700)
    save_state(tmp_path / "state", StateFile(credentials={"camp/b": disabled}))
    with _daemon(tmp_path, smtp_server, rewrite=False) as started:
        started.daemon.dispatch()
        yield started
    for reply in started.seen:
        shown = reply.body.decode("latin-1") + repr(reply.headers)
        for secret in SECRETS:
            assert secret not in shown


def _json(reply: Reply) -> object:
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Cache-Control"] == "no-store"
    return json.loads(reply.body)


def _error(code: str, reply: Reply) -> str:
    body = _json(reply)
    assert isinstance(body, dict)
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer mk_wrong"},
            {"Authorization": f"Basic {KEY_A}"},
            {"Authorization": "Bearer "},
        ],
    )
    def test_missing_or_wrong_key_gets_401(self, api: Running, headers: dict[str, str]) -> None:
        """No key, an unknown key or another scheme: 401 with a Bearer challenge."""
        for path in ("/campaigns", "/campaigns/camp/smtp_credentials/a", "/campaigns/nope"):
            reply = api.request("GET", path, headers=headers)
            assert reply.status == 401, path
            challenge = {k.lower(): v for k, v in reply.headers.items()}["www-authenticate"]
            assert challenge.startswith("Bearer")
            _error("unauthorized", reply)

    def test_openapi_needs_no_key(self, api: Running) -> None:
        """The API description is served without a key, as OpenAPI 3.1."""
        reply = api.request("GET", "/openapi.json")
        assert reply.status == 200
        document = _json(reply)
        assert isinstance(document, dict)
        assert document["openapi"] == "3.1.0"
        assert "/campaigns/{campaign_id}/smtp_credentials/{id}" in document["paths"]


class TestReads:
    def test_campaigns_of_the_key_account_only(self, api: Running) -> None:
        """Each key lists its own account's campaigns."""
        listed = _json(api.request("GET", "/campaigns", headers=AUTH_A))
        assert isinstance(listed, dict)
        assert [c["id"] for c in listed["campaigns"]] == ["camp"]
        other = _json(api.request("GET", "/campaigns", headers=AUTH_B))
        assert isinstance(other, dict)
        assert [c["id"] for c in other["campaigns"]] == ["other"]
        one = _json(api.request("GET", "/campaigns/camp", headers=AUTH_A))
        assert isinstance(one, dict)
        assert (one["id"], one["name"], one["smtp_credentials"]) == (
            "camp",
            "Test campaign",
            ["a", "b"],
        )

    def test_credential_fields_and_counts(self, api: Running) -> None:
        """A credential shows its public fields and live counts, never a login."""
        reply = api.request("GET", "/campaigns/camp/smtp_credentials/a", headers=AUTH_A)
        assert reply.status == 200
        body = _json(reply)
        assert isinstance(body, dict)
        assert body == {
            "id": "a",
            "label": "Primary",
            "from_email": "ada@sender.example.com",
            "from_name": "Ada",
            "smtp_host": body["smtp_host"],
            "smtp_port": body["smtp_port"],
            "daily_limit": 100,
            "reply_detection": False,
            "mailbox": None,
            "status": "enabled",
            "disabled_at": None,
            "sends_today": 3,
            "followups_today": 0,
            "bounce_rate": 0.0,
            "sends_in_window": 3,
            "bounces_in_window": 0,
        }
        assert "smtp_username" not in body
        assert "smtp_password" not in body

    def test_disabled_credential(self, api: Running) -> None:
        """An auto-disabled credential shows disabled and when; the list holds both."""
        listed = _json(api.request("GET", "/campaigns/camp/smtp_credentials", headers=AUTH_A))
        assert isinstance(listed, dict)
        rows = {row["id"]: row for row in listed["smtp_credentials"]}
        assert set(rows) == {"a", "b"}
        assert rows["b"]["status"] == "disabled"
        assert rows["b"]["disabled_at"] == "2026-11-23T08:00:00Z"
        assert rows["b"]["sends_today"] == 0
        assert rows["b"]["bounce_rate"] is None
        assert rows["a"]["status"] == "enabled"


class TestNotFound:
    def test_other_account_is_the_same_as_missing(self, api: Running) -> None:
        """Account B's key gets the same 404 for A's campaign as for a missing one."""
        for path in ("/campaigns/camp", "/campaigns/camp/smtp_credentials/a"):
            theirs = api.request("GET", path, headers=AUTH_B)
            gone = path.replace("campaigns/camp", "campaigns/nope")
            missing = api.request("GET", gone, headers=AUTH_B)
            assert theirs.status == missing.status == 404
            theirs_body = json.loads(theirs.body)
            missing_body = json.loads(missing.body)
            assert theirs_body["error"]["code"] == missing_body["error"]["code"]
            assert theirs_body["error"]["code"] == "campaign_not_found"
            shown = theirs_body["error"]["message"].replace('"camp"', '"nope"')
            assert shown == missing_body["error"]["message"]
        _error("campaign_not_found", api.request("GET", "/campaigns/other", headers=AUTH_A))

    def test_unknown_credential(self, api: Running) -> None:
        """An unknown credential id under a visible campaign: smtp_credential_not_found."""
        reply = api.request("GET", "/campaigns/camp/smtp_credentials/zz", headers=AUTH_A)
        assert reply.status == 404
        assert "zz" in _error("smtp_credential_not_found", reply)
        reply = api.request("GET", "/campaigns/camp/smtp_credentials/e", headers=AUTH_A)
        _error("smtp_credential_not_found", reply)

    def test_unknown_path(self, api: Running) -> None:
        """A path under /campaigns that names nothing is a JSON 404."""
        reply = api.request("GET", "/campaigns/camp/leads", headers=AUTH_A)
        assert reply.status == 404
        _error("not_found", reply)


class TestWrites:
    def test_credential_writes_name_the_file_and_line(self, api: Running) -> None:
        """PATCH, DELETE and reenable get 405 naming the YAML line of the credential."""
        line = api.path.read_text().splitlines().index("      b:") + 1
        base = "/campaigns/camp/smtp_credentials/b"
        for method, path in (("PATCH", base), ("DELETE", base), ("POST", base + "/reenable")):
            reply = api.request(method, path, b'{"smtp_credential": {}}', AUTH_A)
            assert reply.status == 405, (method, path)
            message = _error("method_not_allowed", reply)
            assert f"edit c.yaml:{line} (campaigns.camp.smtp_credentials.b)" in message
            assert (
                "mailopsd reenable camp b --config c.yaml, run in the directory of c.yaml, "
                "writes reenabled_at for you"
            ) in message
        assert api.request("GET", base + "/reenable", headers=AUTH_A).status == 405

    def test_reenable_command_works_as_printed(self, api: Running, tmp_path: Path) -> None:
        """The reenable command a 405 names, run where it says, writes reenabled_at."""
        reply = api.request("POST", "/campaigns/camp/smtp_credentials/b/reenable", b"{}", AUTH_A)
        (command,) = suggested_commands(_error("method_not_allowed", reply))
        home = tmp_path / "home"
        home.mkdir()
        result = run_as_printed(command, cwd=api.path.parent, home=home)
        assert result.returncode == 0, result.stderr
        config = yaml.safe_load(api.path.read_text())
        assert "reenabled_at" in config["campaigns"]["camp"]["smtp_credentials"]["b"]

    def test_campaign_writes(self, api: Running) -> None:
        """POST of a credential names the campaign's line; POST /campaigns the files."""
        reply = api.request("POST", "/campaigns/camp/smtp_credentials", b"{}", AUTH_A)
        assert reply.status == 405
        assert reply.headers["Allow"] == "GET, HEAD"
        assert "edit c.yaml:2 (campaigns.camp)" in _error("method_not_allowed", reply)
        reply = api.request("POST", "/campaigns", b"{}", AUTH_A)
        assert reply.status == 405
        assert "declared in c.yaml" in _error("method_not_allowed", reply)

    def test_writes_check_the_account_first(self, api: Running) -> None:
        """A write to another account's campaign is a 404 like a read, naming no file."""
        reply = api.request("DELETE", "/campaigns/camp/smtp_credentials/a", headers=AUTH_B)
        assert reply.status == 404
        assert "c.yaml" not in _error("campaign_not_found", reply)
        reply = api.request("PATCH", "/campaigns/camp/smtp_credentials/a", b"{}")
        assert reply.status == 401
