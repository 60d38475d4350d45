"""Only the entry points read the environment.

Which package may import which, and that the functional core imports no I/O, are import
contracts (``[tool.importlinter]`` in pyproject.toml), checked by ``lint-imports``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mailopsd"
ENVIRONMENT_READERS = {
    "cli/__init__.py",
    "cli/common.py",
    "cli/commands.py",
    "cli/secrets.py",
    "daemon/loop.py",
}


def test_only_entry_points_read_environment() -> None:
    """Only the entry points read os.environ; everything else gets values passed in."""
    readers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(str(path.relative_to(PACKAGE)))
    assert set(readers) <= ENVIRONMENT_READERS
