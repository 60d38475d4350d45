"""The ``mailopsd`` command line: parses arguments, configures output, maps errors to exit codes.

Exit codes: 0 ok, 1 the command's check failed (``validate`` found errors), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mailopsd import __version__
from mailopsd.config import loader
from mailopsd.errors import ConfigError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger(__name__)


def _default_config_path() -> Path:
    return Path(os.environ.get("MAILOPSD_CONFIG") or "config")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailopsd",
        description="Run outbound email campaigns from declarative YAML kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"mailopsd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    validate = commands.add_parser(
        "validate",
        help="check the config files and print every error found",
        description=(
            "Check a config file or directory: YAML syntax, schema, leads files and "
            "templates. Prints a one-line summary and exits 0 when valid; prints every "
            "error as file:line:col: path: message and exits 1 otherwise."
        ),
    )
    validate.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="config file or directory (default: $MAILOPSD_CONFIG, then ./config)",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json prints the errors as a list of {file, line, column, path, message}",
    )
    return parser


def _validate(args: argparse.Namespace) -> int:
    path: Path = args.path or _default_config_path()
    try:
        loaded = loader.load_config(path)
    except ConfigError as err:
        if args.format == "json":
            print(json.dumps([issue.as_dict() for issue in err.issues], indent=2))
            return EXIT_FAILURE
        for issue in err.issues:
            print(issue, file=sys.stderr)
        count = len(err.issues)
        print(f"invalid: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_FAILURE
    if args.format == "json":
        print("[]")
        return EXIT_OK
    print(f"ok: {loaded.summary()}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {"validate": _validate}
    return commands[args.command](args)
