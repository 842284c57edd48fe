"""``landscape instability``: the instability analysis of Frankle et al. (2020)
(:mod:`landscape.connectivity.instability`).

    landscape instability --model cnn1d --data mnist1d --steps 2000it --spawn 0,50,100,200,500,1000 \\
        --replicates 3 --out runs/instability

The training options are those of ``landscape train`` (``--out`` is the analysis directory). The command
trains the trunk once, two children per spawn step and replicate, measures the barrier between each pair
on the train and test splits, prints a table of the error barrier (mean ± std over replicates), and
writes ``instability.json`` and ``instability.png`` into the analysis directory. Running it again resumes:
finished pairs are skipped, new spawn steps or replicates are added. A subnetwork is analysed with
``--masks`` (and ``--rewind`` for a lottery ticket rewound to the first spawn step).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from torch import Tensor

from landscape.cli import add_hparams_arguments, hparams_from_args, int_list
from landscape.connectivity.instability import RESULTS_FILE, SPLITS, InstabilityResult, instability
from landscape.foundation.locking import locked_directory
from landscape.foundation.runs import load_checkpoint
from landscape.training import Start

HELP = "instability analysis: barrier between copies spawned at step k and trained on different data orders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of ``landscape train`` and the analysis options."""
    add_hparams_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="analysis directory: the trunk, every spawned child and instability.json (default: "
                             "runs/instability_<hparams>); rerunning resumes")
    group = parser.add_argument_group("instability analysis")
    group.add_argument("--spawn", type=int_list, required=True, metavar="K,K,...",
                       help="comma-separated spawn steps k, e.g. 0,50,100,200,500,1000")
    group.add_argument("--replicates", type=int, default=2,
                       help="pairs of children per spawn step, each on its own two data orders (default: 2)")
    group.add_argument("--splits", type=_splits, default=SPLITS, metavar="SPLIT,...",
                       help="data splits to measure the path on: train, test or train,test (default: train,test)")
    group.add_argument("--points", type=int, default=31,
                       help="equally spaced interpolation coefficients in [0, 1], endpoints included (default: 31)")
    group.add_argument("--state", choices=("full", "parameters"), default="full",
                       help="interpolate every floating-point state entry, or the parameters only (default: full)")
    group.add_argument("--batchnorm", choices=("reset", "interpolate"), default="reset",
                       help="recompute BatchNorm statistics on the training split at each point, or interpolate "
                            "them (default: reset)")
    group.add_argument("--masks", type=Path, default=None, metavar="PATH",
                       help="analyse a subnetwork: a run directory holding masks.safetensors, or a .safetensors "
                            "file of 0/1 tensors named by parameter")
    group.add_argument("--rewind", type=Path, default=None, metavar="RUN",
                       help="start the trunk from run RUN's checkpoint at the first spawn step with a fresh "
                            "optimizer (a lottery ticket's rewinding), instead of training it from step 0")


def run(args: argparse.Namespace) -> int:
    """Run or resume the analysis, print its table and write the figure."""
    from landscape.plots import save_figure  # matplotlib: only to draw
    from landscape.plots.instability import plot_instability

    hparams = hparams_from_args(args)
    start = Start.rewind(args.rewind, min(args.spawn)) if args.rewind is not None and args.spawn else None
    out = args.out if args.out is not None else Path("runs") / f"instability_{hparams.name}"
    with locked_directory(out):
        result = instability(hparams, args.spawn, out, replicates=args.replicates,
                             masks=_masks(args.masks) if args.masks is not None else None, start=start,
                             splits=args.splits, points=args.points, state=args.state, batchnorm=args.batchnorm,
                             device=args.device, progress=not args.no_progress)
        figure = save_figure(plot_instability(result), out / "instability.png")
    print(summary(result))
    print(f"analysis directory: {out} ({RESULTS_FILE}, {figure.name}, trunk_*/ and one run directory per child)")
    return 0


def summary(result: InstabilityResult) -> str:
    """A text table: per spawn step, the Frankle et al. barrier (mean ± std over replicates) on each split."""
    quantity = result.default_quantity()
    scale, unit = (100.0, "%") if quantity == "error" else (1.0, "")
    columns = {split: (result.mean(split, quantity), result.std(split, quantity)) for split in result.splits}
    lines = [f"{quantity} barrier (instability, Frankle et al. 2020) over {result.barriers().shape[1]} "
             f"replicate(s): mean ± std",
             f"{'k':>7} " + " ".join(f"{split:>18}" for split in columns)]
    for i, k in enumerate(result.steps):
        cells = [f"{scale * mean[i]:.3g}{unit} ± {scale * std[i]:.2g}{unit}" if not math.isnan(std[i])
                 else f"{scale * mean[i]:.3g}{unit}" for mean, std in columns.values()]
        lines.append(f"{k:>7} " + " ".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)



def _masks(path: Path) -> dict[str, Tensor]:
    """Masks from a run directory's masks.safetensors or from a safetensors file."""
    file = path / "masks.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no masks at {path}: expected a run directory with masks.safetensors or a "
                                f".safetensors file")
    return {name: mask.bool() for name, mask in load_checkpoint(file).model.items()}


def _splits(text: str) -> tuple[str, ...]:
    splits = tuple(part.strip() for part in text.split(",") if part.strip())
    if not splits or any(s not in SPLITS for s in splits):
        raise argparse.ArgumentTypeError(f"expected train, test or train,test, got {text!r}")
    return splits
