"""Fitting a Krylov basis into a memory budget (``max_memory=`` of :func:`landscape.linalg.eigs`; issue 17).

What the budget counts, in bytes (``n`` the dimension, ``k`` the wanted pairs):

* ``method="lanczos"``: the basis, ``(ncv + 1) n`` elements of the basis dtype (:func:`lanczos_bytes`). Not
  counted: a step's work vectors and the ``k n`` returned eigenvectors (the ``k`` rows a verification pass
  deflates against, in the work dtype): measured in float64 on 300 x 300 spectra, the peak of live vectors was
  the basis plus ``k + 4`` to ``k + 6`` vectors. The pass's own basis replaces the solver's, which is freed
  first, and is no larger.
* ``method="block"``: at most ``(4 ncv + 3 b + 2 k) n`` elements of the operator's dtype (:func:`block_bytes`,
  see :mod:`landscape.linalg.block_lanczos`; measured peaks 62-96% of it), ``ncv`` at least
  ``min(n, 3 b + k)``; the same for the block refinement that follows a failed verification pass.

Both checked in ``tests/linalg/test_memory.py`` by the peak of live tensors during a solve.

The budget is for the operator's device, whose memory is the scarce one; a basis moved to the host (``"cpu"``)
uses none of it, and then holds ``(ncv + 1) n`` elements of host memory that the budget does not bound.

Choice for ``"lanczos"``, at the requested (or default) ``ncv``, in this order: the operator's dtype, then
``float32``, then ``bfloat16`` (only those less precise than the operator's whose machine epsilon ``eps_b``
is below ``tol``: the basis's rounding floors the residuals at about ``eps_b |lambda|_max``, and with them
the certified error bounds, so a ``bfloat16`` basis, ``eps_b = 0.0078``, certifies nothing below that
whatever the criterion), on the operator's device; then the host in the operator's dtype (when the operator
is not on the host); then ``ncv`` reduced, in the least precise dtype allowed, down to :func:`min_ncv`. If even that
does not fit, :class:`MemoryBudgetError`. An explicit ``basis_dtype`` or ``basis_device`` is kept as given,
only ``ncv`` is reduced. ``"block"`` keeps the operator's dtype and device: only its ``ncv`` is reduced.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

HOST = torch.device("cpu")


class MemoryBudgetError(ValueError):
    """The Krylov basis does not fit into ``max_memory`` even at the smallest ``ncv`` and dtype allowed."""


@dataclass(frozen=True)
class BasisPlan:
    """Where and how large the basis is: storage dtype and device, ``ncv``, bytes, and why (a sentence)."""
    dtype: torch.dtype
    device: torch.device
    ncv: int
    bytes: int
    reason: str


def lanczos_bytes(ncv: int, n: int, dtype: torch.dtype) -> int:
    """Bytes of a thick-restart Lanczos basis: ``(ncv + 1) n`` elements of ``dtype``."""
    return (ncv + 1) * n * dtype.itemsize


def block_bytes(ncv: int, b: int, wanted: int, n: int, dtype: torch.dtype) -> int:
    """Bytes of block Lanczos at most: ``(4 ncv + 3 b + 2 wanted) n`` elements of ``dtype``."""
    return (4 * ncv + 3 * b + 2 * wanted) * n * dtype.itemsize


def min_ncv(n: int, wanted: int) -> int:
    """The smallest ``ncv`` a budget may force on ``"lanczos"``: ``min(n, 2 wanted + 2)``, so that a thick
    restart keeps the wanted pairs and still has at least ``wanted // 3 + 1`` fresh steps per cycle."""
    return min(n, 2 * wanted + 2)


def plan_lanczos(n: int, wanted: int, ncv: int, op_dtype: torch.dtype, op_device: torch.device,
                 max_memory: int | None, basis_dtype: torch.dtype | None, basis_device: torch.device | str | None,
                 tol: float) -> BasisPlan:
    """The Lanczos basis for ``max_memory`` bytes on the operator's device (see the module docstring)."""
    dtype = op_dtype if basis_dtype is None else basis_dtype
    device = op_device if basis_device is None else torch.device(basis_device)
    if max_memory is None:
        return BasisPlan(dtype, device, ncv, lanczos_bytes(ncv, n, dtype),
                         _describe(BasisPlan(dtype, device, ncv, lanczos_bytes(ncv, n, dtype), "")))
    _check(max_memory)

    def used(candidate: BasisPlan) -> int:      # bytes on the operator's device
        return 0 if candidate.device != op_device else candidate.bytes

    def plan(d: torch.dtype, dev: torch.device, m: int) -> BasisPlan:
        return BasisPlan(d, dev, m, lanczos_bytes(m, n, d), "")

    if basis_dtype is not None:
        dtypes = [basis_dtype]
    else:
        dtypes = [d for d in (op_dtype, torch.float32, torch.bfloat16)
                  if d.itemsize < op_dtype.itemsize or d == op_dtype]
        dtypes = [d for d in dict.fromkeys(dtypes) if d == op_dtype or torch.finfo(d).eps < tol]
    candidates = [plan(d, device, ncv) for d in dtypes]
    if basis_device is None and op_device != HOST:
        candidates.append(plan(op_dtype, HOST, ncv))
    for i, c in enumerate(candidates):
        if used(c) <= max_memory:
            why = "fits" if i == 0 else f"{_short(candidates[:i])} would not fit"
            return BasisPlan(c.dtype, c.device, ncv, c.bytes, f"max_memory={max_memory} B: {_describe(c)}; {why}")
    smallest = dtypes[-1]
    fits = max_memory // (n * smallest.itemsize) - 1     # largest ncv with (ncv + 1) n itemsize <= max_memory
    floor = min_ncv(n, wanted)
    if fits < floor:
        raise MemoryBudgetError(
            f"max_memory={max_memory} B cannot hold a Lanczos basis of the minimum {floor + 1} vectors of length "
            f"{n} in {smallest} ({lanczos_bytes(floor, n, smallest)} B) on {device}: raise max_memory, ask for fewer "
            "eigenpairs" + (f", or allow a less precise basis (tol above {torch.finfo(torch.bfloat16).eps:g} "
                            "permits bfloat16)" if smallest != torch.bfloat16 and basis_dtype is None else ""))
    c = plan(smallest, device, min(ncv, fits))
    return BasisPlan(c.dtype, c.device, c.ncv, c.bytes, f"max_memory={max_memory} B: {_describe(c)}, ncv reduced "
                     f"from {ncv}; {_short(candidates)} would not fit")


def plan_block(n: int, wanted: int, b: int, ncv: int, dtype: torch.dtype, device: torch.device,
               max_memory: int | None) -> BasisPlan:
    """Block Lanczos's ``ncv`` for ``max_memory`` bytes (its basis keeps the operator's dtype and device)."""
    ncv = max(ncv, min(n, 3 * b + wanted))
    if max_memory is None:
        size = block_bytes(ncv, b, wanted, n, dtype)
        return BasisPlan(dtype, device, ncv, size, f"block basis, ncv={ncv}, {dtype} on {device}, at most {size} B")
    _check(max_memory)
    floor = min(n, 3 * b + wanted)
    fits = (max_memory // (n * dtype.itemsize) - 3 * b - 2 * wanted) // 4
    if fits < floor:
        raise MemoryBudgetError(
            f"max_memory={max_memory} B cannot hold block Lanczos with blocks of {b} and ncv={floor} (its minimum) "
            f"on vectors of length {n} in {dtype} ({block_bytes(floor, b, wanted, n, dtype)} B): raise max_memory, "
            "use a smaller block_size, or method='lanczos', whose basis can be stored in less precision or on "
            "the host")
    chosen = min(ncv, fits)
    size = block_bytes(chosen, b, wanted, n, dtype)
    how = "fits" if chosen == ncv else f"ncv reduced from {ncv}"
    return BasisPlan(dtype, device, chosen, size, f"max_memory={max_memory} B: block basis, ncv={chosen}, "
                     f"{dtype} on {device}, at most {size} B; {how}")


def _describe(plan: BasisPlan) -> str:
    return f"Lanczos basis of {plan.ncv + 1} vectors in {plan.dtype} on {plan.device} ({plan.bytes} B)"


def _short(plans: list[BasisPlan]) -> str:
    return "the bases of " + ", ".join(f"{p.dtype} on {p.device} ({p.bytes} B)" for p in plans)


def _check(max_memory: int) -> None:
    if isinstance(max_memory, bool) or not isinstance(max_memory, numbers.Integral) or max_memory <= 0:
        raise ValueError(f"max_memory must be a positive number of bytes (an int), got {max_memory!r}")
