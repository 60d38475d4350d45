"""The OpenAPI 3.1 description of the credentials API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Final

from mailopsd.http.writes import REQUIRED

__all__ = ["OPENAPI"]

_JSON = "application/json"


def _ref(name: str) -> dict[str, object]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: str) -> dict[str, object]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _error(description: str) -> dict[str, object]:
    return _ok(description, "Error")


def _param(name: str, description: str) -> dict[str, object]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
    }


_CAMPAIGN_ID = _param("campaign_id", "Campaign id (its key under campaigns:).")
_CREDENTIAL_ID = _param("id", "Credential id (its key under smtp_credentials:).")
_COMMON: dict[str, object] = {
    "401": _error("Missing or unknown API key."),
    "503": _error("Not ready."),
}
_NO_CAMPAIGN: dict[str, object] = {
    "404": _error("campaign_not_found: unknown, or another account's.")
}
_NO_CREDENTIAL: dict[str, object] = {
    "404": _error("campaign_not_found or smtp_credential_not_found.")
}


def _read(summary: str, schema: str, missing: dict[str, object]) -> dict[str, object]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {"200": _ok(summary, schema), **_COMMON, **missing},
    }


_WRITE_ERRORS: dict[str, object] = {
    "202": _ok(
        "Pushed, not applied yet: to a review branch (api.write: branch), or the "
        "daemon did not run on the commit within its wait.",
        "Pushed",
    ),
    "400": _error("invalid_json: the body is not JSON."),
    "403": _error("forbidden: the API key's scope is read."),
    "405": _error(
        "Writes are off (api.write), or the daemon follows no git remote: the "
        "message names the file to edit."
    ),
    "409": _error(
        "conflict (another push changed the same lines: error.commit is the commit "
        "it lost to), shared_mailbox, or not_editable (a layout whose text cannot be kept)."
    ),
    "422": _ok("validation_failed: error.errors lists each field's problem.", "Error"),
    "500": _error("not_applied (pushed, refused by the daemon) or secret_error."),
    "502": _error("remote_error: the git remote cannot be fetched or pushed to; nothing changed."),
}


def _write(
    summary: str,
    success: dict[str, object],
    missing: dict[str, object],
    body: str | None = None,
) -> dict[str, object]:
    operation: dict[str, object] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {**success, **_WRITE_ERRORS, **_COMMON, **missing},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": _ref(body)}}}
    return operation


_NULLABLE_STRING = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string", "minLength": 1}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_SECRET = {
    "type": "string",
    "writeOnly": True,
    "description": "Sealed in the config file; never returned. A new password needs at "
    "least 64 bits of estimated entropy.",
}
_INPUT: dict[str, object] = {
    "label": {"type": ["string", "null"], "description": "Display name; a new id is its slug."},
    "smtp_host": _TEXT,
    "smtp_port": _PORT,
    "smtp_username": {**_SECRET, "description": "Sealed in the config file; never returned."},
    "smtp_password": _SECRET,
    "from_name": _TEXT,
    "from_email": {"type": "string", "format": "email"},
    "daily_limit": {"type": "integer", "minimum": 1},
    "imap_host": {"type": ["string", "null"]},
    "imap_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    "imap_username": {
        "type": ["string", "null"],
        "writeOnly": True,
        "description": "Sealed in the config file; never returned.",
    },
    "imap_password": {**_SECRET, "type": ["string", "null"]},
}

_WRITTEN: dict[str, object] = {
    "id": {"type": "string"},
    "label": _NULLABLE_STRING,
    "from_email": {"type": "string"},
    "from_name": {"type": "string"},
    "smtp_host": {"type": "string"},
    "smtp_port": _PORT,
    "daily_limit": {"type": "integer", "minimum": 1},
    "reply_detection": {"type": "boolean"},
}
"""A credential's public fields, as reads and writes answer them."""


def _envelope(**rules: object) -> dict[str, object]:
    """A write's body: ``{"smtp_credential": {…}}``, the credential with ``rules``."""
    credential = {"type": "object", **rules, "properties": _INPUT, "additionalProperties": False}
    return {
        "type": "object",
        "required": ["smtp_credential"],
        "properties": {"smtp_credential": credential},
        "additionalProperties": False,
    }


_SCHEMAS: dict[str, object] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Campaign": {
        "type": "object",
        "required": ["id", "name", "timezone", "bounce_threshold", "bounce_window"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "timezone": {"type": "string"},
            "bounce_threshold": {"type": "number"},
            "bounce_window": {"type": "string"},
            "smtp_credentials": {"type": "array", "items": {"type": "string"}},
        },
    },
    "CampaignList": {
        "type": "object",
        "required": ["campaigns"],
        "properties": {"campaigns": {"type": "array", "items": _ref("Campaign")}},
    },
    "SmtpCredential": {
        "type": "object",
        "description": "Never holds the SMTP username or password.",
        "required": [
            "id",
            "from_email",
            "from_name",
            "smtp_host",
            "smtp_port",
            "daily_limit",
            "status",
            "disabled_at",
        ],
        "properties": {
            **_WRITTEN,
            "mailbox": {
                **_NULLABLE_STRING,
                "description": "The shared mailbox (top-level mailboxes) it names, if any: "
                "its fields, daily limit and disable are those of the mailbox, in every "
                "campaign that names it.",
            },
            "status": {"enum": ["enabled", "disabled"]},
            "disabled_at": {**_NULLABLE_STRING, "format": "date-time"},
            "sends_today": _COUNT,
            "followups_today": _COUNT,
            "bounce_rate": {"type": ["number", "null"], "minimum": 0},
            "sends_in_window": _COUNT,
            "bounces_in_window": _COUNT,
        },
    },
    "SmtpCredentialFields": {
        "type": "object",
        "description": "A credential as written; never holds the SMTP username or password.",
        "required": ["id", "from_email", "from_name", "smtp_host", "smtp_port", "daily_limit"],
        "properties": _WRITTEN,
    },
    "NewSmtpCredential": _envelope(required=list(REQUIRED)),
    "SmtpCredentialChange": _envelope(minProperties=1),
    "Reenabled": {
        "type": "object",
        "required": ["id", "from_email", "status"],
        "properties": {
            "id": {"type": "string"},
            "from_email": {"type": "string"},
            "status": {"const": "enabled"},
        },
    },
    "Pushed": {
        "type": "object",
        "required": ["status", "commit", "branch"],
        "properties": {
            "id": _NULLABLE_STRING,
            "status": {"const": "pushed"},
            "commit": {"type": "string", "pattern": "^[0-9a-f]{40,64}$"},
            "branch": {"type": "string"},
        },
    },
    "SmtpCredentialList": {
        "type": "object",
        "required": ["smtp_credentials"],
        "properties": {"smtp_credentials": {"type": "array", "items": _ref("SmtpCredential")}},
    },
}

OPENAPI: Final[dict[str, object]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mailopsd credentials API",
        "version": "1",
        "description": "Campaigns and SMTP credentials come from the config files, kept in "
        "git. Writes are off by default (405 with the file to edit). With api.write and a "
        "daemon that follows a git remote, a key of scope write adds, changes, deletes and "
        "re-enables credentials by commits pushed to that remote.",
    },
    "paths": {
        "/campaigns": {
            "get": _read("The key's account's campaigns.", "CampaignList", {}),
        },
        "/campaigns/{campaign_id}": {
            "parameters": [_CAMPAIGN_ID],
            "get": _read("One campaign.", "Campaign", _NO_CAMPAIGN),
        },
        "/campaigns/{campaign_id}/smtp_credentials": {
            "parameters": [_CAMPAIGN_ID],
            "get": _read("A campaign's SMTP credentials.", "SmtpCredentialList", _NO_CAMPAIGN),
            "post": _write(
                "Add a credential to a campaign; its id is its label's slug.",
                {"201": _ok("Added and applied.", "SmtpCredentialFields")},
                _NO_CAMPAIGN,
                "NewSmtpCredential",
            ),
        },
        "/campaigns/{campaign_id}/smtp_credentials/{id}": {
            "parameters": [_CAMPAIGN_ID, _CREDENTIAL_ID],
            "get": _read("One SMTP credential.", "SmtpCredential", _NO_CREDENTIAL),
            "patch": _write(
                "Change a credential's fields (null removes an optional one).",
                {"200": _ok("Changed and applied.", "SmtpCredentialFields")},
                _NO_CREDENTIAL,
                "SmtpCredentialChange",
            ),
            "delete": _write(
                "Delete a credential.",
                {"204": {"description": "Deleted and applied."}},
                _NO_CREDENTIAL,
            ),
        },
        "/campaigns/{campaign_id}/smtp_credentials/{id}/reenable": {
            "parameters": [_CAMPAIGN_ID, _CREDENTIAL_ID],
            "post": _write(
                "Re-enable an auto-disabled credential: sets reenabled_at.",
                {"200": _ok("Re-enabled and applied.", "Reenabled")},
                _NO_CREDENTIAL,
            ),
        },
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
