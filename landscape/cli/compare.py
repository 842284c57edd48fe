"""``landscape compare DENSE IMP``: ticket versus dense (:mod:`landscape.analysis.compare`).

    landscape compare runs/imp/round_00 runs/imp --samples 1000 --instability-replicates 1

Measures the dense run and every ticket (and trained control) of the IMP directory, writes
comparison.json, comparison.md, densities/ and figures/ to ``--out`` (default ``IMP/compare``) and prints
the table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.analysis.compare import CompareSettings, compare
from landscape.cli import add_device_arguments, add_settings_arguments, int_list, settings_from_args
from landscape.foundation.locking import locked_directory

HELP = "compare lottery tickets with the dense network: accuracy, restricted Hessian spectra, barriers, instability"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Positional DENSE and IMP directories, ``--out``, the :class:`CompareSettings` fields, device and progress."""
    parser.add_argument("dense", type=Path, help="the dense run directory (e.g. IMP/round_00)")
    parser.add_argument("imp", type=Path, help="the IMP directory written by `landscape prune`")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: IMP/compare)")
    parser.add_argument("--rounds", type=int_list, default=None, metavar="N,N,...",
                        help="the rounds to measure (default: every finished round)")
    add_settings_arguments(parser, CompareSettings)
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the comparison and print its table and where it was written."""
    settings = settings_from_args(args, CompareSettings)
    out = args.out if args.out is not None else args.imp / "compare"
    with locked_directory(out):
        result = compare(args.dense, args.imp, out, settings=settings, rounds=args.rounds, device=args.device,
                         progress=not args.no_progress)
    print(result.markdown(), end="")
    print(f"written to {result.out_dir} (comparison.json, comparison.md, densities/, figures/)")
    return 0

