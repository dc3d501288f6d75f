"""The ``edgetrack`` command: a thin dispatcher over the modules in :mod:`edgetrack.commands`.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported only when the
parser is built, and heavy libraries (torch, mindspore, matplotlib) only inside the command that needs them.
Deliberate errors (:class:`edgetrack.errors.EdgetrackError`) print as one message and exit with status 2; anything
else prints a one-line summary (``--debug`` shows the traceback) and exits with status 1.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgetrack._version import __version__
from edgetrack.errors import EdgetrackError

# Order is the order of `edgetrack --help`.
COMMANDS = ("demo", "data", "train", "convert", "inspect", "track", "eval", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgetrack",
        description="Single-object tracking for motion-blurred video: data, training, conversion, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"edgetrack {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edgetrack.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
        return int(result or 0)
    except EdgetrackError as exc:
        if args.debug:
            raise
        print(f"edgetrack {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgetrack: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`edgetrack inspect ... | head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence against bare tracebacks
        if args.debug:
            raise
        print(
            f"edgetrack {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in edgetrack; rerun with `edgetrack --debug ...` and report the traceback",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
