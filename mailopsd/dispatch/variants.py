"""Which version of a step each lead is given (A/B/n variants).

A lead is given a version of every step that has variants when it enters the sequence
(when its step 1 is composed), and keeps it: the versions are written with the lead.
The choice is a weighted draw keyed by the campaign, the step number and the lead's
address, so the same config and lead give the same version in every process, before
and after a restart or a reload. A step that gains variants later is drawn the same way
when it is first due. A version removed from the config is replaced, for the steps the
lead has still to be sent, by the step's first remaining version; what was sent stays
as it was sent. No I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from mailopsd.config.models import Campaign, Variant

__all__ = ["assigned", "draw"]


def draw(campaign_id: str, number: int, variants: Mapping[str, Variant], email: str) -> str:
    """The version of step ``number`` (1-based) a lead is given, by weight, reproducibly."""
    total = sum(variant.weight for variant in variants.values())
    digest = hashlib.sha256(f"{campaign_id}\0{number}\0{email}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name, variant in variants.items():
        if point < variant.weight:
            return name
        point -= variant.weight
    raise AssertionError("a point below the total weight falls on a version")  # pragma: no cover


def assigned(
    campaign_id: str, campaign: Campaign, email: str, given: Mapping[str, str], sent: int
) -> dict[str, str]:
    """A lead's versions, by step number, for the steps after the ``sent`` ones.

    Versions of steps already sent are kept as recorded; for each later step with
    variants, the version given is kept while the config still declares it, replaced by
    the step's first version if it was removed, and drawn if the lead has none yet; a
    later step that no longer has variants has no version.

    Args:
        campaign_id: The lead's campaign.
        campaign: The campaign as configured now.
        email: The lead's address (its key).
        given: The versions recorded with the lead.
        sent: How many steps the lead was sent.
    """
    versions = dict(given)
    for number, step in enumerate(campaign.sequence[sent:], start=sent + 1):
        if not step.variants:  # the step has (now) no variants: sent as the step is
            versions.pop(str(number), None)
            continue
        kept = versions.get(str(number))
        if kept in step.variants:
            continue
        versions[str(number)] = (
            next(iter(step.variants))
            if kept is not None
            else draw(campaign_id, number, step.variants, email)
        )
    return versions
