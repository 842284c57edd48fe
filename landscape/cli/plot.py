"""``landscape plot RUN``: every quantity a run tracked, over training, in one figure.

    landscape plot runs/cnn1d_mnist1d_0123456789 [--out figure.png]

Reads the run's metrics.jsonl (the trainer's evaluations and the records of ``landscape train --track``)
and writes ``RUN/figures/tracking.png`` (:func:`landscape.plots.tracking.save_tracking`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.foundation.locking import check_output_directory

HELP = "plot every tracked quantity of a run over training, and its spectral densities, as one figure"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory and ``--out``."""
    parser.add_argument("run", type=Path, help="the run directory (holding metrics.jsonl)")
    parser.add_argument("--out", type=Path, default=None,
                        help="figure file; the suffix sets the format (default: RUN/figures/tracking.png)")


def run(args: argparse.Namespace) -> int:
    """Draw the figure and print where it was written."""
    from landscape.plots.tracking import save_tracking  # matplotlib: only to draw

    if not args.run.is_dir():
        raise FileNotFoundError(f"no run directory {args.run}")
    if args.out is not None:
        check_output_directory(args.out.parent)
    print(f"written to {save_tracking(args.run, args.out)}")
    return 0
