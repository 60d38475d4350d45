"""The OpenAPI 3.1 description of the read-only credentials API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Final

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
_NOT_ALLOWED: dict[str, object] = {
    "405": _error("The API is read-only: the message names the file to edit.")
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


def _refused(summary: str, missing: dict[str, object]) -> dict[str, object]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {**_COMMON, **missing, **_NOT_ALLOWED},
    }


_NULLABLE_STRING = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}

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
            "id": {"type": "string"},
            "label": _NULLABLE_STRING,
            "from_email": {"type": "string"},
            "from_name": {"type": "string"},
            "smtp_host": {"type": "string"},
            "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "daily_limit": {"type": "integer", "minimum": 1},
            "reply_detection": {"type": "boolean"},
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
        "description": "Read-only: campaigns and SMTP credentials come from the config files. "
        "Writes answer 405 with the file and line to edit instead.",
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
            "post": _refused("Not served: add the credential to the config file.", _NO_CAMPAIGN),
        },
        "/campaigns/{campaign_id}/smtp_credentials/{id}": {
            "parameters": [_CAMPAIGN_ID, _CREDENTIAL_ID],
            "get": _read("One SMTP credential.", "SmtpCredential", _NO_CREDENTIAL),
            "patch": _refused(
                "Not served: edit the credential in the config file.", _NO_CREDENTIAL
            ),
            "delete": _refused(
                "Not served: remove the credential from the config file.", _NO_CREDENTIAL
            ),
        },
        "/campaigns/{campaign_id}/smtp_credentials/{id}/reenable": {
            "parameters": [_CAMPAIGN_ID, _CREDENTIAL_ID],
            "post": _refused(
                "Not served: run mailopsd reenable, which writes reenabled_at.", _NO_CREDENTIAL
            ),
        },
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
