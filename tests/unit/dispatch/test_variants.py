"""Which variant each lead is given: by weight, the same in every process, and kept."""

from __future__ import annotations

from collections import Counter

from mailopsd.config.models import Campaign
from mailopsd.dispatch.variants import assigned, draw
from tests.configs import campaign_model


def _campaign(step1: dict[str, object], step2: dict[str, object] | None = None) -> Campaign:
    sequence = [
        {"subject": "S", "body": "B", **step1},
        {"delay": "1 day", "body": "F", **(step2 or {})},
    ]
    return campaign_model(sequence=sequence, credential={"daily_limit": 10})


ADDRESSES = [f"lead{i}@example.net" for i in range(4000)]


def test_weights_share_the_leads() -> None:
    """Weights 3:1 give about three leads in four the first variant."""
    campaign = _campaign({"variants": {"a": {"weight": 3, "body": "x"}, "b": {"body": "y"}}})
    variants = campaign.sequence[0].variants
    assert variants is not None
    shares = Counter(draw("camp", 1, variants, email) for email in ADDRESSES)
    assert 2850 <= shares["a"] <= 3150
    assert shares["a"] + shares["b"] == 4000


def test_the_draw_depends_on_campaign_step_and_lead_only() -> None:
    """The same lead gets the same variant again; another step or campaign draws anew."""
    campaign = _campaign({"variants": {"a": {"body": "x"}, "b": {"body": "y"}}})
    variants = campaign.sequence[0].variants
    assert variants is not None
    first = [draw("camp", 1, variants, email) for email in ADDRESSES[:200]]
    assert first == [draw("camp", 1, variants, email) for email in ADDRESSES[:200]]
    assert first != [draw("other", 1, variants, email) for email in ADDRESSES[:200]]
    assert first != [draw("camp", 2, variants, email) for email in ADDRESSES[:200]]


def test_entering_the_sequence_gives_every_step_a_variant() -> None:
    """A new lead gets a variant of each step that has them; steps without none."""
    campaign = _campaign(
        {"variants": {"a": {"body": "x"}, "b": {"body": "y"}}},
        {"variants": {"x": {"body": "x"}, "y": {"body": "y"}}},
    )
    versions = assigned("camp", campaign, ADDRESSES[0], {}, 0)
    assert set(versions) == {"1", "2"}
    assert versions["2"] in ("x", "y")


def test_a_removed_variant_gives_way_to_the_first_left_for_steps_not_sent() -> None:
    """A lead keeps what it was sent; a step still to come moves to the first variant left."""
    campaign = _campaign(
        {"variants": {"a": {"body": "x"}}},
        {"variants": {"x": {"body": "x"}, "z": {"body": "z"}}},
    )
    given = {"1": "b", "2": "y"}
    assert assigned("camp", campaign, ADDRESSES[0], given, 1) == {"1": "b", "2": "x"}
    assert assigned("camp", campaign, ADDRESSES[0], {"1": "a", "2": "z"}, 1) == {
        "1": "a",
        "2": "z",
    }


def test_a_step_that_lost_its_variants_is_sent_as_the_step() -> None:
    """A step whose variants were all removed has no variant for leads not yet sent it."""
    campaign = _campaign({})
    assert assigned("camp", campaign, ADDRESSES[0], {"1": "a", "2": "y"}, 1) == {"1": "a"}
