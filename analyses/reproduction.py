"""The command line every reproduction script in ``analyses/`` shares.

    python analyses/NAME.py             # full setting: runs in runs/NAME, figures and report in figures/
    python analyses/NAME.py --quick     # smoke test: runs in runs/NAME_quick, figures in runs/NAME_quick/figures

Each script writes ``figures/NAME*.png``, ``figures/NAME.md`` (our numbers next to the paper's claim) and
``figures/NAME.json``; its runs are resumable (the trainer's run directories, and measurements cached with
:func:`landscape.runs.cached_json`).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Invocation:
    """How a script was asked to run: ``quick`` (the smoke-test setting), ``out`` (its run directory) and
    ``figures`` (where its figures, report and numbers go)."""
    quick: bool
    out: Path
    figures: Path


def invocation(name: str, description: str) -> Invocation:
    """Parse ``--quick``, ``--out`` and ``--figures`` for ``analyses/NAME.py`` and use one torch thread (small
    models gain little from threads, which contend on a shared machine)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test setting (seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"run directory (default: runs/{name}, or runs/{name}_quick)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="where figures and the report go (default: figures/, or OUT/figures with --quick)")
    args = parser.parse_args()
    out = args.out or Path("runs") / (f"{name}_quick" if args.quick else name)
    torch.set_num_threads(1)
    return Invocation(quick=args.quick, out=out, figures=args.figures or (out / "figures" if args.quick
                                                                           else Path("figures")))
