"""The Fisher information of the loss read as a negative log-likelihood (units: loss per parameter^2).

With per-sample losses ``l_i(theta) = loss_fn(f(x_i), y_i)`` (``loss_fn`` on a batch of one) and their
gradients ``g_i = dl_i/dtheta``:

* empirical Fisher, ``F_emp = (1/N) sum_i g_i g_i^T`` with the data's labels ``y_i``. Not a curvature
  estimate in general (Kunstner, Balles and Hennig 2019), but what many "Fisher" instruments compute.
* true Fisher, ``F = (1/N) sum_i E_{y ~ p(y|x_i)} g_i(y) g_i(y)^T``, here estimated with ``samples``
  labels per input drawn from the model's predictive distribution (:mod:`landscape.operators.likelihoods`)
  under a fixed seed, so the operator is one fixed matrix across products:
  ``F_true = (1/(N S)) sum_i sum_s g_is g_is^T``. Its expectation over the draws is the true Fisher, which
  for the categorical (cross-entropy) and Gaussian (squared error) likelihoods equals the GGN
  ``J^T H_L J`` (Martens 2020, section 9.2).

Both are ``(1/m) G^T G`` per batch, ``G`` the ``(m, dim)`` matrix of per-sample gradients (vmap over
``torch.func.grad``, computed in chunks of at most 64 MiB). When all batches fit in ``cache_bytes``
(``N * S * dim`` numbers), ``G`` is computed once and every product is two matrix products; otherwise
each product recomputes it chunk by chunk, shared by all the vectors of the product.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from landscape.operators.base import CurvatureOperator, PreparedBatch
from landscape.operators.checks import batch_statistics_modules
from landscape.operators.functional import LossFn
from landscape.operators.likelihoods import sampler_for

CHUNK_BYTES = 2 ** 26


class Fisher(CurvatureOperator):
    """Matrix-free Fisher ``v -> F v``, ``F = (1/m) sum_j g_j g_j^T`` over per-sample gradients.

    Args:
        kind: ``"empirical"`` (the data's labels) or ``"true"`` (labels sampled from the model).
        samples: labels drawn per input for ``kind="true"`` (``S`` above).
        seed: seed of the label draws; batch ``i`` uses its own generator seeded from ``(seed, i)``, so
            the draws do not depend on caching or on the global random state (left untouched).
        **kwargs: as for :class:`~landscape.operators.base.CurvatureOperator`. BatchNorm with batch
            statistics is refused: per-sample gradients need per-sample outputs.
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
        self.kind = kind
        self.samples = samples
        self.seed = seed
        self._sampler = sampler_for(loss_fn) if kind == "true" else None
        super().__init__(model, loss_fn, data, **kwargs)

    def _precompute(self, index: int, inputs: Tensor, targets: Tensor) -> Tensor:
        return torch.cat(list(self._gradient_chunks(index, inputs, targets)))

    def _batch_matmat(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        if batch.cached is not None:
            G = batch.cached
            return (V @ G.T) @ G / G.shape[0]
        out, rows = torch.zeros_like(V), 0
        for G in self._gradient_chunks(batch.index, batch.inputs, batch.targets):
            out.addmm_(V @ G.T, G)
            rows += G.shape[0]
        return out / rows

    def _gradient_chunks(self, index: int, inputs: Tensor, targets: Tensor) -> Iterator[Tensor]:
        """The per-sample gradients of batch ``index`` as ``(chunk, dim)`` blocks."""
        if self.kind == "true":
            inputs, targets = self._sampled(index, inputs)
        fn = self._fn

        def per_sample(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return fn.loss(p, x.unsqueeze(0), y.unsqueeze(0))

        per_sample_grad = vmap(grad(per_sample), in_dims=(None, 0, 0))
        itemsize = torch.finfo(self.dtype).bits // 8
        chunk = max(1, CHUNK_BYTES // (self.space.dim * itemsize))
        for start in range(0, inputs.shape[0], chunk):
            stop = start + chunk
            yield self.space.to_flat(per_sample_grad(fn.primals, inputs[start:stop], targets[start:stop]))

    def _sampled(self, index: int, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs repeated ``samples`` times (sample-major) and labels drawn from the model for them."""
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + index)
        with torch.no_grad():
            outputs = self._fn.outputs(self._fn.primals, inputs)
        targets = self._sampler(outputs, self.samples, generator)
        return inputs.repeat(self.samples, *([1] * (inputs.ndim - 1))), targets
