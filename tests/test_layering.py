"""Pure modules stay pure: no sockets, databases, subprocesses or environment reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mailopsd"
PURE = [
    "reconcile.py",
    "dispatch/rotation.py",
    "dispatch/windows.py",
    "dispatch/compose.py",
    "inbox/policy.py",
    "inbox/classify/__init__.py",
    "inbox/classify/codes.py",
    "inbox/classify/decision.py",
    "inbox/classify/freetext.py",
    "inbox/classify/limits.py",
    "inbox/classify/model.py",
    "inbox/classify/phrases.py",
    "inbox/classify/reader.py",
    "inbox/classify/reports.py",
    "inbox/classify/rules.py",
    "config/models.py",
    "config/scalars.py",
    "config/origins.py",
    "config/wording.py",
    "config/cache.py",
    "config/periods.py",
    "config/addresses.py",
    "config/templates.py",
    "goyaml.py",
    "errors.py",
    "refs.py",
    "clock.py",
    "backoff.py",
    "lifecycle.py",
    "http/tokens.py",
    "http/apikeys.py",
]
FORBIDDEN_IMPORTS = {"socket", "smtplib", "imaplib", "sqlite3", "subprocess", "ssl", "asyncio"}
ENVIRONMENT_READERS = {
    "cli/__init__.py",
    "cli/common.py",
    "cli/commands.py",
    "cli/secrets.py",
    "daemon/loop.py",
}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    """A pure module imports no network, database or process module."""
    tree = ast.parse((PACKAGE / module).read_text())
    assert _imports(tree) & FORBIDDEN_IMPORTS == set()


def test_only_entry_points_read_environment() -> None:
    """Only the entry points read os.environ; everything else gets values passed in."""
    readers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                readers.append(str(path.relative_to(PACKAGE)))
    assert set(readers) <= ENVIRONMENT_READERS


def test_only_the_state_package_speaks_sql() -> None:
    """Only mailopsd/state imports sqlite3: everything else goes through its repositories."""
    importers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "sqlite3" in _imports(ast.parse(path.read_text()))
    ]
    assert importers
    assert all(name.startswith("state/") for name in importers), importers
