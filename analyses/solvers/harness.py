"""The shared harness of ``analyses/benchmark_solvers.py``: settings, the two problems with their dense float64
truth, exact counted products for every library's protocol, timing, and the table of solver rows.

The optional peers (hessian-eigenthings, curvlinops) are imported by :func:`load_peers` at the start of each
run, into ``HE``, ``CL`` and ``fast_lanczos`` (``None`` when not installed); ``CLOCK`` is the clock the run
times by. The task modules read both through this module, as ``harness.HE`` and ``harness.CLOCK()``.
"""
from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import Tensor, nn

from landscape.operators import Hessian

PH_MODULE = importlib.import_module("pyhessian.hessian")   # `pyhessian.hessian` the attribute is the class
HE: Any = None                                 # hessian_eigenthings, when installed (see load_peers)
CL: Any = None                                 # curvlinops, when installed
fast_lanczos: Callable | None = None           # curvlinops' Lanczos spectrum, when installed
CLOCK: Callable[[], float] = time.perf_counter  # the run's clock: wall (default) or this process's CPU time

CE = nn.CrossEntropyLoss()
TARGET = 1e-4     # relative eigenvalue error asked
K = 5


def load_peers() -> list[str]:
    """Import the optional peers afresh into ``HE``, ``CL`` and ``fast_lanczos``; a NOTE line for each one
    missing, saying how to install it."""
    global HE, CL, fast_lanczos
    notes = []
    try:
        import hessian_eigenthings as he
    except ImportError as error:   # pragma: no cover - depends on the machine
        he = None
        notes.append(f"hessian-eigenthings is not installed ({error}); its rows appear when installed "
                     "(pip install --no-deps hessian-eigenthings)")
    try:
        import curvlinops as cl
        from curvlinops.papyan2020traces.spectrum import fast_lanczos as lanczos
    except ImportError as error:   # pragma: no cover
        cl = lanczos = None
        notes.append(f"curvlinops is not installed ({error}); its rows appear when installed "
                     "(pip install --no-deps curvlinops-for-pytorch einops einconv opt-einsum linear_operator)")
    HE, CL, fast_lanczos = he, cl, lanczos
    return notes


@dataclass(frozen=True)
class Config:
    mlp_widths: tuple[int, ...]
    cnn_channels: int
    samples_mlp: int
    samples_cnn: int
    samples_products: int
    train_steps: int
    repeats: int
    seeds: int
    slq_steps: int
    slq_runs: int
    arpack_cap: int        # matvecs after which an eigsh run counts as not converged
    pyhessian_max_iter: int
    long_run: float = 20.0  # seconds: a timed run longer than this is not repeated
    first_call_samples: int = 1000


FULL = Config(mlp_widths=(144,), cnn_channels=18, samples_mlp=500, samples_cnn=128, samples_products=1000,
              train_steps=300, repeats=3, seeds=20, slq_steps=90, slq_runs=10, arpack_cap=3000,
              pyhessian_max_iter=1000)
QUICK = Config(mlp_widths=(16,), cnn_channels=4, samples_mlp=128, samples_cnn=48, samples_products=100,
               train_steps=60, repeats=1, seeds=10, slq_steps=30, slq_runs=4, arpack_cap=1000,
               pyhessian_max_iter=300, long_run=5.0, first_call_samples=200)


# --- the problems ----------------------------------------------------------------------------------------

class Exact:
    """Products with the Hessian, exact to rounding, from whichever of the dense matrix and the cached
    operator multiplies faster here (for single vectors and for blocks separately); counts vectors.

    Duck-types every library's operator protocol: ``shape``/``dtype``/``device``/``matmat`` (landscape),
    ``A @ v`` and ``A @ V`` (curvlinops' estimators, ``fast_lanczos``), ``matvec`` (wrapped for the others).
    """

    def __init__(self, op: Hessian, D: Tensor):
        self.op, self.D = op, D
        self.shape, self.dtype, self.device = D.shape, D.dtype, D.device
        self.count = 0
        gen = torch.Generator().manual_seed(0)
        v = torch.randn(D.shape[0], 1, generator=gen, dtype=D.dtype)
        V = torch.randn(D.shape[0], 33, generator=gen, dtype=D.dtype)
        self.single = "dense" if _seconds(lambda: D @ v) < _seconds(lambda: op.matmat(v)) else "operator"
        self.block = "dense" if _seconds(lambda: D @ V) < _seconds(lambda: op.matmat(V)) else "operator"

    def matmat(self, V: Tensor) -> Tensor:
        self.count += V.shape[1]
        use = self.single if V.shape[1] == 1 else self.block
        return self.D @ V if use == "dense" else self.op.matmat(V)

    def matvec(self, v: Tensor) -> Tensor:
        return self.matmat(v.reshape(-1, 1).to(self.dtype))[:, 0]

    def __matmul__(self, v: Tensor) -> Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)


@dataclass
class Case:
    name: str
    model: nn.Module          # float64, eval mode
    model32: nn.Module        # float32 copy for the product timings
    X: Tensor
    Y: Tensor
    evals: np.ndarray         # ascending, dense float64
    D: Tensor
    exact: Exact
    describe: str
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        self.dim = self.D.shape[0]


def _seconds(run: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def train_briefly(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> tuple[nn.Module, float, float]:
    """Adam (lr 1e-2, batch 128) for ``steps`` steps: off a minimum, with negative curvature; eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (128,), generator=gen)
        opt.zero_grad()
        CE(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        out = model(x)
    return model, float(CE(out, y)), float((out.argmax(1) == y).float().mean())


def make_case(name: str, factory: Callable[[], nn.Module], samples: int, cfg: Config, x: Tensor, y: Tensor) -> Case:
    torch.manual_seed(0)
    model, loss, acc = train_briefly(factory(), x, y, cfg.train_steps)
    model64 = copy.deepcopy(model).double()
    X, Y = x[:samples].double(), y[:samples]
    start = time.perf_counter()
    op = Hessian(model64, CE, (X, Y))
    D = op.to_dense()
    D = (D + D.T) / 2
    dense_seconds = time.perf_counter() - start
    start = time.perf_counter()
    evals = torch.linalg.eigvalsh(D).numpy()
    eigh_seconds = time.perf_counter() - start
    dim = D.shape[0]
    describe = (f"{name}: {dim} parameters, Adam {cfg.train_steps} steps (train loss {loss:.3f}, accuracy {acc:.3f}); "
                f"Hessian over the first {samples} training samples, float64\n"
                f"  reference: dense Hessian ({dim} products, {dense_seconds:.0f} s) + eigvalsh "
                f"({eigh_seconds:.0f} s): "
                f"lambda_max {evals[-1]:.5g}, lambda_min {evals[0]:.5g}, trace {evals.sum():.5g}, "
                f"fraction below -1e-3|lambda|max {np.mean(evals < -1e-3 * np.abs(evals).max()):.4f}")
    return Case(name, model64, model, X, Y, evals, D, Exact(op, D), describe)


# --- measuring -------------------------------------------------------------------------------------------

@dataclass
class Row:
    library: str
    setting: str
    matvecs: int | None
    wall: float | None = None
    build: float | None = None
    error: float | None = None
    runs: int = 0
    note: str = ""
    settings: dict = field(default_factory=dict)
    rerun: Callable[[], Any] | None = field(default=None, repr=False)   # one more timed run
    builds: list[float] = field(default_factory=list, repr=False)        # build seconds of each run

    @property
    def ok(self) -> bool:
        return self.error is not None and self.error <= TARGET



def rel_err(approx: Sequence[float] | Tensor | np.ndarray, truth: np.ndarray) -> float:
    a = np.sort(np.asarray(torch.as_tensor(approx, dtype=torch.float64).cpu()))
    t = np.sort(truth)
    if a.size != t.size:
        return float("inf")
    return float(np.max(np.abs(a - t) / np.abs(t)))


def truth_of(case: Case, which: str) -> np.ndarray:
    return case.evals[-K:] if which == "largest" else case.evals[:K]


def first_run(run: Callable[[], Any]) -> tuple[Any, float]:
    """One timed run of ``run``; its output and seconds (by ``CLOCK``)."""
    start = CLOCK()
    out = run()
    return out, CLOCK() - start


def repeat_round_robin(rows: list[Row], cfg: Config) -> None:
    """Time every confirmed row ``cfg.repeats - 1`` more times, round-robin over the libraries so that a
    load on the machine that comes and goes does not favour one of them; keep the best. A row whose first
    run took over ``cfg.long_run`` seconds is not repeated."""
    for _ in range(cfg.repeats - 1):
        for row in rows:
            if row.rerun is None or not row.ok or row.wall > cfg.long_run:
                continue
            start = CLOCK()
            row.rerun()
            row.wall, row.runs = min(row.wall, CLOCK() - start), row.runs + 1
    for row in rows:
        if row.builds:
            row.build = min(row.builds)


def loosest(ok: Callable[[int], bool], n: int) -> int | None:
    """Smallest index ``i`` in ``range(n)`` (settings ordered loose -> tight) with ``ok(i)``, by bisection
    (errors fall as settings tighten); ``None`` when even the tightest fails."""
    if not ok(n - 1):
        return None
    lo, hi = -1, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


@contextmanager
def pyhessian_products(provider: Callable | None, counter: list[int]):
    """Count PyHessian's Hessian-vector products; with ``provider``, compute them by it (flat vectors)."""
    real = PH_MODULE.hessian_vector_product

    def counted(gradsH, params, v):
        counter[0] += 1
        if provider is None:
            return real(gradsH, params, v)
        flat = provider(torch.cat([t.reshape(-1).to(torch.float64) for t in v]))
        return [chunk.view_as(p).to(p.dtype) for chunk, p in zip(flat.split([p.numel() for p in params]), params)]
    PH_MODULE.hessian_vector_product = counted
    try:
        yield
    finally:
        PH_MODULE.hessian_vector_product = real


class Budget(Exception):
    pass


def scipy_counted(matvec: Callable[[np.ndarray], np.ndarray], n: int,
                  cap: int) -> tuple[spla.LinearOperator, list[int]]:
    count = [0]

    def apply(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > cap:
            raise Budget
        return matvec(np.asarray(x).reshape(-1))
    return spla.LinearOperator((n, n), matvec=apply, rmatvec=apply, dtype=np.float64), count


def he_counted(matvec: Callable[[Tensor], Tensor], n: int) -> tuple[Any, list[int]]:
    count = [0]

    def apply(v: Tensor) -> Tensor:
        count[0] += 1
        return matvec(v)
    return HE.LambdaOperator(apply, n, "cpu", torch.float64), count

def fmt(x: float | None, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"  {title}")
    print(f"    {'library':<20s} {'setting':<46s} {'matvecs':>7s} {'wall s':>8s} {'build s':>7s} "
          f"{'rel err':>8s} {'runs':>4s}  note")
    for r in rows:
        print(f"    {r.library:<20s} {r.setting:<46s} {fmt(r.matvecs, 'd'):>7s} {fmt(r.wall, '.3f'):>8s} "
              f"{fmt(r.build, '.3f'):>7s} {fmt(r.error, '.1e'):>8s} {fmt(r.runs or None, 'd'):>4s}  {r.note}")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"

