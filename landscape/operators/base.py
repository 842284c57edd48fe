"""The base of every curvature operator: data, weighting, caching, checks, counting, adapters, ranks.

A curvature operator is a symmetric ``dim x dim`` matrix ``M`` over the selected coordinates of a
model's parameters (a :class:`~landscape.params.ParamSpace`), for a mean-reduced loss over a data set of
``N`` samples split into batches of ``n_b`` samples:

    M = sum_b (n_b / N) M_b,

where ``M_b`` is the matrix of batch ``b``'s mean loss. This is exactly the matrix of the full-data mean
loss (the last, smaller batch included), never the mean of per-batch means. A subclass writes one method,
the per-batch product ``_batch_matmat`` (and optionally ``_precompute``, what a batch keeps between
products); this class owns everything else.

Distributed (``process_group=``): each rank holds a shard of the data, ``N`` counts the samples of all
ranks, and a product sums ``(n_b / N) M_b v`` over the rank's batches, then over the ranks with one
``all_reduce`` (:mod:`landscape.distributed`): the same matrix as one process over all the data.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.distributed import StatusBuffer, check_group
from landscape.operators.checks import (DataPass, batch_statistics_modules, compare_passes, fingerprint,
                                        first_nonfinite, refuse_batch_statistics)
from landscape.operators.compiled import CompiledFunction, CompileOption, compile_options
from landscape.operators.functional import FunctionalModel, LossFn
from landscape.operators.memory import StorageBytes, saved_by_autograd
from landscape.operators.parallel import reduce_pass, reduce_product
from landscape.params import ParamSpace, Selection

DEFAULT_CACHE_BYTES = 2 ** 30


@dataclass(frozen=True)
class PreparedBatch:
    """One batch on the operator's device: its position, inputs, targets, weight ``n_b / N`` and what
    ``_precompute`` returned for it when cached (``None`` otherwise)."""
    index: int
    inputs: Tensor
    targets: Tensor
    weight: float
    cached: Any = None


class CurvatureOperator(abc.ABC):
    """Symmetric ``v -> M v`` over the selected parameters, ``M`` the curvature of the mean loss over all data.

    Args:
        model: the network; it is never modified (parameters, ``.grad``, buffers, modes, RNG).
        loss_fn: mean-reduced ``loss_fn(outputs, targets) -> scalar``, e.g. ``nn.CrossEntropyLoss()``.
        data: one ``(inputs, targets)`` batch or a re-iterable of batches in a fixed order.
        params: which parameters (``None``: all trainable; names; or a predicate ``(name, p) -> bool``).
        masks: ``{name: 0/1 tensor}`` pruning masks; the operator acts on the surviving coordinates.
        dtype: dtype of the products (default: the model's); parameters, buffers and floating-point
            data are cast to it, e.g. ``torch.float64`` for reference-grade products.
        device: device of the products (default: the model's).
        check_determinism: compare two passes over the data at construction and fail with the cause
            (active dropout, a reordering loader) if their losses or gradients differ.
        allow_batch_statistics: accept BatchNorm modules that normalise with batch statistics (the
            operator then depends on the batching); refused by default.
        cache_bytes: memory the operator may keep between products (device-moved batches, retained
            first-order graphs, per-sample gradients, whatever the subclass precomputes). When all batches
            fit, they are prepared once at construction and reused by every product; otherwise each
            product recomputes them. ``0`` disables caching. ``cached_bytes`` reports the estimate.
        process_group: a ``torch.distributed`` process group (e.g. ``dist.group.WORLD``) whose ranks each
            pass their own shard of the data (:func:`landscape.distributed.shard`) and the same model. At
            construction the ranks sum their sample counts (weights ``n_b / N`` with ``N`` over all ranks),
            losses and gradients, and check that they hold the same parameters; each product is summed
            over the ranks by one ``all_reduce`` of ``dim x b`` numbers (the weights already applied), which
            also checks that every rank multiplied the same vectors (to ``64 eps`` relative) and lets a
            rank whose product raised stop the others with :class:`landscape.distributed.DistributedError`.
            The determinism check, the cache and the method timing stay local. Any backend that carries
            tensors on ``device`` (gloo: CPU; NCCL: CUDA). ``None``: this process alone.
        compile: ``True``, or a dict of ``torch.compile`` arguments: compile the product where it is a pure
            function of tensors (forward-mode products, per-sample gradients), falling back to eager
            with one warning if that fails (:mod:`landscape.operators.compiled`).

    Attributes:
        shape: ``(dim, dim)``. dtype, device: of the products. space: the :class:`ParamSpace`.
        num_samples: ``N`` (over all ranks). local_samples: this rank's (``N`` without a process group).
        loss: the full-data mean loss (float). gradient: its ``(dim,)`` gradient.
        rank, world_size: this process's place in ``process_group`` (``0``, ``1`` without one).
        matvecs: matrix-vector products so far (a ``matmat`` of ``b`` vectors counts ``b``).
        cached_bytes: estimated bytes kept between products (``0`` when nothing is cached).
        batch_statistics: whether some BatchNorm normalises with batch statistics (only when allowed).

    The operator is the curvature at the parameter values (and train/eval modes) the model had when it
    was built.
    """

    _precompute_builds_graph: ClassVar[bool] = False

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *, params: Selection = None,
                 masks: Mapping[str, Tensor] | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, check_determinism: bool = True,
                 allow_batch_statistics: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 process_group: dist.ProcessGroup | None = None, compile: CompileOption = False):
        self._compile = compile_options(compile)
        self._compiled_functions: dict[str, CompiledFunction] = {}
        self.space = ParamSpace(model, params, masks)
        reference = next(iter(self.space.parameters(model).values()))
        self.dtype: torch.dtype = dtype if dtype is not None else reference.dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {self.dtype}")
        self.device = torch.device(device) if device is not None else reference.device
        self._group = process_group
        self.rank, self.world_size = (0, 1) if process_group is None else check_group(process_group, self.device)
        self.shape: tuple[int, int] = (self.space.dim, self.space.dim)
        self.matvecs = 0
        self.batch_statistics = bool(batch_statistics_modules(model))
        if not allow_batch_statistics:
            refuse_batch_statistics(model)
        self._fn = FunctionalModel(model, self.space, loss_fn, self.dtype, self.device)
        self._data = as_batches(data)
        with self._fn.running():
            first, failure = self._checked_pass(model, check_determinism)
            self.local_samples: int = 0 if first is None else sum(first.sizes)
            if process_group is None:
                self.num_samples, self.loss, self.gradient = self.local_samples, float(first.loss), first.gradient
            else:
                self.num_samples, self.loss, self.gradient = reduce_pass(
                    first, failure, self.space.dim, self._fn.primals, process_group,
                    f"the {type(self).__name__}'s loss and gradient")
            self._cache, self.cached_bytes = self._build_cache(cache_bytes)

    def __repr__(self) -> str:
        ranks = f", ranks={self.world_size}" if self._group is not None else ""
        return (f"{type(self).__name__}(dim={self.space.dim}, samples={self.num_samples}{ranks}, "
                f"dtype={self.dtype}, device={self.device}, matvecs={self.matvecs})")

    # --- what a subclass writes ---------------------------------------------------------------------

    @abc.abstractmethod
    def _batch_matmat(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        """``M_b`` applied to the rows of ``V``: ``(b, dim) -> (b, dim)``, for batch ``b``'s mean loss."""

    def _precompute(self, index: int, inputs: Tensor, targets: Tensor) -> Any:
        """What batch ``index`` keeps between products when caching (``None``: only the batch itself).
        Subclasses that build autograd graphs here set ``_precompute_builds_graph`` so their memory is
        counted."""
        return None

    def _compiled(self, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """``fn`` (a method that is a pure function of tensors), compiled if ``compile=`` asked for it: one
        :class:`~landscape.operators.compiled.CompiledFunction` per method, made on first use."""
        if self._compile is None:
            return fn
        name = fn.__name__
        if name not in self._compiled_functions:
            self._compiled_functions[name] = CompiledFunction(fn, self._compile, f"{type(self).__name__}.{name}")
        return self._compiled_functions[name]

    # --- products -----------------------------------------------------------------------------------

    def matmat(self, V: Tensor) -> Tensor:
        """``M V`` for ``V`` of shape ``(dim, b)``; the ``b`` vectors share every pass over the data (and,
        with a process group, one ``all_reduce``: call it on every rank with the same ``V``)."""
        if V.ndim != 2 or V.shape[0] != self.space.dim:
            raise ValueError(f"matmat expects shape ({self.space.dim}, b), got {tuple(V.shape)}")
        rows = V.to(device=self.device, dtype=self.dtype).T.contiguous()   # each vector contiguous
        if rows.shape[0] == 0:
            return torch.zeros_like(rows).T
        packed = None
        if self._group is not None:
            packed = StatusBuffer(tuple(rows.shape), 2 * rows.shape[0], self._group, self.dtype, self.device)
        out = torch.zeros_like(rows) if packed is None else packed.body
        failure = None
        try:
            with self._fn.running():
                for batch in self._batches():
                    out.add_(self._batch_matmat(batch, rows), alpha=batch.weight)
        except Exception as error:
            if packed is None:
                raise
            failure = error   # reported to the other ranks by the all_reduce, then raised
        if packed is not None:
            reduce_product(packed, rows, failure, f"a {type(self).__name__} product")
        self.matvecs += rows.shape[0]
        self._check_finite(out)
        return out.T.contiguous()

    def __matmul__(self, v: Tensor) -> Tensor:
        """``M v`` for a flat ``(dim,)`` vector, or ``M V`` for ``(dim, b)``."""
        if v.ndim == 1:
            return self.matmat(v[:, None])[:, 0]
        return self.matmat(v)

    def to_scipy(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` taking and returning float64 NumPy arrays."""
        def apply(x: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)
            return (self @ t).to(device="cpu", dtype=torch.float64).numpy()

        return LinearOperator(self.shape, matvec=apply, rmatvec=apply, matmat=apply, rmatmat=apply,
                              dtype=np.float64)

    def to_dense(self, block: int = 64, max_dim: int = 10_000) -> Tensor:
        """The dense ``(dim, dim)`` matrix, by products with blocks of ``block`` identity columns
        (``dim`` matvecs). Refuses ``dim > max_dim`` (memory grows as ``dim**2``)."""
        n = self.space.dim
        if n > max_dim:
            raise ValueError(f"dim {n} exceeds max_dim={max_dim}: a dense matrix needs {n * n} entries")
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        return torch.cat([self.matmat(eye[:, i:i + block]) for i in range(0, n, block)], dim=1)

    # --- data ---------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[PreparedBatch]:
        if self._cache is not None:
            yield from self._cache
            return
        for index, batch in enumerate(self._data):
            x, y = to_device(batch, self.device, self.dtype)
            yield PreparedBatch(index, x, y, x.shape[0] / self.num_samples)

    def _checked_pass(self, model: nn.Module, check_determinism: bool) -> tuple[DataPass | None, Exception | None]:
        """One pass over the data, compared with a second one if asked. With a process group an exception
        is returned instead of raised, for :func:`reduce_pass` to tell the other ranks before raising it."""
        try:
            first = self._data_pass()
            if check_determinism:
                compare_passes(first, self._data_pass(), model, 1e3 * torch.finfo(self.dtype).eps)
        except Exception as error:
            if self._group is None:
                raise
            return None, error
        return first, None

    def _data_pass(self) -> DataPass:
        """Loss and gradient of every batch; fails on a non-scalar or non-finite loss."""
        losses, sizes, prints, gradient = [], [], [], None
        for index, batch in enumerate(self._data):
            x, y = to_device(batch, self.device, self.dtype)
            leaves = self._fn.leaves()
            loss = self._fn.loss(leaves, x, y)
            if not isinstance(loss, Tensor) or loss.ndim != 0:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn must return a scalar (a mean-reduced loss, reduction='mean'); "
                                 f"it returned {shape} on batch {index}")
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"the loss is {float(loss.detach())} on batch {index}: curvature is undefined "
                                         "there (diverged parameters, or bad inputs?)")
            g = self._batch_gradient(loss, leaves)
            size = int(x.shape[0])
            gradient = g * size if gradient is None else gradient.add_(g, alpha=size)
            losses.append(loss.detach())
            sizes.append(size)
            prints.append(fingerprint(x, y))
        total = sum(sizes)
        batch_losses = torch.stack(losses)
        weights = torch.tensor(sizes, dtype=batch_losses.dtype, device=batch_losses.device) / total
        gradient = gradient / total
        bad = first_nonfinite(self.space.to_dict(gradient).items())
        if bad is not None:
            raise FloatingPointError(f"the gradient is not finite in parameter {bad!r}")
        return DataPass(loss=(weights * batch_losses).sum(), gradient=gradient, sizes=tuple(sizes),
                        batch_losses=batch_losses, fingerprints=torch.stack(prints))

    def _batch_gradient(self, loss: Tensor, leaves: dict[str, Tensor]) -> Tensor:
        if not loss.requires_grad:   # no selected parameter takes part in the loss
            return torch.zeros(self.space.dim, dtype=self.dtype, device=self.device)
        g = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
        return self.space.to_flat(g)

    def _build_cache(self, budget: int) -> tuple[list[PreparedBatch] | None, int]:
        """Prepare every batch once if the estimate stays within ``budget`` bytes; else cache nothing.
        Stops as soon as the bytes so far, extrapolated to all samples, exceed the budget."""
        if budget <= 0:
            return None, 0
        counter = StorageBytes(exclude=self._fn.primals.values())
        cache, seen = [], 0
        for index, batch in enumerate(self._data):
            x, y = to_device(batch, self.device, self.dtype)
            if self._precompute_builds_graph:
                with saved_by_autograd(counter):
                    entry = self._precompute(index, x, y)
            else:
                entry = self._precompute(index, x, y)
            counter.add((x, y, entry))
            seen += x.shape[0]
            if counter.total * self.local_samples / seen > budget:   # projected over this rank's data
                return None, 0
            cache.append(PreparedBatch(index, x, y, x.shape[0] / self.num_samples, entry))
        return cache, counter.total

    def _check_finite(self, out: Tensor) -> None:
        """One host sync per product: name the parameter of the first non-finite coordinate."""
        if bool(torch.isfinite(out).all()):
            return
        coordinate = int((~torch.isfinite(out).all(dim=0)).nonzero()[0])
        raise FloatingPointError(
            f"the {type(self).__name__} product is not finite at coordinate {coordinate}, in parameter "
            f"{self.space.name_of(coordinate)!r} (overflow in float32? try dtype=torch.float64)")

