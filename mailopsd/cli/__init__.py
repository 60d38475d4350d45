"""The ``mailopsd`` command line: parses arguments, configures output, maps errors to exit codes.

Exit codes: 0 ok, 1 the command failed (invalid config, a secret or the state could not
be read), 2 usage error (and, for ``plan``, "there are changes"). Only this package and
the daemon read the environment.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence

from mailopsd import __version__, errors
from mailopsd.cli.apikey import add_apikey
from mailopsd.cli.commands import add_commands
from mailopsd.cli.common import EXIT_FAILURE, EXIT_USAGE, print_issues
from mailopsd.cli.doctor import add_doctor
from mailopsd.cli.preview import add_preview
from mailopsd.cli.report import add_report
from mailopsd.cli.secrets import add_secrets
from mailopsd.cli.stats import add_stats
from mailopsd.errors import ConfigError, MailopsError
from mailopsd.state import ledgerfile

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailopsd",
        description="Run outbound email campaigns from declarative YAML kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"mailopsd {__version__}")
    commands = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        required=True,
        help="what to do (mailopsd COMMAND --help tells more)",
    )
    add_commands(commands)
    add_doctor(commands)
    add_secrets(commands)
    add_apikey(commands)
    add_stats(commands)
    add_preview(commands)
    add_report(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Whatever goes wrong ends as one line on stderr and an exit code, never a traceback:
    the errors mailopsd expects say what to do; anything else is named by its type and
    place only (its text may quote the data it failed on, a secret included).

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = _build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run_command(args)
    except BrokenPipeError:
        _drop_stdout()  # the reader went away (| head): nothing left to say to anyone
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted; nothing saved", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(f"error: {_os_error_text(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:
        print(f"error: {_unexpected_text(args, err)}", file=sys.stderr)
        return EXIT_FAILURE


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the command ``args`` chose, so that a usage error shows its usage.

    argparse reports an option a sub-command does not know with the program's usage,
    which lists only the commands; this names the command and its options.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _command_parser(action.choices[chosen], args)
    return parser


def _run_command(args: argparse.Namespace) -> int:
    """Run the chosen command and report the errors mailopsd raises on purpose."""
    handler: Handler = args.handler
    ledgerfile.use_age_key_file(getattr(args, "age_key_file", None), os.environ)
    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except ConfigError as err:
        print_issues(err)
        return EXIT_FAILURE
    except MailopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except argparse.ArgumentTypeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return code


_OS_ADVICE = {
    errno.ENOENT: "check the path (its directory must exist)",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "give a file, not a directory",
    errno.EACCES: "check its permissions and owner",
    errno.EPERM: "check its permissions and owner",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "free some space",
}


def _os_error_text(err: OSError) -> str:
    """One line for a file or system error: which path, what the system said, what to do."""
    reason = (err.strerror or type(err).__name__).lower()
    advice = _OS_ADVICE.get(err.errno or 0)
    text = f"{err.filename}: {reason}" if err.filename is not None else reason
    return f"{text}; {advice}" if advice else text


def _unexpected_text(args: argparse.Namespace, err: Exception) -> str:
    """One line for an error mailopsd did not expect: the command, the error's type and place."""
    command = " ".join(
        str(part) for part in (args.command, getattr(args, "verb", None)) if part is not None
    )
    return (
        f"mailopsd {command} stopped on an unexpected error "
        f"({errors.describe_unexpected(err)}); this is a bug in mailopsd: please report it "
        "with the command you ran (the error's text is not shown: it may quote a secret)"
    )


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's capture): nothing to flush
        return
