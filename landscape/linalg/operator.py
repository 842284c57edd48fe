"""What the solvers accept: any symmetric linear operator, and a dense one for references.

A solver needs only ``shape == (n, n)``, ``dtype``, ``device`` and ``matmat(V)`` mapping an ``(n, b)``
tensor to ``(n, b)``. Curvature operators (``landscape.operators``) satisfy this protocol; so does
:class:`MatrixOperator`, which wraps a dense symmetric tensor and counts its products.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from landscape.operators.vectors import checked_block


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric linear map on flat vectors of length ``n``.

    ``matmat(V)`` takes ``V`` of shape ``(n, b)`` in ``dtype`` on ``device`` and returns ``A V`` of the
    same shape. The map must be symmetric (``u^T A v = v^T A u``); the solvers do not check this, since
    checking costs products. An optional integer attribute ``matvecs`` counts the vectors applied so far.
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def matmat(self, V: Tensor) -> Tensor: ...


class MatrixOperator:
    """A dense symmetric matrix as a :class:`SymmetricOperator` that counts its matvecs.

    Args:
        A: a square tensor, symmetric up to ``100 * eps * max|A|`` (``eps`` of its dtype).

    ``matvecs`` counts vectors applied (``matmat`` on ``b`` columns adds ``b``). Memory: the matrix, n^2.
    """

    def __init__(self, A: Tensor):
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"MatrixOperator needs a square matrix, got shape {tuple(A.shape)}")
        if not A.dtype.is_floating_point:
            raise TypeError(f"MatrixOperator needs a floating-point matrix, got {A.dtype}")
        asym = (A - A.T).abs().max()
        if asym > 100 * torch.finfo(A.dtype).eps * A.abs().max():
            raise ValueError(f"matrix is not symmetric: max |A - A^T| = {float(asym):.3g}")
        self.A = A
        self.shape = (A.shape[0], A.shape[1])
        self.dtype = A.dtype
        self.device = A.device
        self.matvecs = 0

    def __repr__(self) -> str:
        return f"MatrixOperator(n={self.shape[0]}, dtype={self.dtype}, matvecs={self.matvecs})"

    def matmat(self, V: Tensor) -> Tensor:
        """``A V`` for ``V`` of shape ``(n, b)`` (cast to the matrix's dtype and device)."""
        V = checked_block(V, self.shape[0], "matmat").to(dtype=self.dtype, device=self.device)
        self.matvecs += V.shape[1]
        return self.A @ V

    def __matmul__(self, v: Tensor) -> Tensor:
        """``A v`` for a vector ``(n,)`` or a block ``(n, b)``."""
        return self.matmat(v[:, None])[:, 0] if isinstance(v, Tensor) and v.ndim == 1 else self.matmat(v)


class Counted:
    """A solver's view of an operator: checks its shape and counts the vectors the solver applies.

    Counting here, not on the operator, gives each solver call its own count whatever the operator does.
    """

    def __init__(self, op: SymmetricOperator):
        shape = tuple(getattr(op, "shape", ()))
        if len(shape) != 2 or not hasattr(op, "matmat"):
            hint = ": wrap a dense matrix in landscape.linalg.MatrixOperator" if isinstance(op, Tensor) else ""
            raise TypeError(f"expected a symmetric operator with shape (n, n) and matmat, got {type(op).__name__}"
                            + hint)
        if not isinstance(getattr(op, "dtype", None), torch.dtype) or not hasattr(op, "device"):
            raise TypeError(f"{type(op).__name__} needs a torch dtype and a device (the solvers work on torch "
                            f"tensors), got dtype {getattr(op, 'dtype', None)!r}: wrap a dense matrix in "
                            "landscape.linalg.MatrixOperator, or give the operator torch attributes")
        if shape[0] != shape[1]:
            raise ValueError(f"operator shape {shape} is not square; the solvers need a symmetric operator")
        self.op = op
        self.n: int = int(shape[0])
        self.dtype: torch.dtype = op.dtype
        self.device = torch.device(op.device)
        self.matvecs = 0

    def matmat(self, V: Tensor) -> Tensor:
        """``A V`` for ``V`` of shape ``(n, b)``, counted as ``b`` matvecs."""
        out = self.op.matmat(V)
        if out.shape != V.shape:
            raise ValueError(f"operator returned shape {tuple(out.shape)} for input {tuple(V.shape)}")
        self.matvecs += V.shape[1]
        return out

    def generator(self, seed: int) -> torch.Generator:
        """A generator on the operator's device, so that the solvers never touch the global RNG."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def rademacher(self, cols: int, generator: torch.Generator) -> Tensor:
        """An ``(n, cols)`` block of independent +-1 entries in the operator's dtype and device."""
        bits = torch.randint(0, 2, (self.n, cols), generator=generator, device=self.device)
        return (2 * bits - 1).to(self.dtype)
