"""The trace of the Fisher information, the quantity Achille, Rovere & Soatto track through training
("Critical Learning Periods in Deep Networks", ICLR 2019), in loss per parameter^2.

With per-sample losses ``l_i`` (``loss_fn`` on a batch of one, read as a negative log-likelihood) and
gradients ``g_i = dl_i/dtheta`` over ``N`` samples:

* empirical: ``tr F_emp = (1/N) sum_i ||g_i||^2`` with the data's labels: exact, from per-sample gradients
  (``vmap`` over ``torch.func.grad``, chunked), shared with :class:`landscape.Fisher`;
* true: ``tr F = (1/N) sum_i E_{y ~ p(y|x_i)} ||g_i(y)||^2``, by Monte Carlo with ``S = samples`` labels per
  input drawn from the model: ``(1/(N S)) sum_i sum_s ||g_i(y_is)||^2``. The draws are those of
  ``Fisher(kind="true", samples=S, seed=seed)``, so the estimate equals the trace of that operator.

For a sum-reduced loss (``nn.CrossEntropyLoss(reduction="sum")``, or ``reduction="sum"`` for a callable) the
Fisher is the sum over samples of the per-sample outer products, as :class:`landscape.Fisher`'s: both
traces, and the standard error, are ``N`` times those above.

Standard error of the true-Fisher estimate, over the label draws with the inputs fixed: with ``S >= 2``, the
stratified ``sqrt(sum_i s_i^2 / S) / N`` from the within-input sample variances ``s_i^2``; with ``S = 1``,
the standard deviation of the ``N`` terms over ``sqrt(N)``, which also counts the spread between inputs
and so over-covers (it is the right error if the inputs themselves are a sample of the data distribution).

Distributed (``process_group=``): each rank passes its shard of the data; the sums above (of the terms, their
squares, the within-input variances, and the count of inputs) are added over the ranks by one ``all_reduce``,
so every rank returns the trace of all the data. Rank ``r`` of ``W`` draws batch ``b``'s labels with index
``b W + r``, so the ranks' draws are independent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.data.distributed import check_group
from landscape.foundation.params import ParamSpace, Selection
from landscape.operators.checks import batch_statistics_modules
from landscape.operators.fisher import per_sample_gradients, sampled_labels
from landscape.operators.functional import FunctionalModel, LossFn
from landscape.operators.likelihoods import sampler_for
from landscape.operators.reduction import Reduction, loss_reduction, refuse_ignored_targets, refuse_weighted_mean

KINDS = ("empirical", "true")


@dataclass(frozen=True)
class FisherTrace:
    """``tr F`` with its standard error (0 for the exact empirical trace).

    Attributes:
        value: the trace (loss per parameter^2). stderr: standard error over the label draws.
        samples: per-sample gradients used (``N`` for empirical, ``N * S`` for true).
        kind: ``"empirical"`` or ``"true"``. draws: labels drawn per input (``S``; 0 for empirical).
        dim: number of parameters (the Fisher's dimension).
    """
    value: float
    stderr: float
    samples: int
    kind: str
    draws: int
    dim: int


def fisher_trace(model: nn.Module, loss_fn: LossFn, data: Any, kind: Literal["empirical", "true"] = "empirical", *,
                 samples: int = 1, chunk_size: int | None = None, seed: int = 0, params: Selection = None,
                 masks: dict[str, Tensor] | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, process_group: dist.ProcessGroup | None = None,
                 reduction: Reduction | None = None) -> FisherTrace:
    """Trace of the empirical or true Fisher of ``model`` over ``data`` (see the module docstring).

    Args:
        model: the network, evaluated in its current train/eval modes and left untouched.
        loss_fn: mean- or sum-reduced loss; for ``kind="true"`` cross-entropy or squared error (the
            likelihoods of :mod:`landscape.operators.likelihoods`).
        data: one ``(inputs, targets)`` batch or an iterable of batches.
        kind: ``"empirical"`` or ``"true"``. samples: labels drawn per input for ``"true"``.
        chunk_size: samples per vmapped chunk (default: as many as fit in 64 MiB of gradients).
        seed: seed of the label draws (batch ``b`` uses its own generator seeded from ``(seed, b)``).
        params, masks, dtype, device, process_group, reduction: as for
            :class:`landscape.operators.CurvatureOperator` (with ``process_group``, ``data`` is this rank's
            shard; see the module docstring).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if samples < 1 or (kind == "empirical" and samples != 1):
        raise ValueError(f"samples must be >= 1 and only kind='true' draws several; got {samples}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    names = batch_statistics_modules(model)
    if names:
        raise ValueError(f"per-sample gradients need per-sample outputs, which BatchNorm with batch statistics "
                         f"({names}) does not give: call model.eval()")
    space = ParamSpace(model, params, masks)
    reference = next(iter(space.parameters(model).values()))
    dtype = dtype if dtype is not None else reference.dtype
    device = torch.device(device) if device is not None else reference.device
    rank, world_size = (0, 1) if process_group is None else check_group(process_group, device)
    reduction = loss_reduction(loss_fn, reduction)
    refuse_weighted_mean(loss_fn, reduction)
    sampler = sampler_for(loss_fn, reduction) if kind == "true" else None
    fn = FunctionalModel(model, space, loss_fn, dtype, device)
    draws = samples if kind == "true" else 1
    per_input = []   # (draws, batch) squared gradient norms per batch
    with fn.running(), torch.no_grad():
        for index, batch in enumerate(as_batches(data)):
            x, y = to_device(batch, device, dtype)
            if sampler is None:
                refuse_ignored_targets(loss_fn, reduction, y, index)
            else:
                x, y = sampled_labels(fn, sampler, x, samples, seed, index * world_size + rank)
            norms = torch.cat([G.pow(2).sum(dim=1) for G in per_sample_gradients(fn, space, x, y, chunk_size)])
            per_input.append(norms.reshape(draws, -1).double())
    terms = torch.cat(per_input, dim=1)   # (S, N) on this rank
    within = terms.var(dim=0, correction=1).sum() if draws >= 2 else terms.new_zeros(())
    sums = torch.stack([terms.sum(), terms.pow(2).sum(), within, terms.new_tensor(terms.shape[1])])
    if process_group is not None:
        dist.all_reduce(sums, group=process_group)
    total, squares, within, n_inputs = sums.tolist()
    count = n_inputs * draws
    value = total / count
    if kind == "empirical":
        stderr = 0.0
    elif draws >= 2:
        stderr = math.sqrt(within / draws) / n_inputs
    else:
        stderr = math.sqrt(max(squares - count * value ** 2, 0.0) / (count - 1) / count) if count > 1 else math.inf
    if reduction == "sum":   # the sum over inputs of their mean over draws
        value, stderr = value * n_inputs, stderr * n_inputs
    return FisherTrace(value=value, stderr=stderr, samples=int(count), kind=kind,
                       draws=draws if kind == "true" else 0, dim=space.dim)
