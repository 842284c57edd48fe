"""Task [4] of ``analyses/benchmark_solvers.py``: spectral density by SLQ on exact products, the mass below
``-1e-3 |lambda|_max`` against the exact fraction and the Wasserstein-1 distance to the exact spectrum; ours
against hessian-eigenthings and curvlinops, and what PyHessian's ``density()`` raises."""
from __future__ import annotations

import time

import numpy as np
import torch
from pyhessian import hessian as PyHessian

from landscape.linalg import density
from solvers import harness
from solvers.harness import CE, Case, Config, he_counted


def negative_mass(nodes: np.ndarray, weights: np.ndarray, tol: float) -> float:
    """Mean over runs of the quadrature weight on nodes below ``-tol``; rows are runs."""
    return float(np.mean(np.sum(np.where(nodes < -tol, weights, 0.0), axis=1)))


def wasserstein(nodes: np.ndarray, weights: np.ndarray, evals: np.ndarray) -> float:
    """W1 distance between the averaged quadrature measure and the exact spectral measure (uniform on the
    eigenvalues), divided by the spectral range."""
    w = weights.reshape(-1) / weights.sum()
    keep = np.isfinite(nodes.reshape(-1))
    pts = np.concatenate([nodes.reshape(-1)[keep], evals])
    mass = np.concatenate([w[keep], -np.full(evals.size, 1.0 / evals.size)])
    order = np.argsort(pts, kind="stable")
    cdf = np.cumsum(mass[order])[:-1]
    return float(np.sum(np.abs(cdf) * np.diff(pts[order])) / (evals[-1] - evals[0]))


def density_task(case: Case, cfg: Config) -> tuple[float, list[tuple[str, float, str, float, int]], str]:
    tol = 1e-3 * float(np.abs(case.evals).max())
    exact = float(np.mean(case.evals < -tol))
    steps, runs, A = cfg.slq_steps, cfg.slq_runs, case.exact
    out = []
    A.count = 0
    dens = density(A, steps=steps, runs=runs, seed=0)
    frac = dens.negative_fraction(tol)
    out.append(("landscape density", frac.value,
                f"+- {frac.error:.3f} (95%: stderr {frac.stderr:.3f}, quadrature bound {frac.quadrature_error:.3f})"
                + ("" if frac.reliable else ", unreliable"),
                wasserstein(dens.nodes.numpy(), dens.weights.numpy(), case.evals), A.count))
    if harness.HE is not None:
        op, count = he_counted(A.matvec, case.dim)
        res = harness.HE.spectral_density(op, num_runs=runs, lanczos_steps=steps, num_grid_points=200, seed=0)
        nodes, weights = res.raw_eigenvalues.numpy(), res.raw_weights.numpy()
        mass = negative_mass(np.nan_to_num(nodes, nan=np.inf), weights, tol)   # padding is nan
        out.append(("hessian-eigenthings spectral_density", mass, "no error bar",
                    wasserstein(nodes, weights, case.evals), count[0]))
    if harness.CL is not None:
        A.count, nodes, weights = 0, [], []
        for r in range(runs):
            torch.manual_seed(r)
            theta, S = harness.fast_lanczos(A, ncv=steps)
            nodes.append(theta.numpy())
            weights.append((S[0] ** 2).numpy())
        nodes, weights = np.array(nodes), np.array(weights)
        out.append(("curvlinops fast_lanczos (Papyan's SLQ)", negative_mass(nodes, weights, tol),
                    "no error bar, no reorthogonalisation", wasserstein(nodes, weights, case.evals), A.count))
    try:   # on the model itself: it runs `steps` products, then calls torch.eig
        PyHessian(case.model, CE, data=(case.X, case.Y), cuda=False).density(iter=steps, n_v=runs)
        crash = "did not crash"
    except Exception as error:   # noqa: BLE001 - the point is to show what it raises
        crash = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    case.model.zero_grad(set_to_none=True)
    return exact, out, crash



def run(case: Case, cfg: Config) -> list[str]:
    """Print table [4] for ``case``; return its target line."""
    targets: list[str] = []
    task = time.perf_counter()
    exact, dens, crash = density_task(case, cfg)
    print(f"  [4] SLQ, {cfg.slq_steps} steps x {cfg.slq_runs} runs; mass below -1e-3|lambda|max, exact "
          f"{exact:.4f} ({time.perf_counter() - task:.0f} s)")
    print(f"    {'method':<40s} {'matvecs':>7s} {'negative':>8s} {'error':>8s} {'W1/range':>9s}  error bar")
    for label, value, bar, w1, mv in dens:
        print(f"    {label:<40s} {mv:7d} {value:8.4f} {value - exact:+8.4f} {w1:9.2e}  {bar}")
    print(f"    PyHessian density(iter={cfg.slq_steps}, n_v={cfg.slq_runs}): {crash}")
    targets.append(f"density negative mass (no numeric target): ours {dens[0][1]:.4f} vs exact {exact:.4f}"
                   + "".join(f"; {lab.split()[0]} {val:.4f}" for lab, val, *_ in dens[1:]))
    return targets
