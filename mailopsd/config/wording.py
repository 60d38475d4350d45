"""Pydantic's validation errors, worded for a person and located in the config files.

Our own validators raise their final text (``failure``); pydantic's built-in errors
(missing field, unknown field, wrong container type) are reworded here, with a
suggestion for a mistyped field name, and each error is placed at the file, line and
column its value came from. A secret's value is never shown. Pure.
"""

from __future__ import annotations

import difflib
import types
import typing

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mailopsd.config.models import SECRET_FIELDS, Config
from mailopsd.config.origins import Loc, Merge
from mailopsd.config.scalars import describe
from mailopsd.errors import ConfigIssue

__all__ = ["validation_issues"]

_TYPE_MESSAGES = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "bool_type": "true or false",
}


def validation_issues(err: ValidationError, merge: Merge) -> list[ConfigIssue]:
    """Word each error of a validation and place it in the file its value came from.

    Args:
        err: The errors of validating ``merge.data``.
        merge: The merged tree and the file of each part of it.

    Returns:
        One issue per error, in pydantic's order; a value sealed by SOPS where
        ``--no-decrypt`` cannot check it gives none (the loader says so once).
    """
    issues = []
    errors = err.errors(include_url=False)
    for error in errors:
        if _follows_from_items(error, errors):
            continue
        loc: list[str | int] = list(error["loc"])
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc.pop()
        extra = (error.get("ctx") or {}).get("field")
        if extra:
            loc += [int(step) if step.isdigit() else step for step in str(extra).split(".")]
        source = merge.source_for(loc)
        if tuple(error["loc"]) in source.sealed_elsewhere:
            continue
        at_key = is_key or error["type"] in ("missing", "extra_forbidden")
        issues.append(source.issue(loc, _message(error, loc), key=at_key))
    return issues


def _follows_from_items(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """Tell whether ``error`` is a list found too short only because items of it failed.

    Pydantic counts a list's valid items: one item in error leaves ``sequence: [...]``
    "too short" besides the item's own error, which says all there is to say.
    """
    if error["type"] != "too_short":
        return False
    loc = tuple(error["loc"])
    return any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "mailopsd":
        return str(context["message"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field_message(loc)
    if kind == "too_short":
        return "must not be empty"
    if kind in _TYPE_MESSAGES:
        shown = "value not shown" if loc and loc[-1] in SECRET_FIELDS else None
        return f"must be {_TYPE_MESSAGES[kind]} (got {shown or describe(error['input'])})"
    return error["msg"]


def _unknown_field_message(loc: Loc) -> str:
    name = str(loc[-1])
    if name == "<<":
        return "merge keys (<<) are not supported: sops keeps them as ordinary keys"
    close = difflib.get_close_matches(name, _fields_at(loc[:-1]), n=1, cutoff=0.6)
    return f"unknown field; did you mean {close[0]}?" if close else "unknown field"


def _fields_at(loc: Loc) -> list[str]:
    """Return the field names of the model found at ``loc`` (for suggestions)."""
    annotation: object = Config
    for step in loc:
        inner = _unwrap(annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            if str(step) not in inner.model_fields:
                return []
            annotation = inner.model_fields[str(step)].annotation
        elif typing.get_origin(inner) in (dict, tuple):
            annotation = typing.get_args(inner)[-1 if typing.get_origin(inner) is dict else 0]
        else:
            return []
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return list(inner.model_fields)
    return []


def _unwrap(annotation: object) -> object:
    """Strip ``Annotated`` and ``| None`` from a field annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0]
        else:
            return annotation
