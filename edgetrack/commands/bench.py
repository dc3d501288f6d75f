"""``edgetrack bench``: regenerate the benchmark report (RESULTS.md and its plots); the code is
:mod:`edgetrack.bench`, shared with ``python benchmarks/report.py``."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    from edgetrack.bench import add_arguments

    p = sub.add_parser(
        "bench",
        help="regenerate the benchmark report (accuracy, speed, Ascend estimates, the papers' claims, targets, "
        "parity across the chain)",
        description="Measure every shipped model and the baselines (OpenCV CSRT, KCF, MIL, NanoTrack) on the "
        "held-out synthetic test split, sharp and blurred: accuracy with plots, speed side by side on this "
        "machine, the Ascend simulator's estimates; set the papers' claims and issue 7's targets against the "
        "figures; write RESULTS.md. Measurements are cached (per tracker × data set variant): a second run "
        "measures only what is missing.",
        epilog="example: edgetrack bench --quick   (a smoke run into runs/bench-quick)",
    )
    add_arguments(p)
    p.set_defaults(func=run, bench_parser=p)


def run(args: argparse.Namespace) -> int:
    from edgetrack.bench import command_from_args, run_from_args

    # The command as typed goes into RESULTS.md and every cached record: where the numbers came from.
    return run_from_args(args, command=command_from_args(args.bench_parser, args, "edgetrack bench"))
