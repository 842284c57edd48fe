"""Operators whose per-batch product is a second derivative computed by automatic differentiation,
by one of two methods:

* ``"reverse"``: reverse over reverse. A first-order graph (the gradient, or ``J^T u``) is built with
  ``create_graph=True`` and each vector costs one more backward through it. With a cached batch the graph
  is built once at construction and reused by every product (``retain_graph``), so a product is a single
  backward; uncached, the graph is rebuilt once per product and shared by its vectors.
* ``"forward"``: forward mode (``torch.func.jvp``) vmapped over the vectors: nothing is retained, but the
  vectors of one product share the primal computation and run as batched tensor operations.

``method="auto"`` learns the faster one from the first products the caller asks for, per octave of block
sizes (:mod:`landscape.operators.methods`): construction times nothing, and no product is spent on choosing.
Forward mode is tried only once ``torch.func``'s one-time setup is paid in the process, or when reverse-mode
products are slow enough to repay it. With a process group it runs reverse mode: timings differ between
ranks, and every rank must run the same products.
``method_choice`` holds the timings and the choices. ``compile=`` compiles the ``"forward"`` product
(:mod:`landscape.operators.compiled`), so that ``"auto"`` weighs the compiled product; the ``"reverse"`` one
cannot be compiled.
"""
from __future__ import annotations

import abc
import sys
from typing import Any, Literal

import torch
from torch import Tensor, nn

from landscape.operators.base import CurvatureOperator, PreparedBatch
from landscape.operators.checks import batch_statistics_modules
from landscape.operators.functional import LossFn
from landscape.operators.methods import MethodChoice, timed
from landscape.operators.vectors import checked_block

Method = Literal["auto", "reverse", "forward"]
METHODS: tuple[str, ...] = ("reverse", "forward")


class AutodiffOperator(CurvatureOperator):
    """A :class:`CurvatureOperator` with a ``"reverse"`` and a ``"forward"`` per-batch product.

    Args:
        method: ``"auto"`` (the faster, learnt from the first products), ``"reverse"`` or ``"forward"``. BatchNorm with batch
            statistics (``allow_batch_statistics=True``) runs in reverse mode only: ``torch.func``
            transforms refuse the in-place update of running statistics.
        **kwargs: as for :class:`CurvatureOperator`.

    Subclasses write ``_graph`` (the first-order graph of a batch), ``_reverse`` and ``_forward``.
    """

    _precompute_builds_graph = True

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *, method: Method = "auto", **kwargs: Any):
        if method not in ("auto", *METHODS):
            raise ValueError(f"method must be 'auto', 'reverse' or 'forward', got {method!r}")
        if method == "forward" and kwargs.get("allow_batch_statistics") and batch_statistics_modules(model):
            raise ValueError("method='forward' cannot run BatchNorm with batch statistics (torch.func refuses "
                             "the in-place update of running statistics): use method='reverse'")
        if method == "reverse" and kwargs.get("compile", False) is not False:
            raise ValueError("compile= compiles the forward-mode product, which method='reverse' never runs "
                             "(torch.compile cannot trace a backward through a retained graph): use "
                             "method='forward' or 'auto'")
        self.method = method
        super().__init__(model, loss_fn, data, **kwargs)
        # with a process group every rank must run the same products: the trials' timings differ between ranks
        # (and decide when a trial is worth it), so "auto" takes reverse mode there instead of timing
        auto = method == "auto" and not self.batch_statistics and self._group is None
        self.method_choice = MethodChoice(METHODS if auto else ("reverse" if method == "auto" else method,),
                                          setup={"forward": forward_mode_ready})
        self._running = self.method_choice.method_for(1)

    def method_for(self, vectors: int) -> str:
        """The method the next product of ``vectors`` vectors uses."""
        return self.method_choice.method_for(vectors)

    def matmat(self, V: Tensor) -> Tensor:
        """As :meth:`CurvatureOperator.matmat`; while ``method="auto"`` is still choosing for this block size,
        the product is timed (see :mod:`landscape.operators.methods`)."""
        vectors = checked_block(V, self.space.dim, "matmat").shape[1]
        self._running = self.method_choice.method_for(vectors)
        if not self.method_choice.deciding(vectors):
            return super().matmat(V)
        method = self._running
        try:
            out, seconds = timed(lambda: super(AutodiffOperator, self).matmat(V), self.device)
        except FloatingPointError as error:   # a non-finite product: forward mode overflowing (bfloat16)?
            if method != "forward" or len(self.method_choice.candidates) < 2:
                raise
            self._running = "reverse"
            out = super().matmat(V)   # raises in turn if the curvature itself (or V) is not finite
            self.method_choice.exclude("forward", error)
            return out
        if method in self.method_choice.candidates:   # not excluded by a failure during the product
            best = self.method_choice.record(method, vectors, seconds)
            if best is not None:
                self.method_choice.decide(vectors, best)
        return out

    def _batch_matmat(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        if self._running == "forward":
            try:
                return self._forward(batch, V)
            except RuntimeError as error:   # e.g. no forward-mode derivative for an operation
                if self.method != "auto":
                    raise RuntimeError(f"method='forward' failed on this model and loss ({error}): use "
                                       "method='reverse', or 'auto', which falls back to it") from error
                self.method_choice.exclude("forward", error)
                self._running = "reverse"
        return self._reverse(batch, V)

    def _precompute(self, index: int, inputs: Tensor, targets: Tensor) -> Any:
        return None if self.method == "forward" else self._graph(inputs, targets)

    def _graph_of(self, batch: PreparedBatch) -> Any:
        """The batch's first-order graph: the cached one, or built now."""
        return batch.cached if batch.cached is not None else self._graph(batch.inputs, batch.targets)

    @abc.abstractmethod
    def _graph(self, inputs: Tensor, targets: Tensor) -> Any:
        """Build the first-order graph of one batch (``create_graph=True``)."""

    @abc.abstractmethod
    def _reverse(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        """``(b, dim) -> (b, dim)`` by backward passes through the batch's first-order graph."""

    @abc.abstractmethod
    def _forward(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        """``(b, dim) -> (b, dim)`` by forward-mode AD vmapped over the rows."""


def forward_mode_ready() -> bool:
    """Whether ``torch.func``'s one-time setup in this process (importing ``torch._dynamo``) is paid."""
    return "torch._dynamo" in sys.modules


def backward_rows(outputs: list[Tensor], inputs: list[Tensor], cotangents: list[Tensor]) -> list[Tensor]:
    """For each row ``r``, the gradients of ``sum_i <outputs[i], cotangents[i][r]>`` w.r.t. ``inputs``
    (zeros for inputs the outputs do not depend on), one backward per row through the retained graph;
    returned per input, stacked over rows: ``(rows, *input.shape)``.

    Each row differentiates the scalar inner product rather than passing ``grad_outputs``: the same
    numbers, but ``torch.autograd.grad`` with tensor ``grad_outputs`` imports ``sympy`` (through
    ``torch.fx.experimental.symbolic_shapes``) on first use, 0.25-0.6 s here, which was most of a small
    model's first eigen solve (issue 17)."""
    rows = [torch.autograd.grad(sum((o * c[r]).sum() for o, c in zip(outputs, cotangents)), inputs,
                                retain_graph=True, allow_unused=True, materialize_grads=True)
            for r in range(cotangents[0].shape[0])]
    return [torch.stack(per_input) for per_input in zip(*rows)]
