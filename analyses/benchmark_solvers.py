"""Eigenvalue, trace and density solvers of `landscape` against PyHessian, hessian-eigenthings and curvlinops.

    python analyses/benchmark_solvers.py            # full: ~10 minutes on 2 shared cores
    python analyses/benchmark_solvers.py --quick    # small models, one repeat: < 60 s (CI smoke test)

Issue 3's "Measured" section, in one run, side by side with PyHessian 0.1 and, when installed,
hessian-eigenthings (Lanczos, Hutch++, SLQ) and curvlinops (scipy operators + ``scipy.sparse.linalg.eigsh``,
its trace estimators and its Lanczos spectrum), on two trained-briefly MNIST-1D models (Adam, so that they
sit off a minimum with negative eigenvalues), cross-entropy:

* an MLP (``build_model("mlp", widths=(144,), activation="tanh")``, 7,354 parameters);
* a CNN with BatchNorm in eval mode (``build_model("cnn1d", channels=18, batchnorm=True)``, 3,052 parameters).

The truth is the dense float64 Hessian (``Hessian.to_dense``, one product per coordinate) and its
``torch.linalg.eigvalsh``. Eigenvalue, trace and density work runs in float64 for every library, so that
1e-4 relative error on the small negative eigenvalues is limited by the solvers, not by rounding. The
Hessian is over the first ``samples`` training points (one batch; fewer for the CNN, whose float64
convolutions are slow on this CPU and whose dense reference costs 3,052 products).

1. Top-5 eigenvalues at 1e-4 relative error (max over the five of ``|theta_i - lambda_i| / |lambda_i|``):
   each library gets the loosest setting of its own stopping knob that reaches it, found by a search on
   exact products (the same oracle for all): our ``eigs`` tolerance per criterion (the one needing fewer
   matvecs is timed); PyHessian's ``tol`` at its default ``maxIter=100`` (raised to 1000 only if no tol
   reaches 1e-4); hessian-eigenthings' Lanczos step count ``max_iter`` (with full reorthogonalisation, which
   its default turns off above 50 steps); ``eigsh``'s ``tol``. Each library's defaults are reported too
   (error and matvecs on exact products). Then each library runs for real on the model: operator built +
   solved, its error checked again, timed ``--repeats`` times round-robin over the libraries, best kept (a
   run over 20 s is not repeated). Ours is also timed on an operator built with ``method="reverse",
   check_determinism=False`` ("lean build"), to show what the default build's checks cost. Matvec counts
   are exact.
2. The five most negative eigenvalues, the same way (PyHessian cannot: power iteration finds the largest
   magnitudes only).
3. Trace with 99 products, over ``--seeds`` seeds: spread (standard deviation of the estimates), reported
   standard error (root mean square over seeds) and its coverage, for our XTrace, Hutch++ and Hutchinson
   (the default first), PyHessian's ``trace()`` forced to 99 products (``tol=0``) and at its defaults,
   hessian-eigenthings' Hutch++, curvlinops' Hutchinson and XTrace. ``--seeds 100`` makes the spreads good to
   +-7% (the default 20: +-16%); ``--parts trace`` runs only this task.
4. Spectral density by SLQ (``steps`` x ``runs`` products): the mass below ``-1e-3 |lambda|_max`` against the
   exact fraction, and the Wasserstein-1 distance of the quadrature measure to the exact spectrum over the
   spectral range; PyHessian's ``density()`` is called and its exception printed.
   Tasks 3 and 4 measure statistics, not speed: every library's products there come from one exact
   provider (the cached ``Hessian`` operator or the dense matrix, whichever multiplies faster here).
5. Products over 10 batches of 100 samples (float32): per-vector wall time of a ``matmat`` of 10 vectors
   (graphs cached, and uncached), single products, PyHessian's ``dataloader=`` mode, hessian-eigenthings' full-data
   operator, curvlinops with 10 columns; timing by ``benchmark_products.interleaved`` (best of rounds).
0. (issue 17) A user's first default call, ``eigs(Hessian(model, loss, data), k=5)`` in a fresh process, against
   the tuned solve on a prebuilt ``method="reverse", check_determinism=False`` operator, on the issue's
   7,354-parameter MLP with 1,000 samples (``analyses/first_call.py``; ``--quick``: 200 samples). Target: at
   most 1.5x.

The code: ``analyses/solvers/`` (a shared harness, one module per task); this script parses and dispatches.
Per-product costs against a gradient are ``analyses/benchmark_products.py``'s subject, not repeated here.
Targets are issue 3's; PASS/MISS is printed as measured, ratios are ours/peer from this run.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # scipy/ARPACK's BLAS on one thread too, like torch below

import torch  # noqa: E402

torch.set_num_threads(1)   # 2 shared cores: one thread, for every library alike

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from torch import Tensor, nn  # noqa: E402

from landscape.data.registry import load_dataset  # noqa: E402
from landscape.models import build_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from solvers import density, eigs, first_default_call, harness, products, trace  # noqa: E402
from solvers.harness import FULL, K, QUICK, TARGET, Config, make_case  # noqa: E402

PARTS = ("eigs", "trace", "density", "products")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models, one repeat: < 60 s, for CI")
    parser.add_argument("--repeats", type=int, default=None, help="wall-time repeats (best of); default 3, quick 1")
    parser.add_argument("--seeds", type=int, default=None, help="trace seeds; default 20")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="tasks to run: eigs = [1] and [2], trace = [3], density = [4], products = [5]; "
                             "default all")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time by wall clock (default) or by this process's CPU time, which other processes on "
                             "a shared machine do not inflate (one thread)")
    return parser.parse_args()


def configure(args: argparse.Namespace) -> Config:
    """The setting ``args`` ask for; sets the run's clock and imports the peers, printing the header."""
    harness.CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    notes = harness.load_peers()
    cfg = QUICK if args.quick else FULL
    if args.repeats is not None:
        cfg = Config(**{**cfg.__dict__, "repeats": args.repeats})
    if args.seeds is not None:
        cfg = Config(**{**cfg.__dict__, "seeds": args.seeds})
    warnings.filterwarnings("ignore", message="Using backward")   # PyHessian's create_graph=True on .grad
    warnings.filterwarnings("ignore", category=UserWarning, module="curvlinops")

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    print(f"benchmark_solvers{' --quick' if args.quick else ''}: torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; pyhessian {version('pyhessian')}, hessian-eigenthings "
          f"{version('hessian-eigenthings')}, curvlinops-for-pytorch {version('curvlinops-for-pytorch')}, "
          f"scipy {version('scipy')}")
    print(f"relative error target {TARGET:g} (max over {K} eigenvalues); wall = operator build + solve "
          f"({args.clock} clock), best of {cfg.repeats} round-robin over the libraries (runs > {cfg.long_run:g} s "
          f"once); matvecs exact")
    for note in notes:
        print(f"NOTE: {note}")
    return cfg


def run_model(name: str, factory: Callable[[], nn.Module], samples: int, parts: list[str], cfg: Config, x: Tensor,
              y: Tensor) -> tuple[str, list[str]]:
    """Every task in ``parts`` on one model; its section of the targets."""
    section = time.perf_counter()
    case = make_case(name, factory, samples, cfg, x, y)
    print(f"\n{case.describe}")
    print(f"  exact products for searches, trace and density: {case.exact.single} for single vectors, "
          f"{case.exact.block} for blocks")
    targets: list[str] = []
    if "eigs" in parts:
        targets += eigs.run(case, cfg)
    if "trace" in parts:
        targets += trace.run(case, cfg)
    if "density" in parts:
        targets += density.run(case, cfg)
    if "products" in parts:
        targets += products.run(case, x, y, cfg)
    print(f"  ({name}: {time.perf_counter() - section:.0f} s)")
    return case.name, targets


def main() -> None:
    args = parse_args()
    cfg = configure(args)
    clock_start = time.perf_counter()
    data = load_dataset("mnist1d")
    x, y = data.train
    specs = [
        ("MLP (tanh, MNIST-1D)", lambda: build_model("mlp", (40,), 10, widths=cfg.mlp_widths, activation="tanh"),
         cfg.samples_mlp),
        ("CNN with BatchNorm, eval (MNIST-1D)",
         lambda: build_model("cnn1d", (40,), 10, channels=cfg.cnn_channels, batchnorm=True), cfg.samples_cnn),
    ]
    summary = [run_model(name, factory, samples, args.parts, cfg, x, y) for name, factory, samples in specs]
    if "eigs" in args.parts:
        summary.append(first_default_call.run(cfg))

    print("\nTargets (issue 3), measured in this run:")
    for name, targets in summary:
        print(f"  {name}")
        for t in targets:
            print(f"    {t}")
    print(f"\ntotal {time.perf_counter() - clock_start:.0f} s")


if __name__ == "__main__":
    main()
