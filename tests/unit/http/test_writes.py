"""The API's writes as read from a request: fields checked, ids made, nothing secret shown."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from mailopsd.errors import ConfigIssue
from mailopsd.http.writes import (
    Kind,
    WriteRefused,
    credential_id_for,
    field_errors,
    read_request,
)

PASSWORD = "canary-Kq7mX2pL9wR4tV8nB3sJ"  # noqa: S105 - a canary, strong enough
LOGIN = "login-canary@example.com"
NEW = {
    "label": "Backup",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "smtp_username": LOGIN,
    "smtp_password": PASSWORD,
    "from_name": "Ada",
    "from_email": "ada@example.com",
    "daily_limit": 100,
}


def _body(fields: object) -> bytes:
    return json.dumps({"smtp_credential": fields}).encode()


def _refused(kind: Kind, body: bytes) -> WriteRefused:
    with pytest.raises(WriteRefused) as caught:
        read_request(kind, "camp", None if kind is Kind.ADD else "a", body)
    return caught.value


def _errors(refused: WriteRefused) -> dict[str, str]:
    assert (refused.status, refused.code) == ("422 Unprocessable Content", "validation_failed")
    return {error.field: error.message for error in refused.errors}


class TestReadRequest:
    def test_a_new_credential(self) -> None:
        """Every field kept in the API's order; the login and password as secrets."""
        request = read_request(Kind.ADD, "camp", None, _body(NEW))
        assert list(request.fields) == list(NEW)
        assert isinstance(request.fields["smtp_password"], SecretStr)
        assert isinstance(request.fields["smtp_username"], SecretStr)
        assert request.fields["daily_limit"] == 100
        assert PASSWORD not in repr(request)
        assert LOGIN not in repr(request)

    def test_not_json(self) -> None:
        refused = _refused(Kind.ADD, b"{not json")
        assert (refused.status, refused.code) == ("400 Bad Request", "invalid_json")

    @pytest.mark.parametrize("body", [b"", b"[]", b'{"daily_limit": 5}', b'{"smtp_credential": 5}'])
    def test_the_envelope_is_required(self, body: bytes) -> None:
        assert _errors(_refused(Kind.UPDATE, body)) == {
            "smtp_credential": 'required: send {"smtp_credential": {…}} with the fields'
        }

    def test_each_field_problem_is_listed(self) -> None:
        """Missing, unknown, of the wrong type: one error each."""
        body = json.dumps({"smtp_credential": {"smtp_port": "587", "colour": "red"}, "x": 1})
        errors = _errors(_refused(Kind.ADD, body.encode()))
        assert errors["x"] == "not a field of a request"
        assert errors["colour"].startswith("not a credential field (fields: label, smtp_host,")
        assert errors["smtp_port"] == "must be an integer"
        assert errors["daily_limit"] == "required"
        assert "label" not in errors  # optional

    @pytest.mark.parametrize(("name", "value"), [("daily_limit", True), ("from_name", 5)])
    def test_json_types(self, name: str, value: object) -> None:
        errors = _errors(_refused(Kind.UPDATE, _body({name: value})))
        assert errors == {
            name: "must be an integer" if name == "daily_limit" else "must be a string"
        }

    @pytest.mark.parametrize("field", ["smtp_password", "imap_password"])
    def test_a_weak_password_is_refused_unquoted(self, field: str) -> None:
        refused = _refused(Kind.UPDATE, _body({field: "Summer2024!"}))
        message = _errors(refused)[field]
        assert message.startswith("about ")
        assert "bits of estimated entropy, under 64" in message
        assert "Summer2024!" not in json.dumps(refused.body())

    def test_a_change_may_remove_optional_fields_only(self) -> None:
        request = read_request(Kind.UPDATE, "camp", "a", _body({"imap_host": None}))
        assert request.fields == {"imap_host": None}
        errors = _errors(_refused(Kind.UPDATE, _body({"daily_limit": None})))
        assert errors == {"daily_limit": "required: it cannot be removed"}
        assert _errors(_refused(Kind.UPDATE, _body({}))) == {
            "smtp_credential": "no field to change"
        }

    def test_delete_and_reenable_read_no_body(self) -> None:
        assert read_request(Kind.DELETE, "camp", "a", b"junk").fields == {}
        assert read_request(Kind.REENABLE, "camp", "a", b"").kind is Kind.REENABLE


class TestDescribe:
    def test_the_commit_message_shows_the_request_without_secrets(self) -> None:
        request = read_request(Kind.ADD, "camp", None, _body(NEW))
        message = request.describe("POST", "/campaigns/camp/smtp_credentials", "backup")
        title, blank, line, fields = message.splitlines()
        assert title == "Add SMTP credential camp/backup"
        assert (blank, line) == ("", "POST /campaigns/camp/smtp_credentials")
        shown = json.loads(fields)["smtp_credential"]
        assert shown["smtp_password"] == shown["smtp_username"] == "(set, not shown)"  # noqa: S105
        assert shown["daily_limit"] == 100
        assert PASSWORD not in message
        assert LOGIN not in message


class TestCredentialId:
    @pytest.mark.parametrize(
        ("fields", "taken", "expected"),
        [
            ({"label": "Backup relay"}, [], "backup-relay"),
            ({"label": "Backup relay"}, ["backup-relay", "backup-relay-2"], "backup-relay-3"),
            ({"label": "  Zoë's  box!! "}, [], "zoe-s-box"),
            ({"label": None, "from_email": "ada.lovelace@example.com"}, [], "ada-lovelace"),
            ({"label": "✉✉"}, ["credential"], "credential-2"),
            ({"label": "x" * 80}, ["x" * 63], "x" * 61 + "-2"),
        ],
    )
    def test_slug_of_the_label_unique(
        self, fields: dict[str, object], taken: list[str], expected: str
    ) -> None:
        assert credential_id_for(fields, taken) == expected


def test_config_errors_name_the_request_fields() -> None:
    """An issue under the written credential names its field; another its file and place."""
    path = "campaigns.camp.smtp_credentials.backup"
    issues = [
        ConfigIssue(
            "/state/git/write/clone/mailops/c.yaml", 18, 22, f"{path}.daily_limit", "must be ≥ 1"
        ),
        ConfigIssue("/state/git/write/clone/mailops/d.yaml", 3, 5, "campaigns.other.name", "bad"),
    ]
    errors = field_errors(issues, path, lambda file: file.removeprefix("/state/git/write/clone/"))
    assert [error.as_dict() for error in errors] == [
        {"field": "daily_limit", "message": "must be ≥ 1"},
        {
            "field": "campaigns.other.name",
            "message": "mailops/d.yaml:3:5: campaigns.other.name: bad",
        },
    ]
