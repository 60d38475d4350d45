"""Which bounce reasons count toward a campaign's bounce rate, and which toward its block rate.

A campaign may name them (``bounce_reasons``, ``block_reasons``); each list left out is
its class's reasons: every hard bounce counts toward the bounce rate (the hard-class
reasons, and ``notaccept``, ``onhold``, ``undefined`` when the failure was permanent),
every block toward the block rate, less what the other list names. A reason counts
toward one rate at most. The three reasons whose class follows the status code count,
when listed, only when the failure was permanent (recorded ``hard``): a transient one
says nothing yet. A bounce recorded before reasons were kept counts by its class, as it
did; an unconfirmed one never counts.

Pure: :func:`counted_reasons` is what the schema and the ledger's readers (status, from
a campaign's snapshot) build the lists with, :meth:`CountedReasons.rate_of` what a check
inside a batch asks of one refusal, and :func:`reason_list` checks a configured list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailopsd.config import suggest
from mailopsd.config.scalars import describe, failure
from mailopsd.diagnosis import BY_CLASS, BY_CODE, CLASSES, Reason, parse_reason
from mailopsd.lifecycle import MailKind

__all__ = [
    "DEFAULT_BLOCKS",
    "DEFAULT_BOUNCES",
    "FAILURE_REASONS",
    "CountedReasons",
    "Rate",
    "counted_reasons",
    "reason_list",
]

FAILURE_REASONS = tuple(
    reason for reason in Reason if reason in BY_CODE or CLASSES[reason] in BY_CLASS
)
"""The reasons a bounce can have (not ``vacation``, ``feedback``, ``delivered``)."""
DEFAULT_BOUNCES = (*BY_CLASS[MailKind.HARD], *sorted(BY_CODE))
"""What counts toward the bounce rate by default: every hard bounce."""
DEFAULT_BLOCKS = BY_CLASS[MailKind.BLOCK]
"""What counts toward the block rate by default: every block."""
_EXAMPLE = "a list of reasons such as [userunknown, hostunknown]"


class Rate(StrEnum):
    """The rate a bounce counts toward."""

    BOUNCE = "bounce"
    BLOCK = "block"


@dataclass(frozen=True)
class CountedReasons:
    """The reasons counted toward a campaign's bounce rate and toward its block rate."""

    bounces: tuple[Reason, ...] = DEFAULT_BOUNCES
    blocks: tuple[Reason, ...] = DEFAULT_BLOCKS

    @property
    def bounces_are_default(self) -> bool:
        """Whether the bounce rate counts every hard bounce (and nothing else)."""
        return set(self.bounces) == set(DEFAULT_BOUNCES)

    @property
    def blocks_are_default(self) -> bool:
        """Whether the block rate counts every block (and nothing else)."""
        return set(self.blocks) == set(DEFAULT_BLOCKS)

    def rate_of(self, reason: Reason, kind: MailKind) -> Rate | None:
        """The rate a confirmed bounce of ``reason`` and ``kind`` counts toward, if any."""
        if reason in BY_CODE and kind != MailKind.HARD:
            return None
        if reason in self.bounces:
            return Rate.BOUNCE
        return Rate.BLOCK if reason in self.blocks else None


def counted_reasons(
    bounces: Iterable[str] | None = None, blocks: Iterable[str] | None = None
) -> CountedReasons:
    """The counted reasons of a campaign that names ``bounces`` and ``blocks`` (or not).

    A list left out (``None``) is its default less the reasons the other names. Words
    that name no reason are skipped (the schema refuses them; a snapshot is read as is).
    """
    named_bounces = None if bounces is None else _reasons(bounces)
    named_blocks = None if blocks is None else _reasons(blocks)
    if named_bounces is None:
        named_bounces = tuple(r for r in DEFAULT_BOUNCES if r not in (named_blocks or ()))
    if named_blocks is None:
        named_blocks = tuple(r for r in DEFAULT_BLOCKS if r not in named_bounces)
    return CountedReasons(named_bounces, named_blocks)


def _reasons(words: Iterable[str]) -> tuple[Reason, ...]:
    found = (parse_reason(word) for word in words)
    return tuple(reason for reason in found if reason is not None)


def reason_list(value: object) -> tuple[Reason, ...]:
    """Check a configured list of reasons: known failure reasons, each once.

    Raises:
        PydanticCustomError: It is not a non-empty list of such words; an unknown word
            is named, with the reason it most likely meant, at its place in the list.
    """
    if not isinstance(value, list | tuple):
        raise failure(f"must be {_EXAMPLE} (got {describe(value)})")
    if not value:
        raise failure(f"must name at least one reason: {_EXAMPLE}, or leave it out")
    reasons: list[Reason] = []
    for index, word in enumerate(value):
        reason = _reason(word)
        if reason is None or reason not in FAILURE_REASONS:
            raise failure(_unknown(word), field=str(index))
        if reason in reasons:
            raise failure(f"lists {reason} twice", field=str(index))
        reasons.append(reason)
    return tuple(reasons)


def _reason(word: object) -> Reason | None:
    """The reason ``word`` is, exactly as written (``None``: none)."""
    if not isinstance(word, str):
        return None
    try:
        return Reason(word)
    except ValueError:
        return None


def _unknown(word: object) -> str:
    """Why ``word`` is no reason to count, and what it may have meant."""
    if _reason(word) is not None:
        return (
            f"{word} is not a reason a message fails for (vacation, feedback and delivered "
            "are never bounces): use a reason such as userunknown or spamdetected"
        )
    hint = suggest.did_you_mean(word, FAILURE_REASONS) if isinstance(word, str) else None
    known = ", ".join(FAILURE_REASONS)
    return f"unknown reason {describe(word)}; " + (hint or f"the reasons are: {known}")
