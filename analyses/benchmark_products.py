"""Cost of curvature products in `landscape` against one gradient and against PyHessian, in one run.

    python analyses/benchmark_products.py [--samples 2000] [--rounds 7] [--threads 2] [--clock wall|cpu]
    python analyses/benchmark_products.py --quick    # 200 samples, one round, one thread: ~10 s (CI smoke test)

Two models as in issue 3: an MNIST-1D MLP (40 -> 144 -> 10, tanh; 7.4k parameters) and a 1-D CNN with
BatchNorm in eval mode (3.1k parameters), cross-entropy, float32. Data: the MNIST-1D training set from
``landscape.data.registry`` (random inputs of the same shape if the registry is missing: the cost of a
product does not depend on the values).

Every measurement below runs once per round, all of them interleaved round-robin, and keeps its best
round: a machine shared with other work slows some rounds, and interleaving keeps the ratios of one run
comparable. ``--clock cpu`` times by this process's CPU time instead of wall time, which other processes
do not inflate (use it with ``--threads 1`` on a busy machine: with more threads it also counts the time
threads spend waiting for each other). Times are per vector and printed as multiples of one gradient
(forward + backward of the mean loss over the same N samples):

* one batch (all N samples): a Hessian-vector product fresh (graph built for it, as an uncached
  operator does), on the reused graph, per vector in a matmat of 10 vectors, for each method
  ("reverse", "forward") and "auto"; PyHessian 0.1 (`pyhessian.hessian`, `data=` mode, graph built once
  and reused) fresh and reused; GGN and empirical Fisher per vector in a matmat of 10;
* ten batches of N/10: per vector in a matmat of 10 with the batches' graphs cached and uncached
  (graphs rebuilt per product and shared by its 10 vectors), single uncached products, and PyHessian's
  `dataloader=` mode (forward and first backward redone per batch per product).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyhessian import hessian as PyHessian
from pyhessian.utils import hessian_vector_product
from torch import Tensor, nn

from landscape.operators import GGN, Fisher, Hessian

CE = nn.CrossEntropyLoss()
Case = tuple[Callable[[], object], int]   # (run once, vectors it computes)


@dataclass(frozen=True)
class Config:
    samples: int   # N, the training samples of the one batch (and of the ten batches together)
    rounds: int    # timed interleaved rounds, after one warm-up round
    threads: int   # torch intra-op threads


FULL = Config(samples=2000, rounds=7, threads=2)
QUICK = Config(samples=200, rounds=1, threads=1)


def mnist1d_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(40, 144), nn.Tanh(), nn.Linear(144, 10))


def bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 16, 5, padding=2, stride=2), nn.BatchNorm1d(16), nn.ReLU(),
        nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def load_data(samples: int) -> tuple[Tensor, Tensor, str]:
    """The first ``samples`` MNIST-1D training samples, or random data of the same shape without the registry."""
    try:
        from landscape.data.registry import mnist1d
    except ImportError:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(samples, 40, generator=gen), torch.randint(0, 10, (samples,), generator=gen), "random"
    x, y = mnist1d().train
    return x[:samples], y[:samples], "mnist1d"


def pyhessian_product(model: nn.Module, data: tuple[Tensor, Tensor]) -> tuple[Callable[[], object], Case]:
    """PyHessian's reused-graph product, and a fresh one (constructor, which builds the graph, + product)."""
    ph = PyHessian(model, CE, data=data, cuda=False)
    v = [torch.randn_like(p) for p in ph.params]

    def fresh() -> None:
        other = PyHessian(model, CE, data=data, cuda=False)
        hessian_vector_product(other.gradsH, other.params, v)
    return (lambda: hessian_vector_product(ph.gradsH, ph.params, v)), fresh


def cases(model: nn.Module, x: Tensor, y: Tensor) -> tuple[dict[str, Case], dict[str, str]]:
    """Every measurement of one model, and notes (choices of "auto", cached memory)."""
    n = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    v, V = torch.randn(n, generator=gen), torch.randn(n, 10, generator=gen)
    params = list(model.parameters())
    batches = list(zip(x.chunk(10), y.chunk(10)))
    out: dict[str, Case] = {"gradient": (lambda: torch.autograd.grad(CE(model(x), y), params), 1)}
    notes = {}
    for method in ("reverse", "forward"):
        fresh = Hessian(model, CE, (x, y), method=method, cache_bytes=0)
        reused = Hessian(model, CE, (x, y), method=method)
        out[f"1 batch: HVP fresh, {method}"] = (lambda op=fresh: op @ v, 1)
        if method == "reverse":
            out["1 batch: HVP on the reused graph, reverse"] = (lambda op=reused: op @ v, 1)
        out[f"1 batch: per vector in matmat(10), {method}"] = (lambda op=reused: op.matmat(V), 10)
    auto = Hessian(model, CE, (x, y))
    for _ in range(4):   # its trials at 1 and at 10 vectors: then it has chosen for both block sizes
        auto @ v
        auto.matmat(V)
    out["1 batch: per vector in matmat(10), auto"] = (lambda: auto.matmat(V), 10)
    notes["auto, one batch"] = (", ".join(f"{m} at {2 ** octave}+ vectors: {1e3 * min(t):.2f} ms"
                                          for (m, octave), t in auto.method_choice.seconds.items())
                                + f"; uses {auto.method_for(1)} for 1 vector, {auto.method_for(10)} for 10")
    reused_ph, fresh_ph = pyhessian_product(model, (x, y))
    out["1 batch: PyHessian HVP fresh (constructor + product)"] = (fresh_ph, 1)
    out["1 batch: PyHessian HVP on the reused graph"] = (reused_ph, 1)
    ggn, fisher = GGN(model, CE, (x, y)), Fisher(model, CE, (x, y))
    out["1 batch: GGN, per vector in matmat(10), auto"] = (lambda: ggn.matmat(V), 10)
    out["1 batch: empirical Fisher, per vector in matmat(10), cached"] = (lambda: fisher.matmat(V), 10)

    cached, uncached = Hessian(model, CE, batches), Hessian(model, CE, batches, cache_bytes=0)
    notes["10 batches cached"] = f"{cached.cached_bytes / 2 ** 20:.1f} MiB kept (inputs and retained graphs)"
    out["10 batches: per vector in matmat(10), cached, auto"] = (lambda: cached.matmat(V), 10)
    out["10 batches: per vector in matmat(10), uncached, auto"] = (lambda: uncached.matmat(V), 10)
    out["10 batches: single product, uncached, auto"] = (lambda: uncached @ v, 1)
    ph = PyHessian(model, CE, dataloader=batches, cuda=False)
    pv = [torch.randn_like(p) for p in ph.params]
    out["10 batches: PyHessian dataloader_hv_product"] = (lambda: ph.dataloader_hv_product(pv), 1)
    return out, notes


def interleaved(measurements: dict[str, Case], rounds: int, clock: Callable[[], float]) -> dict[str, float]:
    """Best seconds per vector of each case over ``rounds`` round-robin rounds (after one warm-up)."""
    best = {name: float("inf") for name in measurements}
    for round_ in range(rounds + 1):
        for name, (run, vectors) in measurements.items():
            start = clock()
            run()
            seconds = (clock() - start) / vectors
            if round_ > 0:
                best[name] = min(best[name], seconds)
    return best


def report(best: dict[str, float]) -> None:
    unit = best["gradient"]
    for name, seconds in best.items():
        print(f"  {name:<62s} {seconds * 1e3:9.2f} ms  {seconds / unit:6.2f} x gradient")
    ratios = [
        ("PyHessian reused / landscape reused (single vectors)", "1 batch: PyHessian HVP on the reused graph",
         "1 batch: HVP on the reused graph, reverse"),
        ("PyHessian fresh / landscape fresh (reverse)", "1 batch: PyHessian HVP fresh (constructor + product)",
         "1 batch: HVP fresh, reverse"),
        ("PyHessian reused / landscape per vector in matmat(10), auto", "1 batch: PyHessian HVP on the reused graph",
         "1 batch: per vector in matmat(10), auto"),
        ("10 batches: landscape single / per vector in matmat(10), uncached",
         "10 batches: single product, uncached, auto", "10 batches: per vector in matmat(10), uncached, auto"),
        ("10 batches: landscape single / per vector in matmat(10), cached",
         "10 batches: single product, uncached, auto", "10 batches: per vector in matmat(10), cached, auto"),
        ("10 batches: PyHessian dataloader / landscape matmat(10), uncached",
         "10 batches: PyHessian dataloader_hv_product", "10 batches: per vector in matmat(10), uncached, auto"),
        ("10 batches: PyHessian dataloader / landscape matmat(10), cached",
         "10 batches: PyHessian dataloader_hv_product", "10 batches: per vector in matmat(10), cached, auto"),
    ]
    print(" ratios of time per vector (> 1: landscape is cheaper):")
    for label, numerator, denominator in ratios:
        print(f"  {label:<70s} {best[numerator] / best[denominator]:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 samples, one round, one thread: a CI smoke run")
    parser.add_argument("--samples", type=int, default=None, help=f"default {FULL.samples}, quick {QUICK.samples}")
    parser.add_argument("--rounds", type=int, default=None, help=f"default {FULL.rounds}, quick {QUICK.rounds}")
    parser.add_argument("--threads", type=int, default=None, help=f"default {FULL.threads}, quick {QUICK.threads}")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    cfg = dataclasses.replace(QUICK if args.quick else FULL, **{
        name: getattr(args, name) for name in ("samples", "rounds", "threads") if getattr(args, name) is not None})
    warnings.filterwarnings("ignore", message="Using backward")   # PyHessian's create_graph=True on .grad
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    x, y, source = load_data(cfg.samples)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, data: {source}, N={x.shape[0]}, "
          f"best of {cfg.rounds} interleaved rounds, {args.clock} clock")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for name, model in (("MNIST-1D MLP", mnist1d_mlp()), ("CNN with BatchNorm (eval)", bn_cnn().eval())):
        print(f"\n{name}, {sum(p.numel() for p in model.parameters())} parameters")
        measurements, notes = cases(model, x, y)
        for key, note in notes.items():
            print(f"  [{key}] {note}")
        report(interleaved(measurements, cfg.rounds, clock))
        model.zero_grad(set_to_none=True)   # PyHessian leaves .grad (with graphs) on the model


if __name__ == "__main__":
    main()
