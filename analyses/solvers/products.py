"""Task [5] of ``analyses/benchmark_solvers.py``: Hessian products over 10 batches (float32), per-vector time
of ours (matmat of 10, single, graphs cached and uncached) against PyHessian's ``dataloader=`` mode,
hessian-eigenthings' full-data operator and curvlinops, timed by ``benchmark_products.interleaved``."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
from pyhessian import hessian as PyHessian
from torch import Tensor

from benchmark_products import interleaved
from landscape.operators import Hessian
from solvers import harness
from solvers.harness import CE, Case, Config, verdict


def products_task(case: Case, x: Tensor, y: Tensor, cfg: Config) -> dict[str, float]:
    model = case.model32
    n = sum(p.numel() for p in model.parameters())
    xs, ys = x[:cfg.samples_products], y[:cfg.samples_products]
    batches = list(zip(xs.chunk(10), ys.chunk(10)))
    gen = torch.Generator().manual_seed(2)
    v, V = torch.randn(n, generator=gen), torch.randn(n, 10, generator=gen)
    cached, uncached = Hessian(model, CE, batches), Hessian(model, CE, batches, cache_bytes=0)
    ph = PyHessian(model, CE, dataloader=batches, cuda=False)
    pv = [torch.randn_like(p) for p in ph.params]
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "landscape matmat(10), graphs cached": (lambda: cached.matmat(V), 10),
        "landscape matmat(10), uncached": (lambda: uncached.matmat(V), 10),
        "landscape single product, cached": (lambda: cached @ v, 1),
        "landscape single product, uncached": (lambda: uncached @ v, 1),
        "PyHessian dataloader_hv_product": (lambda: ph.dataloader_hv_product(pv), 1),
    }
    if harness.HE is not None:
        he = harness.HE.HessianOperator(model, batches, harness.HE.supervised_loss(CE))
        cases["hessian-eigenthings matvec (full data)"] = (lambda: he.matvec(v), 1)
    if harness.CL is not None:
        cl = harness.CL.HessianLinearOperator(model, CE, [p for p in model.parameters()], batches)
        cases["curvlinops @ V (10 columns)"] = (lambda: cl @ V, 10)
        cases["curvlinops @ v"] = (lambda: cl @ v, 1)
    best = interleaved(cases, cfg.repeats, harness.CLOCK)
    model.zero_grad(set_to_none=True)
    return best



def run(case: Case, x: Tensor, y: Tensor, cfg: Config) -> list[str]:
    """Print table [5] for ``case`` (products over the first ``cfg.samples_products`` of ``x``, ``y``); return
    its target line."""
    targets: list[str] = []
    task = time.perf_counter()
    best = products_task(case, x, y, cfg)
    print(f"  [5] Hessian products over 10 batches of {cfg.samples_products // 10} (float32), ms per vector, "
          f"best of {cfg.repeats} interleaved rounds ({time.perf_counter() - task:.0f} s)")
    base = best["landscape matmat(10), uncached"]
    for label, seconds in best.items():
        print(f"    {label:<44s} {seconds * 1e3:9.2f} ms  {seconds / base:6.2f} x landscape matmat(10) "
              "uncached")
    single = best["landscape single product, uncached"]
    cached = best["landscape matmat(10), graphs cached"]
    targets.append(f"10 batches, per vector: single/matmat(10) >= 1.5: uncached "
                   f"{single / base:.2f} {verdict(single >= 1.5 * base)}, cached graphs "
                   f"{best['landscape single product, cached'] / cached:.2f}; "
                   f"PyHessian dataloader/ours matmat(10) uncached "
                   f"{best['PyHessian dataloader_hv_product'] / base:.1f}x, cached "
                   f"{best['PyHessian dataloader_hv_product'] / cached:.1f}x")
    return targets
