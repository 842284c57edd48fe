"""Row [0] of ``analyses/benchmark_solvers.py`` (issue 17): a user's first default ``eigs(Hessian(...), k=5)`` in a
fresh process against the tuned solve, measured by ``analyses/first_call.py``; the target is at most 1.5x."""
from __future__ import annotations

import first_call
from solvers.harness import Config, verdict


def run(cfg: Config) -> tuple[str, list[str]]:
    """Print row [0] (``cfg.first_call_samples`` samples, best of ``cfg.repeats`` tuned solves); return its
    section of the targets."""
    call = first_call.measure("cpu", samples=cfg.first_call_samples, repeats=cfg.repeats)
    print(f"\n[0] first default call eigs(Hessian(mlp, CE, {cfg.first_call_samples} samples), k=5) in a fresh "
          f"process: {call.first:.3f} s ({call.first_matvecs} matvecs); tuned solve {call.tuned:.3f} s "
          f"({call.tuned_matvecs} matvecs, best of {call.repeats})")
    return ("First default call (issue 17)", [
        f"first default call / tuned solve <= 1.5: {call.first:.3f}/{call.tuned:.3f} s = {call.ratio:.2f} "
        f"{verdict(call.ratio <= 1.5)}"])
