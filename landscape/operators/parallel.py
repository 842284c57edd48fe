"""The collectives of a distributed curvature operator: totals at construction, the sum of each product.

Rank ``r`` holds ``N_r`` samples; ``N = sum_r N_r``. For a mean-reduced loss, with ``D_r`` the sum of
rank ``r``'s batch normalisers (:mod:`landscape.operators.reduction`; ``N_r`` for a per-sample mean),
``D = sum_r D_r`` and ``loss_r``, ``g_r`` the mean loss and gradient over rank ``r``'s data, the full-data
ones are ``sum_r (D_r / D) loss_r`` and ``sum_r (D_r / D) g_r``; for a sum-reduced loss, ``sum_r loss_r``
and ``sum_r g_r``. A product is ``sum_r sum_{b on r} w_b M_b v`` (``w_b = d_b / D``, or 1), each rank adding
its own terms before one ``all_reduce``. Sums over ranks are in float64 at construction (once), in the
operator's dtype for products.

The collectives also check that the ranks agree, which the solvers on top rely on: the same dimension
and parameters (at construction, parameters to ``1e-9`` relative), and the same input vectors at every
product (their sums to ``64 eps`` relative to the sums of their magnitudes, a check that costs two
numbers per vector in the same ``all_reduce``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from landscape.data.distributed import DistributedError, StatusBuffer
from landscape.operators.checks import DataPass

PARAMETER_RTOL = 1e-9
VECTOR_EPS_MULTIPLE = 64


def reduce_pass(first: DataPass | None, failure: BaseException | None, dim: int, primals: dict[str, Tensor],
                group: dist.ProcessGroup, what: str,
                normaliser: float | None = None) -> tuple[int, float | None, float, Tensor]:
    """``(N, D, loss, gradient)`` over all ranks from this rank's pass ``first`` over its ``dim``-dimensional
    operator (``None`` with ``failure``, the exception that ended it: every rank then raises), for a
    mean-reduced loss whose batch normalisers sum to ``normaliser`` on this rank (``D_r``), or a
    sum-reduced one (``normaliser=None``; ``D`` is then ``None``). Two ``all_reduce`` calls: the ranks'
    dimension, parameter sums, sample counts, normalisers and failures; then their weighted losses and
    gradients."""
    reference = next(iter(primals.values()))
    params = torch.cat([p.detach().reshape(-1).double() for p in primals.values()])
    local = 0 if first is None else sum(first.sizes)
    scalars = torch.tensor([float(local), float(normaliser or 0.0), float(normaliser is None)],
                           dtype=torch.float64, device=reference.device)
    status = torch.cat([torch.tensor([float(dim)], dtype=torch.float64, device=reference.device),
                        params.sum()[None], params.abs().sum()[None], scalars])
    counts = StatusBuffer((0,), 6, group, torch.float64, reference.device)
    table = counts.reduce(status, failure, what)
    if np.any(table[:, 0] != table[counts.rank, 0]):
        raise DistributedError(f"the ranks' operators have different dimensions {table[:, 0].astype(int).tolist()}: "
                               "every rank must pass the same model, parameter selection and masks")
    differ = np.flatnonzero(np.abs(table[:, 1] - table[counts.rank, 1]) > PARAMETER_RTOL * table[counts.rank, 2])
    if differ.size:
        raise DistributedError(f"the ranks' models have different parameters (rank(s) {differ.tolist()} differ from "
                               f"rank {counts.rank}): load the same checkpoint on every rank, or seed the "
                               "initialisation identically (landscape.data.distributed.seed_all)")
    if np.any(table[:, 5] != table[counts.rank, 5]):
        raise DistributedError("the ranks' losses reduce differently (some 'mean', some 'sum'): every rank must "
                               "pass the same loss_fn and reduction")
    total = int(table[:, 3].sum())
    scale = 1.0 if normaliser is None else float(table[:, 4].sum())
    sums = StatusBuffer((1 + dim,), 0, group, torch.float64, reference.device)
    sums.body[0] = first.loss.double() * (normaliser or 1.0)
    sums.body[1:] = first.gradient.double() * (normaliser or 1.0)
    sums.reduce(sums.body[:0], None, what)
    return (total, None if normaliser is None else scale, float(sums.body[0]) / scale,
            (sums.body[1:] / scale).to(first.gradient.dtype))


def reduce_product(packed: StatusBuffer, rows: Tensor, failure: BaseException | None, what: str) -> None:
    """Sum this rank's product ``packed.body`` (``(b, dim)``, for the input ``rows``) over the ranks in place;
    raise if a rank failed or the ranks' inputs differ."""
    status = torch.cat([rows.sum(dim=1), torch.linalg.vector_norm(rows, ord=1, dim=1)])
    table = packed.reduce(status, failure, what)
    b = rows.shape[0]
    sums, own = table[:, :b], table[packed.rank, :b]
    tolerance = VECTOR_EPS_MULTIPLE * torch.finfo(rows.dtype).eps * table[packed.rank, b:]
    agree = (np.abs(sums - own) <= tolerance) | (np.isnan(sums) & np.isnan(own))   # NaN inputs: the finite check
    differ = np.flatnonzero(~agree.all(axis=1))
    if differ.size:
        raise DistributedError(
            f"rank(s) {differ.tolist()} applied {what} to other vectors than rank {packed.rank}: every rank must "
            "run the same solver call with the same arguments and seed, on the same type of device (the "
            "ranks' random vectors or arithmetic differ otherwise)")
