"""Fixtures of the remote's tests: an Upstream per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.remote.upstream import Upstream


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """A fresh remote, with a work repository to push to it."""
    return Upstream(tmp_path)
