"""Cost of `landscape.interpolate` per interpolation coefficient against a bare forward pass over the same data.

    python analyses/benchmark_interpolation.py [--points 31] [--rounds 5] [--threads 1] [--clock wall|cpu]
    python analyses/benchmark_interpolation.py --quick    # 3 α, one round: ~5 s (CI smoke test)

Issue 5 asks the evaluation of a path to cost close to its limit: one forward pass over the evaluated data
per α, plus one over the training data when BatchNorm statistics are recomputed. This measures it on the
MNIST-1D ``cnn1d`` (landscape.models.registry; 32 channels) without BatchNorm and with it (``batchnorm=True``), the
two endpoints two initialisations (the cost does not depend on the weights), float32, on the data the
instability analysis evaluates: the train (4,000) and test (1,000) splits in chunks of 1,024.

Per round, interleaved round-robin after one warm-up round, keeping each measurement's best round (a shared
machine slows some rounds; ``--clock cpu`` counts this process's CPU time, which other processes do not
inflate; use it with ``--threads 1``):

* ``forward``: ``model(x)`` under ``torch.no_grad`` over both splits, eval mode: the bare forward pass;
* ``evaluate``: :func:`landscape.evaluate` over both splits (forward + loss + accuracy);
* ``BN reset``: :func:`landscape.connectivity.interpolation.reset_batchnorm` on the train split (BatchNorm model only);
* ``interpolate``: :func:`landscape.connectivity.interpolation.interpolate` over ``{"train", "test"}`` with ``points``
  α, divided by ``points``; with BatchNorm both ``batchnorm="interpolate"`` and ``"reset"`` (the default).

Printed: milliseconds per α and the ratios to ``forward`` and to ``evaluate`` (the limit: a path's point
needs its loss and accuracy); for ``reset`` also the ratio to its limit, ``evaluate`` + ``BN reset``.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from landscape.connectivity.interpolation import EVAL_BATCH, interpolate, reset_batchnorm
from landscape.data.batches import chunked
from landscape.data.registry import load_dataset
from landscape.training import Hparams, init_model
from landscape.training.evaluation import evaluate

Case = tuple[Callable[[], object], int]   # (run once, α values it covers)


@dataclass(frozen=True)
class Config:
    points: int   # α values of each interpolation
    rounds: int   # timed interleaved rounds, after one warm-up round


FULL = Config(points=31, rounds=5)
QUICK = Config(points=3, rounds=1)


@torch.no_grad()
def forward(model: nn.Module, data: dict[str, list[tuple[Tensor, Tensor]]]) -> None:
    for batches in data.values():
        for x, _ in batches:
            model(x)


def cases(batchnorm: bool, data: dict[str, list[tuple[Tensor, Tensor]]], points: int) -> dict[str, Case]:
    """The measurements of the cnn1d with or without BatchNorm."""
    a, b = (init_model(Hparams(model="cnn1d", model_kwargs={"batchnorm": batchnorm}, init_seed=seed)).eval()
            for seed in (0, 1))
    loss_fn = nn.CrossEntropyLoss()
    out: dict[str, Case] = {"forward": (lambda: forward(a, data), 1),
                            "evaluate": (lambda: [evaluate(a, loss_fn, d) for d in data.values()], 1)}
    if batchnorm:
        work = init_model(Hparams(model="cnn1d", model_kwargs={"batchnorm": True})).eval()
        out["BN reset"] = (lambda: reset_batchnorm(work, data["train"]), 1)
        for mode in ("interpolate", "reset"):
            out[f"interpolate, batchnorm={mode}"] = (
                lambda mode=mode: interpolate(a, b, loss_fn, data, points, batchnorm=mode), points)
    else:
        out["interpolate"] = (lambda: interpolate(a, b, loss_fn, data, points), points)
    return out


def interleaved(measurements: dict[str, Case], rounds: int, clock: Callable[[], float]) -> dict[str, float]:
    """Best seconds per α of each case over ``rounds`` round-robin rounds (after one warm-up)."""
    best = {name: float("inf") for name in measurements}
    for round_ in range(rounds + 1):
        for name, (run, alphas) in measurements.items():
            start = clock()
            run()
            seconds = (clock() - start) / alphas
            if round_ > 0:
                best[name] = min(best[name], seconds)
    return best


def report(best: dict[str, float]) -> None:
    forward, evaluated = best["forward"], best["evaluate"]
    for name, seconds in best.items():
        print(f"  {name:<44s} {seconds * 1e3:8.2f} ms per α  {seconds / forward:5.2f} x forward  "
              f"{seconds / evaluated:5.2f} x evaluate")
    if "BN reset" in best:
        print(f"  {'interpolate, reset / (evaluate + BN reset)':<44s} "
              f"{best['interpolate, batchnorm=reset'] / (evaluated + best['BN reset']):5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 α, one round: a CI smoke run")
    parser.add_argument("--points", type=int, default=None, help=f"default {FULL.points}, quick {QUICK.points}")
    parser.add_argument("--rounds", type=int, default=None, help=f"default {FULL.rounds}, quick {QUICK.rounds}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    cfg = dataclasses.replace(QUICK if args.quick else FULL, **{
        name: getattr(args, name) for name in ("points", "rounds") if getattr(args, name) is not None})
    torch.set_num_threads(args.threads)
    dataset = load_dataset("mnist1d")
    data = {"train": chunked(*dataset.train, EVAL_BATCH), "test": chunked(*dataset.test, EVAL_BATCH)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, MNIST-1D train "
          f"{len(dataset.train[0])} + test {len(dataset.test[0])} samples in chunks of {EVAL_BATCH}, "
          f"{cfg.points} α, best of {cfg.rounds} interleaved rounds, {args.clock} clock")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for batchnorm in (False, True):
        print(f"\ncnn1d{' with BatchNorm' if batchnorm else ''}")
        report(interleaved(cases(batchnorm, data, cfg.points), cfg.rounds, clock))


if __name__ == "__main__":
    main()
