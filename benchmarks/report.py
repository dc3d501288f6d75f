#!/usr/bin/env python3
"""Regenerate ``benchmarks/RESULTS.md`` and its plots: how good and how fast edgetrack is.

    python benchmarks/report.py              # the report (cached measurements are reused; --force redoes them)
    python benchmarks/report.py --quick      # a smoke run into runs/bench-quick (3 short sequences)

The same as ``edgetrack bench``; the code is :mod:`edgetrack.bench` (options: ``--help``). Runs from a plain
checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    try:
        import edgetrack  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))
    from edgetrack.bench import add_arguments, run_from_args
    from edgetrack.errors import EdgetrackError

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    command = " ".join(["python benchmarks/report.py", *(shlex.quote(a) for a in argv)])
    try:
        return run_from_args(args, command=command)
    except EdgetrackError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
