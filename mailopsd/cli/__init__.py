"""The ``mailopsd`` command line: parses arguments, configures output, maps errors to exit codes.

Exit codes: 0 ok, 1 the command failed (invalid config, a secret or the state could not
be read), 2 usage error (and, for ``plan``, "there are changes"). Only this package and
the daemon read the environment.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from mailopsd import __version__
from mailopsd.cli.apikey import add_apikey
from mailopsd.cli.commands import add_commands
from mailopsd.cli.common import EXIT_FAILURE, EXIT_USAGE, print_issues
from mailopsd.cli.secrets import add_secrets
from mailopsd.errors import ConfigError, MailopsError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailopsd",
        description="Run outbound email campaigns from declarative YAML kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"mailopsd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_commands(commands)
    add_secrets(commands)
    add_apikey(commands)
    return parser


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
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as err:
        print_issues(err)
        return EXIT_FAILURE
    except MailopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except argparse.ArgumentTypeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; nothing saved", file=sys.stderr)
        return EXIT_FAILURE
