"""Counts for the reliability suite: small by default, the full ones on request.

``MAILOPSD_RELIABILITY=full`` runs every test at the counts written down in
``docs/reliability.md``; ``MAILOPSD_SEED`` replays a seeded run.
"""

from __future__ import annotations

import os
import random

FULL = os.environ.get("MAILOPSD_RELIABILITY", "") == "full"


def count(default: int, full: int) -> int:
    """``default`` in the ordinary suite, ``full`` with ``MAILOPSD_RELIABILITY=full``."""
    return full if FULL else default


def seeded(name: str) -> random.Random:
    """A generator seeded from ``MAILOPSD_SEED`` or at random; the seed is printed."""
    seed = int(os.environ.get("MAILOPSD_SEED", str(random.SystemRandom().randrange(10**6))))
    print(f"{name}: seed={seed} (MAILOPSD_SEED={seed} replays it)")
    return random.Random(seed)
