"""Curvature of a trained classifier over its training set, as the label-noise reproductions report it.

For a model and the data set it was trained on (the training labels it saw, noisy or random), the float64
Hessian ``H`` of the mean training loss (cross-entropy over every training sample, eval mode; units: loss per
parameter²) gives:

* the top ``k`` eigenvalues with their error bounds (:func:`landscape.eigs`),
* ``tr H`` and the effective dimensionality ``N_eff(z) = sum_i λ_i⁺ / (λ_i⁺ + z)`` (Maddox, Benton & Wilson
  2020) for each ``z`` asked, each with its standard error
  (:func:`landscape.instruments.flatness.flatness_at_scales`: the top ``k`` eigenpairs deflated, stochastic
  Lanczos quadrature on the rest, one solve and one SLQ for every ``z``),
* optionally the SLQ spectral density of ``H`` (:func:`landscape.density`), as nodes and weights.

Used by ``double_descent.py`` and ``random_labels.py``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from landscape import Hessian, density, eigs
from landscape.data import Dataset, chunked
from landscape.instruments.flatness import flatness_at_scales


def trained_curvature(model: nn.Module, dataset: Dataset, *, k: int, zs: Sequence[float], steps: int, runs: int,
                      eig_tol: float = 1e-3, density_steps: int = 0, density_runs: int = 0,
                      seed: int = 0) -> dict[str, Any]:
    """The measures above as a JSON-ready dict: ``eigenvalues``, ``eigenvalue_errors``, ``converged``,
    ``trace``, ``trace_stderr``, ``effective_dim`` and ``effective_dim_stderr`` (lists over ``zs``), ``zs``,
    ``dim``, ``matvecs`` and, with ``density_steps``, ``density`` (``nodes``, ``weights``, ``dim``)."""
    op = Hessian(model.eval(), dataset.loss_fn(), chunked(*dataset.train, 1024), dtype=torch.float64)
    n = op.shape[0]
    top = eigs(op, k=min(k, n - 1), which="largest", tol=eig_tol, seed=seed)
    measures = flatness_at_scales(op, zs, k=top.eigenvalues.numel(), steps=min(steps, n - top.eigenvalues.numel()),
                                  runs=runs, top=top, seed=seed)
    record = {"eigenvalues": top.eigenvalues.tolist(), "eigenvalue_errors": top.error_bounds.tolist(),
              "converged": bool(top.converged), "trace": measures[0].trace, "trace_stderr": measures[0].trace_stderr,
              "zs": list(zs), "effective_dim": [m.effective_dim for m in measures],
              "effective_dim_stderr": [m.effective_dim_stderr for m in measures], "dim": n}
    if density_steps:
        slq = density(op, steps=min(density_steps, n), runs=density_runs, seed=seed + 2)
        record["density"] = {"nodes": slq.nodes.tolist(), "weights": slq.weights.tolist(), "dim": slq.dim}
    record["matvecs"] = op.matvecs
    return record
