"""``landscape interpolate A B``: loss and error along the straight line between two checkpoints.

    landscape interpolate runs/a runs/b --points 31 --batchnorm reset

Prints the barrier by both definitions (Frankle et al. 2020; Entezari et al. 2022) on the train and test
splits and writes ``interpolation.png`` with one ``.npz`` per split (redraw without recomputing).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from landscape.connectivity.interpolation import interpolate_checkpoints
from landscape.foundation.locking import locked_directory

HELP = "loss and error along the straight line between two checkpoints, with barriers"


def float_list(text: str) -> tuple[float, ...]:
    """``"-0.5,0.25"`` -> ``(-0.5, 0.25)``, as an argparse type."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def run_directory(path: Path) -> Path:
    """The run directory of a run directory or of one of its checkpoint files."""
    return path if path.is_dir() else path.parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="endpoint at alpha = 0: a run directory (its last checkpoint) or "
                                             "<run>/checkpoints/step_N.safetensors")
    parser.add_argument("b", type=Path, help="endpoint at alpha = 1, the same way (same model as A)")
    parser.add_argument("--points", type=int, default=31,
                        help="evenly spaced alphas in [0, 1], endpoints included (default: 31)")
    parser.add_argument("--alphas", type=float_list, default=None, metavar="A,A,...",
                        help="custom alphas, e.g. --alphas=-0.5,0.25,1.5 (0 and 1 are always added)")
    parser.add_argument("--batchnorm", choices=("reset", "interpolate"), default="reset",
                        help="BatchNorm statistics at each alpha: recomputed on the train split, or interpolated "
                             "(default: reset)")
    parser.add_argument("--state", choices=("full", "parameters"), default="full",
                        help="interpolate the whole state or the parameters only (default: full)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for interpolation.png and interpolation-{train,test}.npz "
                             "(default: <A's run>/figures)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from landscape.plots import save_interpolation  # matplotlib: only to draw

    paths = interpolate_checkpoints(args.a, args.b, args.points, alphas=args.alphas, state=args.state,
                                    batchnorm=args.batchnorm, progress=not args.no_progress)
    for name, path in paths.items():
        quantity = "error" if path.is_classification else "loss"
        frankle, entezari = path.barrier_of(quantity, "frankle"), path.barrier_of(quantity, "entezari")
        print(f"{name}: {quantity} barrier {frankle.height:.4g} at alpha {frankle.alpha:.2f} (Frankle et al.), "
              f"{entezari.height:.4g} at alpha {entezari.alpha:.2f} (Entezari et al.)")
    with locked_directory(args.out or run_directory(args.a) / "figures") as out:
        written = save_interpolation(paths, out, "interpolation")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
