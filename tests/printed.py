"""Commands that mailopsd's messages suggest, run as a person would paste them into a shell."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from mailopsd import cli

REPO = Path(__file__).resolve().parents[1]

# A command in a message ends where the sentence goes on: at a comma, a parenthesis, a
# semicolon or the end of the line (paths in tests have none of these).
_COMMAND = re.compile(r"mailopsd ([a-z]+)[^,;()\n]*")


def suggested_commands(text: str) -> list[str]:
    """Every ``mailopsd COMMAND …`` command line in ``text``, as printed."""
    commands = cli_commands()
    return [
        found.group(0).strip() for found in _COMMAND.finditer(text) if found.group(1) in commands
    ]


def cli_commands() -> set[str]:
    """The commands ``mailopsd --help`` lists."""
    parser = cli._build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def names_a_key_or_config(variable: str) -> bool:
    """Tell whether an environment variable could lead mailopsd to a key, config or state."""
    return variable.startswith(("MAILOPSD_", "SOPS_")) or variable in (
        "CREDENTIALS_DIRECTORY",
        "STATE_DIRECTORY",
        "XDG_CONFIG_HOME",
    )


def clean_environment(home: Path) -> dict[str, str]:
    """This process's environment with ``home`` as $HOME and nothing naming a key."""
    env = {name: value for name, value in os.environ.items() if not names_a_key_or_config(name)}
    env["HOME"] = str(home)
    return env


def run_as_printed(command: str, *, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` through /bin/sh, ``mailopsd`` being this checkout's program.

    The shell expands ``~`` and unquotes paths as it would for a person; ``home`` is
    $HOME, and nothing in the environment points at a key.
    """
    bin_dir = home / ".mailopsd-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "mailopsd"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m mailopsd "$@"\n')
    shim.chmod(0o755)
    env = clean_environment(home)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=60,
    )
