"""``landscape prune``: iterative magnitude pruning with rewinding and controls (:mod:`landscape.pruning.imp`).

    landscape prune --model lenet300 --data mnist1d --rounds 8 --rewind 100it --controls reinit,random --out runs/imp

The training options are those of ``landscape train``; the run trains the dense network, then one pruned
round after another, and prints a line per round. Running it again resumes: finished rounds are skipped,
more rounds or controls are added.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.cli import add_hparams_arguments, add_settings_arguments, hparams_from_args, settings_from_args
from landscape.locking import locked_directory
from landscape.pruning.imp import IMPResult, PruningHparams, iterative_magnitude_pruning

HELP = "iterative magnitude pruning with rewinding, random controls and stability to pruning (lottery tickets)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of ``landscape train`` (``--out`` is the IMP directory) and the pruning options."""
    add_hparams_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="IMP directory, one run directory per round (default: runs/imp_<hparams>_<pruning "
                             "digest>); rerunning resumes and skips finished rounds")
    add_settings_arguments(parser.add_argument_group("pruning"), PruningHparams)


def run(args: argparse.Namespace) -> int:
    """Run or resume the experiment and print its rounds."""
    hparams = hparams_from_args(args)
    pruning = settings_from_args(args, PruningHparams)
    out = args.out if args.out is not None else Path("runs") / f"imp_{hparams.name}_{pruning.digest}"
    with locked_directory(out):
        result = iterative_magnitude_pruning(hparams, pruning, out, device=args.device, progress=not args.no_progress)
    print(summary(result))
    print(f"IMP directory: {result.path} (imp.json, round_NN/ with round.json and controls/)")
    return 0


def summary(result: IMPResult) -> str:
    """A text table: per round the density, test accuracy, stability to pruning and each control's accuracy."""
    controls = list(result.pruning.controls)
    header = f"{'round':>5} {'density':>8} {'test acc':>8} {'distance':>9} " + " ".join(f"{c:>9}" for c in controls)
    lines = [f"rewind to step {result.rewind_step}; accuracies on the test split after training", header]
    for r in result.rounds:
        distance = "" if r.stability is None else f"{r.stability.distance:.3f}"
        cells = [_accuracy(r.controls[c].test.accuracy) if c in r.controls else "" for c in controls]
        lines.append(f"{r.round:>5} {100 * r.density:>7.2f}% {_accuracy(r.test.accuracy):>8} {distance:>9} "
                     + " ".join(f"{c:>9}" for c in cells))
    return "\n".join(lines)



def _accuracy(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
