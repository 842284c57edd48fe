"""The Fisher information of the loss read as a negative log-likelihood (units: loss per parameter^2).

With per-sample losses ``l_i(theta) = loss_fn(f(x_i), y_i)`` (``loss_fn`` on a batch of one) and their
gradients ``g_i = dl_i/dtheta``, for a mean-reduced loss (``reduction="mean"``):

* empirical Fisher, ``F_emp = (1/N) sum_i g_i g_i^T`` with the data's labels ``y_i``. Not a curvature
  estimate in general (Kunstner, Balles and Hennig 2019), but what many "Fisher" instruments compute.
* true Fisher, ``F = (1/N) sum_i E_{y ~ p(y|x_i)} g_i(y) g_i(y)^T``, here estimated with ``samples``
  labels per input drawn from the model's predictive distribution (:mod:`landscape.operators.likelihoods`)
  under a fixed seed, so the operator is one fixed matrix across products:
  ``F_true = (1/(N S)) sum_i sum_s g_is g_is^T``. Its expectation over the draws is the true Fisher, which
  for the categorical (cross-entropy) and Gaussian (squared error) likelihoods equals the GGN
  ``J^T H_L J`` (Martens 2020, section 9.2).

The Fisher of a sum-reduced loss (``reduction="sum"``, ``l_i`` then the summed loss of sample ``i``) is
the sum over samples of the per-sample outer products, ``F_emp = sum_i g_i g_i^T`` and
``F_true = (1/S) sum_i sum_s g_is g_is^T``: ``N`` times the mean one of the same per-sample losses, and
again the GGN of the summed loss in expectation. A mean-reduced loss whose mean is not over samples
(cross-entropy with class weights, or with targets equal to ``ignore_index``) has no per-sample form: it
is refused, and ``reduction="sum"`` is exact for it.

Both are ``(1/m) G^T G`` (mean) or ``(1/S) G^T G`` (sum) per batch, ``G`` the ``(m, dim)`` matrix of
per-sample gradients (vmap over
``torch.func.grad``, computed in chunks of at most 64 MiB). When all batches fit in ``cache_bytes``
(``N * S * dim`` numbers), ``G`` is computed once and every product is two matrix products; otherwise
each product recomputes it chunk by chunk, shared by all the vectors of the product.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from landscape.foundation.params import ParamSpace
from landscape.operators.base import CurvatureOperator, PreparedBatch
from landscape.operators.checks import batch_statistics_modules
from landscape.operators.functional import FunctionalModel, LossFn
from landscape.operators.likelihoods import Sampler, sampler_for
from landscape.operators.reduction import loss_reduction, refuse_ignored_targets, refuse_weighted_mean

CHUNK_BYTES = 2 ** 26
RANK_STRIDE = 2 ** 32


class Fisher(CurvatureOperator):
    """Matrix-free Fisher ``v -> F v``, ``F = (1/N) sum_j g_j g_j^T`` over per-sample gradients
    (``sum_j g_j g_j^T`` for a sum-reduced loss).

    Args:
        kind: ``"empirical"`` (the data's labels) or ``"true"`` (labels sampled from the model).
        samples: labels drawn per input for ``kind="true"`` (``S`` above).
        seed: seed of the label draws; batch ``i`` uses its own generator seeded from ``(seed, i)``, so
            the draws do not depend on caching or on the global random state (left untouched). On rank
            ``r`` of a process group, batch ``i`` draws as batch ``i + r * 2**32`` would: the ranks' draws
            are independent (and rank 0's are those of a single process).
        **kwargs: as for :class:`~landscape.operators.base.CurvatureOperator` (``compile=`` compiles the
            per-sample gradients). BatchNorm with batch statistics is refused: per-sample gradients need
            per-sample outputs.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *,
                 kind: Literal["empirical", "true"] = "empirical", samples: int = 1, seed: int = 0,
                 **kwargs: Any):
        if kind not in ("empirical", "true"):
            raise ValueError(f"kind must be 'empirical' or 'true', got {kind!r}")
        if samples < 1 or (kind == "empirical" and samples != 1):
            raise ValueError(f"samples must be >= 1 and only kind='true' draws several; got {samples}")
        names = batch_statistics_modules(model)
        if names:
            raise ValueError(f"the Fisher needs per-sample gradients, which BatchNorm with batch statistics "
                             f"({names}) does not have: call model.eval()")
        reduction = loss_reduction(loss_fn, kwargs.get("reduction"))
        refuse_weighted_mean(loss_fn, reduction)
        self.kind = kind
        self.samples = samples
        self.seed = seed
        self._sampler = sampler_for(loss_fn, reduction) if kind == "true" else None
        super().__init__(model, loss_fn, data, **kwargs)

    def _precompute(self, index: int, inputs: Tensor, targets: Tensor) -> Tensor:
        return torch.cat(list(self._gradient_chunks(index, inputs, targets)))

    def _batch_matmat(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        """``(1/m) G^T G V`` over the batch's ``m`` per-sample gradients (mean), ``(1/S) G^T G V`` (sum)."""
        if batch.cached is not None:
            G = batch.cached
            return (V @ G.T) @ G / (G.shape[0] if self.reduction == "mean" else self.samples)
        out, rows = torch.zeros_like(V), 0
        for G in self._gradient_chunks(batch.index, batch.inputs, batch.targets):
            out.addmm_(V @ G.T, G)
            rows += G.shape[0]
        return out / (rows if self.reduction == "mean" else self.samples)

    def _gradient_chunks(self, index: int, inputs: Tensor, targets: Tensor) -> Iterator[Tensor]:
        """The per-sample gradients of batch ``index`` as ``(chunk, dim)`` blocks."""
        if self.kind == "empirical":
            refuse_ignored_targets(self._fn.loss_fn, self.reduction, targets, index)
        else:
            inputs, targets = sampled_labels(self._fn, self._sampler, inputs, self.samples, self.seed,
                                             index + self.rank * RANK_STRIDE)
        return per_sample_gradients(self._fn, self.space, inputs, targets,
                                    block=self._compiled(self._gradient_block))

    def _gradient_block(self, x: Tensor, y: Tensor) -> Tensor:
        """:func:`gradient_block` of this operator's model: a pure function of tensors, to compile."""
        return gradient_block(self._fn, self.space, x, y)


def per_sample_gradients(fn: FunctionalModel, space: ParamSpace, inputs: Tensor, targets: Tensor,
                         chunk: int | None = None,
                         block: Callable[[Tensor, Tensor], Tensor] | None = None) -> Iterator[Tensor]:
    """Gradients ``g_j = d loss_fn(f(x_j), y_j) / d theta`` of each sample as a batch of one, over the
    coordinates of ``space``, as ``(rows, dim)`` blocks of at most ``chunk`` samples (default: as many as
    fit in 64 MiB), each computed by ``block(x, y)`` (default: :func:`gradient_block`; the Fisher passes a
    compiled one)."""
    if block is None:
        block = functools.partial(gradient_block, fn, space)
    if chunk is None:
        itemsize = next(iter(fn.primals.values())).element_size()
        chunk = max(1, CHUNK_BYTES // (space.dim * itemsize))
    for start in range(0, inputs.shape[0], chunk):
        stop = start + chunk
        yield block(inputs[start:stop], targets[start:stop])


def gradient_block(fn: FunctionalModel, space: ParamSpace, x: Tensor, y: Tensor) -> Tensor:
    """The ``(m, dim)`` per-sample gradients of the samples ``(x[i], y[i])``, by ``vmap`` over
    ``torch.func.grad`` at the model's copied parameters ``fn.primals``."""
    def per_sample(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return fn.loss(p, xi.unsqueeze(0), yi.unsqueeze(0))

    return space.to_flat(vmap(grad(per_sample), in_dims=(None, 0, 0))(fn.primals, x, y))


def sampled_labels(fn: FunctionalModel, sampler: Sampler, inputs: Tensor, samples: int, seed: int,
                   index: int) -> tuple[Tensor, Tensor]:
    """Inputs repeated ``samples`` times (sample-major: row ``s * B + i`` is input ``i``) and labels drawn
    from the model's predictive distribution for them, by a generator seeded from ``(seed, index)`` on the
    inputs' device (``index``: the batch's position), so the draws never touch the global random state."""
    generator = torch.Generator(device=inputs.device).manual_seed(seed * 1_000_003 + index)
    with torch.no_grad():
        outputs = fn.outputs(fn.primals, inputs)
    targets = sampler(outputs, samples, generator)
    return inputs.repeat(samples, *([1] * (inputs.ndim - 1))), targets
