"""Accuracy and cost of the training-run instruments (issue 4), measured in one script.

    python analyses/benchmark_instruments.py [--parts saddle,overhead,warm] [--threads 1] [--seeds 3]
    python analyses/benchmark_instruments.py --quick --runs-dir DIR   # tiny runs, one seed and round: ~15 s

1. **Saddle index accuracy.** Two small trained MLPs, tanh, one hidden layer of 32 units (the run
   configurations are ``FULL.saddle_models``): MNIST-1D (1,642 parameters, 3000 SGD steps) and scikit-learn
   digits (2,410 parameters, 2000 steps). Their float64 Hessians over the first 1000 training samples are
   formed densely (``Hessian.to_dense``) and diagonalised, giving the exact fraction of eigenvalues below
   ``-tol * |lambda|_max`` at tol 1e-2, 1e-3, 1e-4. Every estimator of :func:`landscape.saddle_index` runs
   on that matrix (as a :class:`landscape.linalg.MatrixOperator`: the same matrix, cheaper products) with
   ``--seeds`` seeds; the table gives the mean estimate, its mean absolute error, the largest error, the
   mean reported standard error and the matvecs.
2. **Tracking overhead.** The default ``landscape train`` run (cnn1d on MNIST-1D, 3000 steps, evaluation
   every 100 steps) untracked and tracked by :class:`landscape.Tracker` with the default instruments every
   200 steps on its default evaluation batch (the first 128 training samples), interleaved (``--rounds``
   rounds each) and timed by this process's CPU time (with ``--threads 1``, other processes on the machine
   do not inflate it) and wall time; best round of each. Also checks that both end with bit-identical weights.
3. **Warm starts.** On that run, every 200 steps (the overhead schedule), every 20 steps over steps
   2000-2400 and at every step over 2000-2020: the 5 largest eigenpairs of the Hessian on the tracker's evaluation batch, cold (random start)
   and warm (started from the previous measurement's eigenvectors, as the tracker does), at the tracker's
   tolerance; matvecs of each, and the sines of the principal angles between consecutive top-5 spans, which
   bound what any warm start can gain; and "oracle": started from the new step's own converged eigenvectors
   (the cold solve's), the most a warm start could know, so its matvecs bound what starting Lanczos from a
   vector of the previous eigenvectors can save.

Runs are trained into ``--runs-dir`` (reused when present: training is deterministic). ``--quick`` (a CI
smoke run, ``QUICK``) runs the same three parts on 8-unit MLPs trained 200 steps with 200-sample Hessians, one
seed, and a 4-channel cnn1d trained 200 steps, tracked every 50 steps, one round; its runs go to
``runs/benchmark_instruments_quick`` unless ``--runs-dir`` says otherwise.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landscape.data.registry import load_dataset
from landscape.foundation.runs import Run
from landscape.instruments.saddle import METHODS, saddle_index
from landscape.linalg import MatrixOperator, eigs
from landscape.operators import Hessian
from landscape.training import Hparams, train
from landscape.training.tracker import DEFAULT_INSTRUMENTS, Tracker, TrackerSettings

TOLS = (1e-2, 1e-3, 1e-4)


def saddle_mlp(data: str, width: int, steps: int) -> Hparams:
    """A one-hidden-layer tanh MLP run on ``data``, ``steps`` SGD steps, no evaluations or checkpoints on the way."""
    return Hparams(model="mlp", model_kwargs={"widths": [width], "activation": "tanh"}, data=data,
                   steps=f"{steps}it", eval_every=0, checkpoint_every=0)


@dataclass(frozen=True)
class Config:
    saddle_models: dict[str, Hparams]    # part 1's trained models, by name
    hessian_samples: int                 # part 1: training samples of the dense Hessian
    cnn_run: Hparams                     # parts 2 and 3: the tracked run
    track_every: int                     # part 2: steps between tracker measurements
    warm_schedules: dict[str, range]     # part 3: steps measured, by label
    seeds: int                           # part 1: seeds per saddle-index estimate
    rounds: int                          # part 2: interleaved rounds of the overhead timing
    runs_dir: Path                       # where runs are trained (--runs-dir overrides)


FULL = Config(
    saddle_models={"mnist1d": saddle_mlp("mnist1d", 32, 3000), "digits": saddle_mlp("digits", 32, 2000)},
    hessian_samples=1000,
    cnn_run=Hparams(),          # the default `landscape train` run: cnn1d on MNIST-1D, 3000 steps
    track_every=200,
    warm_schedules={"every 200 steps": range(200, 3001, 200), "every 20 steps, 2000-2400": range(2000, 2401, 20),
                    "every step, 2000-2020": range(2000, 2021)},
    seeds=3, rounds=2, runs_dir=Path("runs/benchmark_instruments"))
QUICK = Config(
    saddle_models={"mnist1d": saddle_mlp("mnist1d", 8, 200), "digits": saddle_mlp("digits", 8, 200)},
    hessian_samples=200,
    cnn_run=Hparams(model_kwargs={"channels": 4}, steps="200it"),
    track_every=50,
    warm_schedules={"every 50 steps": range(50, 201, 50), "every 10 steps, 100-140": range(100, 141, 10)},
    seeds=1, rounds=1, runs_dir=Path("runs/benchmark_instruments_quick"))


def saddle_accuracy(cfg: Config) -> None:
    print("\n## Saddle index against exact spectra (fraction of eigenvalues below -tol |lambda|max)\n")
    print("| model | tol | exact | method | estimate | mean abs error | max abs error | reported stderr | "
          "matvecs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, hp in cfg.saddle_models.items():
        model = train(hp, cfg.runs_dir / f"saddle_{name}", progress=False).model.eval()
        x, y = load_dataset(hp.data).train
        samples = cfg.hessian_samples
        H = Hessian(model, nn.CrossEntropyLoss(), (x[:samples], y[:samples]), dtype=torch.float64)
        dense = H.to_dense()
        dense = (dense + dense.T) / 2
        spectrum = torch.linalg.eigvalsh(dense).numpy()
        scale = np.abs(spectrum).max()
        for tol in TOLS:
            exact = float(np.mean(spectrum < -tol * scale))
            for method in METHODS:
                results = [saddle_index(MatrixOperator(dense), tol, method=method, seed=17 * s)
                           for s in range(cfg.seeds)]
                errors = [abs(r.fraction - exact) for r in results]
                print(f"| {name} (n={H.shape[0]}) | {tol:g} | {exact:.4f} | {method} | "
                      f"{statistics.mean(r.fraction for r in results):.4f} | {statistics.mean(errors):.4f} | "
                      f"{max(errors):.4f} | {statistics.mean(r.stderr for r in results):.4f} | "
                      f"{statistics.mean(r.matvecs for r in results):.0f} |", flush=True)


def tracking_overhead(cfg: Config) -> None:
    hparams, rounds = cfg.cnn_run, cfg.rounds
    print(f"\n## Tracking overhead: {hparams.model} on {hparams.data}, {hparams.steps}, instruments "
          f"{','.join(DEFAULT_INSTRUMENTS)} every {cfg.track_every} steps\n")
    times: dict[str, list[tuple[float, float]]] = {"untracked": [], "tracked": []}
    finals = {}
    for r in range(rounds):
        for kind in ("untracked", "tracked"):
            path = cfg.runs_dir / f"overhead_{kind}"
            shutil.rmtree(path, ignore_errors=True)
            callbacks = [Tracker.for_hparams(hparams, schedule=cfg.track_every)] if kind == "tracked" else []
            cpu, wall = time.process_time(), time.perf_counter()
            result = train(hparams, path, callbacks=callbacks, progress=False)
            times[kind].append((time.process_time() - cpu, time.perf_counter() - wall))
            finals[kind] = result.model.state_dict()
            print(f"round {r}: {kind} {times[kind][-1][0]:.1f} s CPU, {times[kind][-1][1]:.1f} s wall", flush=True)
    identical = all(torch.equal(finals["tracked"][k], finals["untracked"][k]) for k in finals["untracked"])
    records = [rec for rec in Run(cfg.runs_dir / "overhead_tracked").metrics()
               if rec["instrument"] in DEFAULT_INSTRUMENTS]
    cpu = {k: min(t[0] for t in v) for k, v in times.items()}
    wall = {k: min(t[1] for t in v) for k, v in times.items()}
    print(f"\nbest of {rounds}: untracked {cpu['untracked']:.1f} s CPU / {wall['untracked']:.1f} s wall, tracked "
          f"{cpu['tracked']:.1f} s CPU / {wall['tracked']:.1f} s wall: overhead "
          f"{cpu['tracked'] / cpu['untracked']:.2f}x (CPU), {wall['tracked'] / wall['untracked']:.2f}x (wall)")
    print(f"final weights bit-identical: {identical}; {len(records)} records")
    for name in DEFAULT_INSTRUMENTS:
        mine = [rec for rec in records if rec["instrument"] == name]
        print(f"  {name}: {len(mine)} measurements, mean {statistics.mean(r['matvecs'] for r in mine):.1f} matvecs, "
              f"mean {statistics.mean(r['seconds'] for r in mine):.3f} s")


def warm_starts(cfg: Config) -> None:
    settings = TrackerSettings()
    tracker = Tracker.for_hparams(cfg.cnn_run)
    solve = {"k": settings.top_k, "tol": settings.eig_tol, "max_matvecs": settings.eig_max_matvecs}
    steps = sorted(set().union(*cfg.warm_schedules.values()))
    models: dict[int, nn.Module] = {}

    def snapshot(model: nn.Module, step: int, run) -> None:
        if step in steps:
            models[step] = copy.deepcopy(model).eval()

    path = cfg.runs_dir / "warm"
    shutil.rmtree(path, ignore_errors=True)
    train(cfg.cnn_run, path, callbacks=[snapshot], progress=False)
    for name, schedule in cfg.warm_schedules.items():
        print(f"\n## Warm starts, {name}: top-{settings.top_k} eigenpairs, tol {settings.eig_tol:g}, "
              f"{tracker.data[0].shape[0]}-sample evaluation batch\n")
        print("| step | cold matvecs | warm matvecs | oracle matvecs | sin of principal angles to the previous top-5 "
              "| top eigenvalue |")
        print("|---|---|---|---|---|---|")
        previous, rows = None, []
        for step in schedule:
            H = Hessian(models[step], tracker.loss_fn, tracker.data, method=settings.method)
            cold = eigs(H, **solve)
            warm = eigs(H, v0=previous, **solve) if previous is not None else None
            if warm is not None:
                oracle = eigs(H, v0=cold.eigenvectors, **solve)   # the new eigenvectors: no warm start does better
                cosines = torch.linalg.svdvals(previous.T @ warm.eigenvectors).clamp(max=1)
                sines = " ".join(f"{float(x):.2f}" for x in (1 - cosines ** 2).sqrt())
                rows.append((cold.matvecs, warm.matvecs, oracle.matvecs))
                print(f"| {step} | {cold.matvecs} | {warm.matvecs} | {oracle.matvecs} | {sines} "
                      f"| {float(warm.eigenvalues[0]):.4g} |", flush=True)
            previous = (warm if warm is not None else cold).eigenvectors
        cold_total, warm_total, oracle_total = np.array(rows).sum(axis=0)
        print(f"\ntotal over {len(rows)} consecutive measurements: cold {cold_total}, warm {warm_total} matvecs: "
              f"{cold_total / warm_total:.2f}x fewer when warm; a start from the new eigenvectors themselves "
              f"(the bound on any warm start) {oracle_total}: {cold_total / oracle_total:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs, one seed and round: a CI smoke run")
    parser.add_argument("--parts", default="saddle,overhead,warm", help="comma-separated parts to run")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help=f"where runs are trained; default {FULL.runs_dir}, quick {QUICK.runs_dir}")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds per saddle-index estimate; default {FULL.seeds}, quick {QUICK.seeds}")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"interleaved rounds of the overhead timing; default {FULL.rounds}, quick {QUICK.rounds}")
    args = parser.parse_args()
    cfg = dataclasses.replace(QUICK if args.quick else FULL, **{
        name: getattr(args, name) for name in ("seeds", "rounds", "runs_dir") if getattr(args, name) is not None})
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if "saddle" in parts:
        saddle_accuracy(cfg)
    if "overhead" in parts:
        tracking_overhead(cfg)
    if "warm" in parts:
        warm_starts(cfg)


if __name__ == "__main__":
    main()
