"""DKIM selectors named in the config: each a DNS name, the list without repeats.

A selector is the name a signer's public key is published under, at
``<selector>._domainkey.<domain>`` (RFC 6376 3.6.2.1): one or more DNS labels of
letters, digits and hyphens, separated by dots. mailopsd signs nothing itself (the SMTP
provider does); ``mailopsd doctor`` looks these keys up. Each selector is checked on its
own, so that an error points at the list item; a repeat points at the second one. Pure.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer, PlainValidator

from mailopsd.config.scalars import describe, failure

__all__ = ["DkimSelector", "DkimSelectors"]

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_EXAMPLE = "such as google, selector1 or s2048.mail"


def _selector(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise failure(f"must be a DKIM selector, a DNS name {_EXAMPLE} (got {describe(value)})")
    if not all(_LABEL.match(label) for label in value.split(".")):
        raise failure(
            "must be a DKIM selector: DNS labels of letters, digits and hyphens "
            f"separated by dots, {_EXAMPLE} (got {describe(value)})"
        )
    return value


def _no_repeats(selectors: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for index, selector in enumerate(selectors):
        folded = selector.lower()  # DNS names ignore case
        if folded in seen:
            raise failure(f"lists the selector {selector} twice", field=str(index))
        seen.add(folded)
    return selectors


DkimSelector = Annotated[str, PlainValidator(_selector)]
DkimSelectors = Annotated[
    tuple[DkimSelector, ...],
    AfterValidator(_no_repeats),
    PlainSerializer(list, return_type=list[str]),
]
