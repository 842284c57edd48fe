"""The base of every curvature operator: data, weighting, caching, checks, counting, adapters, ranks.

A curvature operator is a symmetric ``dim x dim`` matrix ``M`` over the selected coordinates of a
model's parameters (a :class:`~landscape.foundation.params.ParamSpace`), for a loss over a data set of ``N`` samples
split into batches of ``n_b`` samples, reduced over all the data as ``loss_fn`` reduces one batch
(:mod:`landscape.operators.reduction`):

    mean:  M = sum_b (d_b / D) M_b,     sum:  M = sum_b M_b,

where ``M_b`` is the matrix of ``loss_fn`` on batch ``b``, ``d_b`` what its mean divides by (``n_b`` for a
per-sample mean) and ``D = sum_b d_b``. This is exactly the matrix of the full-data mean (or sum) loss, the
last, smaller batch included, never the mean of per-batch means. A subclass writes one method,
the per-batch product ``_batch_matmat`` (and optionally ``_precompute``, what a batch keeps between
products); this class owns everything else.

Distributed (``process_group=``): each rank holds a shard of the data, ``N`` and ``D`` count the samples
and normalisers of all ranks, and a product sums ``(d_b / D) M_b v`` (``M_b v`` for a sum) over the rank's
batches, then over the ranks with one
``all_reduce`` (:mod:`landscape.data.distributed`): the same matrix as one process over all the data.
"""
from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.data.distributed import StatusBuffer, check_group
from landscape.foundation.params import ParamSpace, Selection
from landscape.operators.checks import (DataPass, batch_statistics_modules, compare_passes, fingerprint,
                                        first_nonfinite, refuse_batch_statistics)
from landscape.operators.compiled import CompiledFunction, CompileOption, compile_options
from landscape.operators.functional import FunctionalModel, LossFn
from landscape.operators.memory import StorageBytes, saved_by_autograd
from landscape.operators.parallel import reduce_pass, reduce_product
from landscape.operators.reduction import (Reduction, ReductionError, check_declared, loss_reduction,
                                           mean_normaliser, own_reduction)
from landscape.operators.vectors import check_device, checked_block, nonfinite_input

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator

DEFAULT_CACHE_BYTES = 2 ** 30


@dataclass(frozen=True)
class PreparedBatch:
    """One batch on the operator's device: its position, inputs, targets, weight in the full-data matrix
    (``d_b / D`` for a mean-reduced loss, ``1`` for a sum) and what ``_precompute`` returned for it when
    cached (``None`` otherwise)."""
    index: int
    inputs: Tensor
    targets: Tensor
    weight: float
    cached: Any = None


class CurvatureOperator(abc.ABC):
    """Symmetric ``v -> M v`` over the selected parameters, ``M`` the curvature of the loss over all data.

    Args:
        model: the network; it is never modified (parameters, ``.grad``, buffers, modes, RNG).
        loss_fn: ``loss_fn(outputs, targets) -> scalar``, mean- or sum-reduced over the batch, e.g.
            ``nn.CrossEntropyLoss()`` or ``nn.MSELoss(reduction="sum")``.
        data: one ``(inputs, targets)`` batch or a re-iterable of batches in a fixed order.
        reduction: ``"mean"`` or ``"sum"``: how ``loss_fn`` reduces a batch, and so the full-data loss ``M``
            is the curvature of (:mod:`landscape.operators.reduction`). ``None``: read from a loss module's
            ``reduction`` (``"none"`` is refused) or a ``torch.nn.functional`` loss's default, and for any
            other callable assumed ``"mean"`` over the batch's samples. A callable that visibly reduces the
            other way on the first batch is refused.
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
            pass their own shard of the data (:func:`landscape.data.distributed.shard`) and the same model. At
            construction the ranks sum their sample counts (weights ``n_b / N`` with ``N`` over all ranks),
            losses and gradients, and check that they hold the same parameters; each product is summed
            over the ranks by one ``all_reduce`` of ``dim x b`` numbers (the weights already applied), which
            also checks that every rank multiplied the same vectors (to ``64 eps`` relative) and lets a
            rank whose product raised stop the others with :class:`landscape.data.distributed.DistributedError`.
            The determinism check, the cache and the method timing stay local. Any backend that carries
            tensors on ``device`` (gloo: CPU; NCCL: CUDA). ``None``: this process alone.
        compile: ``True``, or a dict of ``torch.compile`` arguments: compile the product where it is a pure
            function of tensors (forward-mode products, per-sample gradients), falling back to eager
            with one warning if that fails (:mod:`landscape.operators.compiled`).

    Attributes:
        shape: ``(dim, dim)``. dtype, device: of the products. space: the :class:`ParamSpace`.
        num_samples: ``N`` (over all ranks). local_samples: this rank's (``N`` without a process group).
        reduction: ``"mean"`` or ``"sum"``, as resolved from ``loss_fn`` and ``reduction=``.
        loss: the full-data loss (float; the mean or the sum over all samples). gradient: its ``(dim,)``
            gradient.
        rank, world_size: this process's place in ``process_group`` (``0``, ``1`` without one).
        matvecs: matrix-vector products so far (a ``matmat`` of ``b`` vectors counts ``b``).
        cached_bytes: estimated bytes kept between products (``0`` when nothing is cached).
        batch_statistics: whether some BatchNorm normalises with batch statistics (only when allowed).

    The operator is the curvature at the parameter values (and train/eval modes) the model had when it
    was built.
    """

    _precompute_builds_graph: ClassVar[bool] = False
    _watchers: tuple[Callable[[int], None], ...] = ()   # see watch()

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Any, *, reduction: Reduction | None = None,
                 params: Selection = None, masks: Mapping[str, Tensor] | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 check_determinism: bool = True,
                 allow_batch_statistics: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 process_group: dist.ProcessGroup | None = None, compile: CompileOption = False):
        self._compile = compile_options(compile)
        self._compiled_functions: dict[str, CompiledFunction] = {}
        self.reduction: Reduction = loss_reduction(loss_fn, reduction)
        self._inspectable_loss = own_reduction(loss_fn) is not None
        self.space = ParamSpace(model, params, masks)
        reference = next(iter(self.space.parameters(model).values()))
        self.dtype: torch.dtype = dtype if dtype is not None else reference.dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point or self.dtype.is_complex:
            raise TypeError(f"dtype must be a real floating-point torch.dtype (e.g. torch.float64), got {self.dtype!r}")
        self.device = torch.device(device) if device is not None else reference.device
        check_device(self.device)
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
            self._normalisers: tuple[float, ...] = () if first is None else first.normalisers
            local_normaliser = sum(self._normalisers) if self.reduction == "mean" else None
            if process_group is None:
                self.num_samples, self.loss, self.gradient = self.local_samples, float(first.loss), first.gradient
                self._total_normaliser = local_normaliser
            else:
                self.num_samples, self._total_normaliser, self.loss, self.gradient = reduce_pass(
                    first, failure, self.space.dim, self._fn.primals, process_group,
                    f"the {type(self).__name__}'s loss and gradient", local_normaliser)
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
        rows = checked_block(V, self.space.dim, "matmat").to(device=self.device, dtype=self.dtype)
        rows = rows.T.contiguous()   # each vector contiguous
        if rows.shape[0] == 0:
            return torch.zeros_like(rows).T
        packed = None
        if self._group is not None:
            packed = StatusBuffer(tuple(rows.shape), 2 * rows.shape[0], self._group, self.dtype, self.device)
        out = torch.zeros_like(rows) if packed is None else packed.body
        finite_input = torch.isfinite(rows).all()   # read with the product's own check: one host sync
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
        for watcher in self._watchers:
            watcher(self.matvecs)
        self._check_finite(out, rows, finite_input)
        return out.T.contiguous()

    @contextlib.contextmanager
    def watch(self, callback: Callable[[int], None]) -> Iterator[None]:
        """Within the ``with`` block, ``callback(matvecs)`` after each product, with the running count (a
        progress bar that follows a long solve, say)."""
        self._watchers = (*self._watchers, callback)
        try:
            yield
        finally:
            self._watchers = tuple(w for w in self._watchers if w is not callback)

    def __matmul__(self, v: Tensor) -> Tensor:
        """``M v`` for a flat ``(dim,)`` vector, or ``M V`` for ``(dim, b)``."""
        if isinstance(v, Tensor) and v.ndim == 1:
            return self.matmat(v[:, None])[:, 0]
        return self.matmat(v)

    def to_scipy(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` taking and returning float64 NumPy arrays."""
        from scipy.sparse.linalg import LinearOperator   # half a second to import: not at ``import landscape``

        def apply(x: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)
            return (self @ t).to(device="cpu", dtype=torch.float64).numpy()

        return LinearOperator(self.shape, matvec=apply, rmatvec=apply, matmat=apply, rmatmat=apply,
                              dtype=np.float64)

    def to_dense(self, block: int = 64, max_dim: int = 10_000) -> Tensor:
        """The dense ``(dim, dim)`` matrix, by products with blocks of ``block`` identity columns
        (``dim`` matvecs). Refuses ``dim > max_dim`` (memory grows as ``dim**2``)."""
        n = self.space.dim
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive number of columns, got {block!r}")
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
            yield PreparedBatch(index, x, y, self._weight(index))

    def _weight(self, index: int) -> float:
        """Batch ``index``'s weight in the full-data matrix: ``d_b / D`` (mean), ``1`` (sum)."""
        if index >= len(self._normalisers):
            raise ValueError(f"the data yielded batch {index}, but only {len(self._normalisers)} batches when the "
                             "operator was built: the data must be the same at every pass")
        return 1.0 if self._total_normaliser is None else self._normalisers[index] / self._total_normaliser

    def _checked_pass(self, model: nn.Module, check_determinism: bool) -> tuple[DataPass | None, Exception | None]:
        """One pass over the data, compared with a second one if asked. With a process group an exception
        is returned instead of raised, for :func:`reduce_pass` to tell the other ranks before raising it."""
        try:
            first = self._data_pass(check_reduction=True)
            if check_determinism:
                compare_passes(first, self._data_pass(evaluated=1), model, 1e3 * torch.finfo(self.dtype).eps)
        except Exception as error:
            if self._group is None:
                raise
            return None, error
        return first, None

    def _data_pass(self, check_reduction: bool = False, evaluated: int | None = None) -> DataPass:
        """Loss and gradient of every batch, weighted as the reduction says; fails on a loss that cannot be
        evaluated, is not a scalar or not finite, and (``check_reduction``) on an uninspectable ``loss_fn``
        that visibly reduces the other way (:func:`~landscape.operators.reduction.check_declared`).
        ``evaluated``: only the first ``evaluated`` batches get a loss and gradient, the others only their size
        and fingerprint (the determinism check's replay: one batch's forward and backward, not the data's)."""
        losses, sizes, normalisers, prints, gradient, first_gradient = [], [], [], [], None, None
        for index, batch in enumerate(self._data):
            x, y = to_device(batch, self.device, self.dtype)
            if evaluated is not None and index >= evaluated:
                sizes.append(int(x.shape[0]))
                prints.append(fingerprint(x, y))
                continue
            normaliser = mean_normaliser(self._fn.loss_fn, y) if self.reduction == "mean" else 1.0
            if normaliser <= 0:
                raise ReductionError(f"batch {index}'s mean loss divides by {normaliser:g} (every target ignored, "
                                     "or class weights summing to 0): its mean is undefined; drop the batch or use "
                                     "reduction='sum'")
            leaves = self._fn.leaves()
            loss = self._batch_loss(leaves, x, y, index)
            if check_reduction and index == 0 and not self._inspectable_loss and not self.batch_statistics:
                check_declared(lambda a, b: self._fn.loss(self._fn.primals, a, b), self._fn.loss_fn, x, y,
                               float(loss.detach()), self.reduction)
            g = self._batch_gradient(loss, leaves)
            first_gradient = g if first_gradient is None else first_gradient
            gradient = g * normaliser if gradient is None else gradient.add_(g, alpha=normaliser)
            losses.append(loss.detach())
            sizes.append(int(x.shape[0]))
            normalisers.append(normaliser)
            prints.append(fingerprint(x, y))
        batch_losses = torch.stack(losses)
        weights = torch.tensor(normalisers, dtype=batch_losses.dtype, device=batch_losses.device)
        if self.reduction == "mean":
            weights, gradient = weights / sum(normalisers), gradient / sum(normalisers)
        bad = first_nonfinite(self.space.to_dict(gradient).items())
        if bad is not None:
            raise FloatingPointError(f"the gradient is not finite in parameter {bad!r}")
        return DataPass(loss=(weights * batch_losses).sum(), gradient=gradient, sizes=tuple(sizes),
                        batch_losses=batch_losses, fingerprints=torch.stack(prints), normalisers=tuple(normalisers),
                        first_gradient=first_gradient)

    def _batch_loss(self, leaves: dict[str, Tensor], x: Tensor, y: Tensor, index: int) -> Tensor:
        """``loss_fn`` on batch ``index``, checked: it evaluates, is a scalar, and is finite."""
        try:
            loss = self._fn.loss(leaves, x, y)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            raise ValueError(f"evaluating loss_fn(model(inputs), targets) failed on batch {index} (inputs "
                             f"{tuple(x.shape)} {x.dtype}, targets {tuple(y.shape)} {y.dtype}): {error}. Check that "
                             "the model takes these inputs and loss_fn these targets") from error
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar (reduction='mean' or 'sum'); it returned {shape} on "
                             f"batch {index}")
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"the loss is {float(loss.detach())} on batch {index}: curvature is undefined "
                                     "there (diverged parameters, or bad inputs?)")
        return loss

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
            cache.append(PreparedBatch(index, x, y, self._weight(index), entry))
        return cache, counter.total

    def _check_finite(self, out: Tensor, rows: Tensor, finite_input: Tensor) -> None:
        """One host sync per product: name the non-finite input vector (``rows``, ``(b, dim)``), or else the
        parameter of the first non-finite coordinate of the product."""
        input_ok, output_ok = torch.stack([finite_input, torch.isfinite(out).all()]).tolist()
        if not input_ok:
            nonfinite_input(rows.T, self.space.name_of)
        if output_ok:
            return
        coordinate = int((~torch.isfinite(out).all(dim=0)).nonzero()[0])
        raise FloatingPointError(
            f"the {type(self).__name__} product is not finite at coordinate {coordinate}, in parameter "
            f"{self.space.name_of(coordinate)!r}" + (" (overflow? try dtype=torch.float64)"
                                                     if self.dtype != torch.float64 else
                                                     ": the curvature is not finite there"))

