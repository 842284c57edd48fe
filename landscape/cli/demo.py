"""``landscape demo``: train, prune, compare and analyse on MNIST-1D, and write a report
(:mod:`landscape.analysis.demo`).

    landscape demo                 # runs/demo/report.md, under 10 minutes on 2 CPU cores
    landscape demo --quick         # a smoke test in seconds; its numbers mean nothing

Rerunning skips the finished parts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.analysis.demo import run_demo
from landscape.foundation.locking import locked_directory

HELP = "the README demo: dense net with the tracker, IMP with late rewinding, ticket vs dense, report with figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--quick``, ``--device`` and ``--no-progress``."""
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="tiny network and budgets: seconds, for smoke tests")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the demo (it prints where the report is) and the time it took."""
    with locked_directory(args.out):
        result = run_demo(args.out, quick=args.quick, progress=not args.no_progress, device=args.device)
    print(f"finished in {result.seconds:.0f} s")
    return 0
