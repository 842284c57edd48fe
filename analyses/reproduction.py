"""The command line every reproduction script in ``analyses/`` shares.

    python analyses/NAME.py             # full setting: runs in runs/NAME, figures and report in figures/
    python analyses/NAME.py --quick     # smoke test: runs in runs/NAME_quick, figures in runs/NAME_quick/figures

Each script writes ``figures/NAME*.png``, ``figures/NAME.md`` (our numbers next to the paper's claim) and
``figures/NAME.json``; its runs are resumable (the trainer's run directories, and measurements cached with
:func:`landscape.foundation.runs.cached_json`).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats


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


class Progress:
    """A script's wall clock since it began, printed after each unit of work (``done``)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Wall seconds since construction."""
        return time.perf_counter() - self.began

    def done(self, what: str) -> None:
        print(f"{what}: done after {self.seconds:.0f} s", flush=True)

    def each(self, seeds, measure) -> list:
        """``[measure(seed) for seed in seeds]``, reporting the time after each seed."""
        results = []
        for seed in seeds:
            results.append(measure(seed))
            self.done(f"seed {seed}")
        return results


def mean_sd(values, digits: int = 3) -> str:
    """``"mean ± sd"`` (sample standard deviation) with ``digits`` decimals; the mean alone for one value."""
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f}" + (f" ± {values.std(ddof=1):.{digits}f}" if values.size > 1 else "")


def paired_difference(a, b) -> dict:
    """The per-seed differences ``a − b`` (same seeds, in order): ``mean``, standard error ``se`` and the
    two-sided paired t-test's ``p`` (``nan`` for one seed or differences without spread), and ``n``."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = diff.size
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    p = float(stats.ttest_1samp(diff, 0.0).pvalue) if n > 1 and diff.std() > 0 else float("nan")
    return {"mean": float(diff.mean()), "se": se, "p": p, "n": n}
