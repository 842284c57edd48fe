"""What certifying ``eigs`` costs (issue 15): matvecs and CPU seconds with and without the verification pass.

    python analyses/benchmark_certification.py           # benchmark_solvers' two MNIST-1D models: ~5 CPU-minutes
    python analyses/benchmark_certification.py --quick   # its small models: under a minute

On the models of ``analyses/benchmark_solvers.py`` (a tanh MLP of 7,354 parameters and a CNN with BatchNorm
of 3,052, trained briefly, Hessian over the first samples, float64), for the top and the bottom five
eigenvalues at ``tol`` 1e-4 and 1e-3, over three seeds: matvecs of ``certify=False`` (the uncertified solve, what
``eigs`` did before issue 15), of the default (thick-restart Lanczos, certified) and of ``method="block"``; how
many of them the verification passes took; the largest error over the seeds relative to ``|lambda|_max``
against the dense ``eigvalsh``; whether every certified run converged; and the CPU seconds (process time, one
thread) of one solve of seed 0 on the Hessian operator itself. A row whose error exceeds ``tol`` while it says
converged is marked SILENT.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from landscape.data import load_dataset  # noqa: E402
from landscape.linalg import eigs  # noqa: E402
from landscape.models import build_model  # noqa: E402
from landscape.operators import Hessian  # noqa: E402
from solvers.harness import CE, FULL, QUICK, make_case  # noqa: E402

VARIANTS = {"uncertified": {"certify": False}, "lanczos": {}, "block": {"method": "block"}}
SEEDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models: under a minute")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    x, y = load_dataset("mnist1d").train
    specs = [("MLP (tanh)", lambda: build_model("mlp", (40,), 10, widths=cfg.mlp_widths, activation="tanh"),
              cfg.samples_mlp),
             ("CNN with BatchNorm", lambda: build_model("cnn1d", (40,), 10, channels=cfg.cnn_channels,
                                                        batchnorm=True), cfg.samples_cnn)]
    print(f"benchmark_certification{' --quick' if args.quick else ''}: k=5, {SEEDS} seeds, 1 thread")
    for name, factory, samples in specs:
        case = make_case(name, factory, samples, cfg, x, y)
        lam_max = float(np.abs(case.evals).max())
        print(f"\n{case.describe}")
        print(f"  {'end':8s} {'tol':>6s} {'variant':12s} {'matvecs (certification)':32s} {'max err/|l|max':>14s} "
              f"{'converged':>9s} {'CPU s':>6s}")
        for which in ("largest", "smallest"):
            truth = case.evals[::-1][:5] if which == "largest" else case.evals[:5]
            for tol in (1e-4, 1e-3):
                for variant, kwargs in VARIANTS.items():
                    runs = [eigs(case.exact, 5, which, tol, seed=seed, **kwargs) for seed in range(SEEDS)]
                    err = max(float(np.abs(r.eigenvalues.numpy() - truth).max()) / lam_max for r in runs)
                    counts = ", ".join(f"{r.matvecs} ({r.certify_matvecs})" for r in runs)
                    converged = "-" if variant == "uncertified" else f"{sum(r.converged for r in runs)}/{SEEDS}"
                    silent = any(r.converged for r in runs) and err > tol
                    op = Hessian(case.model, CE, (case.X, case.Y))
                    start = time.process_time()
                    eigs(op, 5, which, tol, seed=0, **kwargs)
                    cpu = time.process_time() - start
                    print(f"  {which:8s} {tol:6.0e} {variant:12s} {counts:32s} {err:14.1e} {converged:>9s} "
                          f"{cpu:6.2f}{'  SILENT' if silent else ''}", flush=True)


if __name__ == "__main__":
    main()
