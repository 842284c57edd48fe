"""``landscape surface CKPT``: a 1-D or 2-D slice of the loss surface around a checkpoint.

    landscape surface runs/cnn --directions filter|eigen|pca --dims 2 --points 21

Directions are filter-normalised random (Li et al. 2018), the top Hessian eigenvectors, or the first
principal components of the run's trajectory of checkpoints. Writes the figure and an ``.npz``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.cli.interpolate import run_directory
from landscape.connectivity.surface import surface_from_checkpoint
from landscape.foundation.locking import locked_directory

HELP = "a 1-D or 2-D loss-surface slice around a checkpoint, with figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path,
                        help="a run directory (its last checkpoint) or a checkpoint file of a run")
    parser.add_argument("--directions", choices=("filter", "eigen", "pca"), default="filter",
                        help="filter-normalised random (Li et al. 2018), top Hessian eigenvectors, or PCA of the "
                             "run's checkpoints up to CHECKPOINT (default: filter)")
    parser.add_argument("--dims", type=int, choices=(1, 2), default=2, help="1-D curve or 2-D plane (default: 2)")
    parser.add_argument("--points", type=int, default=21, help="grid points per axis (default: 21)")
    parser.add_argument("--span", type=float, default=None,
                        help="grid [-span, span] (default: 1; pca: the trajectory plus 25%%)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    parser.add_argument("--bias-bn", choices=("zero", "filter"), default="zero",
                        help="random directions on biases/BatchNorm parameters (default: zero)")
    parser.add_argument("--batchnorm", choices=("reset", "keep"), default="reset",
                        help="BatchNorm statistics at each point (default: reset)")
    parser.add_argument("--3d", dest="three_d", action="store_true", help="also draw a 3-D surface")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for surface-<directions>-<dims>d.png/.npz (default: <run>/figures)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from landscape.plots import save_surface  # matplotlib: only to draw

    surface = surface_from_checkpoint(args.checkpoint, args.directions, dims=args.dims, points=args.points,
                                      span=args.span, seed=args.seed, bias_bn=args.bias_bn,
                                      batchnorm=args.batchnorm, progress=not args.no_progress)
    coords, value = surface.minimum
    print(f"minimum loss {value:.4g} at {', '.join(f'{c:.3g}' for c in coords)}")
    with locked_directory(args.out or run_directory(args.checkpoint) / "figures") as out:
        written = save_surface(surface, out, f"surface-{surface.kind}-{surface.ndim}d", three_d=args.three_d,
                               data="the training split")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
