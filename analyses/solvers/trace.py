"""Task [3] of ``analyses/benchmark_solvers.py``: trace with 99 products over ``cfg.seeds`` seeds on exact
products: spread, reported standard error and its coverage, ours (XTrace, Hutch++, Hutchinson) against
PyHessian, hessian-eigenthings' Hutch++ and curvlinops' Hutchinson and XTrace."""
from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pyhessian import hessian as PyHessian

from landscape.linalg import trace
from solvers import harness
from solvers.harness import CE, Case, Config, he_counted, pyhessian_products, verdict

TRACE_MATVECS = 99
OUR_TRACE_METHODS = ("xtrace", "hutch++", "hutchinson")
DEFAULT_TRACE = inspect.signature(trace).parameters["method"].default


@dataclass
class TraceRow:
    library: str
    values: list[float]
    stderrs: list[float] | None
    matvecs: float


def trace_task(case: Case, cfg: Config) -> list[TraceRow]:
    """Every estimator over ``cfg.seeds`` seeds on exact products; ours first, our default (``trace``'s
    ``method``) first of all."""
    A, seeds, m = case.exact, range(cfg.seeds), TRACE_MATVECS
    rows = []
    for method in sorted(OUR_TRACE_METHODS, key=lambda name: name != DEFAULT_TRACE):
        res = [trace(A, m, method, seed=s) for s in seeds]
        label = f"landscape trace {method}" + (" (default)" if method == DEFAULT_TRACE else "")
        rows.append(TraceRow(label, [r.value for r in res], [r.stderr for r in res],
                             float(np.mean([r.matvecs for r in res]))))
    ph = PyHessian(case.model, CE, data=(case.X, case.Y), cuda=False)
    for label, kwargs in ((f"PyHessian trace(maxIter={m}, tol=0)", {"maxIter": m, "tol": 0.0}),
                          ("PyHessian trace() defaults", {})):
        values, counts = [], []
        for s in seeds:
            counter = [0]
            torch.manual_seed(s)
            with pyhessian_products(A.matvec, counter):
                values.append(float(np.mean(ph.trace(**kwargs))))
            counts.append(counter[0])
        rows.append(TraceRow(label, values, None, float(np.mean(counts))))
    case.model.zero_grad(set_to_none=True)
    if harness.HE is not None:
        op, count = he_counted(A.matvec, case.dim)
        res = [harness.HE.hutch_plus_plus(op, num_matvecs=m, seed=s) for s in seeds]
        rows.append(TraceRow("hessian-eigenthings hutch_plus_plus", [r.estimate for r in res],
                             [r.stderr for r in res], count[0] / len(res)))
    if harness.CL is not None:
        for label, fn, mv in (("curvlinops hutchinson_trace", harness.CL.hutchinson_trace, m),
                              ("curvlinops xtrace", harness.CL.xtrace, m - 1)):   # xtrace needs an even count
            values, A.count = [], 0
            for s in seeds:
                torch.manual_seed(s)
                values.append(float(fn(A, mv)))
            rows.append(TraceRow(label, values, None, A.count / len(values)))
    return rows


def coverage(values: np.ndarray, stderrs: Sequence[float], truth: float) -> float:
    """Fraction of seeds whose ``value +- 2 stderr`` contains ``truth``."""
    return float(np.mean(np.abs(values - truth) <= 2 * np.asarray(stderrs)))



def run(case: Case, cfg: Config) -> list[str]:
    """Print table [3] for ``case``; return its target lines."""
    targets: list[str] = []
    task = time.perf_counter()
    tr = trace_task(case, cfg)
    truth = float(case.evals.sum())
    D = case.D
    hutchinson_std = math.sqrt(2 * (float((D * D).sum()) - float((D.diagonal() ** 2).sum())) / TRACE_MATVECS)
    print(f"  [3] trace, {TRACE_MATVECS} products (xtrace: {TRACE_MATVECS - 1}, the even count below), "
          f"{cfg.seeds} seeds; exact {truth:.6g}; exact spread of Hutchinson {hutchinson_std:.3g} "
          f"({time.perf_counter() - task:.0f} s)")
    print(f"    {'estimator':<38s} {'matvecs':>7s} {'spread':>9s} {'rel':>8s} {'mean err':>9s} "
          f"{'stderr':>9s} {'covered (2 stderr)':>18s}")
    for r in tr:
        vals = np.array(r.values)
        spread = float(vals.std(ddof=1))
        se = "-" if r.stderrs is None else f"{np.sqrt(np.mean(np.square(r.stderrs))):9.3g}"
        cover = "-" if r.stderrs is None else f"{coverage(vals, r.stderrs, truth):.2f} +- " \
            f"{math.sqrt(0.95 * 0.05 / len(vals)):.2f}"
        print(f"    {r.library:<38s} {r.matvecs:7.1f} {spread:9.3g} {spread / abs(truth):8.1e} "
              f"{vals.mean() - truth:+9.2g} {se:>9s} {cover:>18s}")
    spreads = {r.library: float(np.std(r.values, ddof=1)) for r in tr}
    ours_name = tr[0].library
    ours_label = f"{DEFAULT_TRACE}, our default"
    peers_t = {name: sd for name, sd in spreads.items()
               if not name.startswith("landscape") and "defaults" not in name}
    best_name = min(peers_t, key=peers_t.get)
    ratio = spreads[ours_name] / peers_t[best_name]
    targets.append(f"trace spread at ~{TRACE_MATVECS} matvecs, ours ({ours_label}) "
                   f"<= best peer ({best_name}): {spreads[ours_name]:.3g} vs {peers_t[best_name]:.3g} = "
                   f"{ratio:.2f} +- {ratio / math.sqrt(cfg.seeds - 1):.2f}x {verdict(ratio <= 1)} (spreads "
                   f"from {cfg.seeds} seeds, each +-{100 / math.sqrt(2 * (cfg.seeds - 1)):.0f}%; exact "
                   f"Hutchinson spread {hutchinson_std:.3g})")
    targets.append(f"trace 2-stderr coverage, ours ({ours_label}) ~0.95: "
                   f"{coverage(np.array(tr[0].values), tr[0].stderrs, truth):.2f} +- "
                   f"{math.sqrt(0.95 * 0.05 / cfg.seeds):.2f} (binomial)")
    print(f"    spread relative to ours ({ours_label}): " + ", ".join(
        f"{name.removeprefix('landscape trace ')} {sd / spreads[ours_name]:.2f}x"
        for name, sd in spreads.items() if name.startswith("landscape") and name != ours_name))
    return targets
