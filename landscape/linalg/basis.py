"""Where a Krylov basis is stored, and the Gram-Schmidt arithmetic on it in bounded memory.

A Lanczos basis of ``m`` vectors of length ``n`` costs ``m n`` elements: for an 11M-parameter network and
``m = 21``, 0.9 GB in float32, as much as the model's activations on an accelerator. A :class:`Layout`
stores the basis apart from the operator:

* storage: ``dtype`` (e.g. ``torch.bfloat16``, halving it) on ``device`` (e.g. ``"cpu"`` while the operator
  runs on a GPU);
* work: every inner product and update runs on the storage device in the *work dtype* (the more precise
  of the operator's dtype and the storage dtype). When storage and work dtypes differ, stored rows are
  read in chunks of at most :data:`CHUNK_ELEMENTS` elements and upcast, so the arithmetic costs that much
  extra memory, never another ``m n``.

Rounding. Storing a vector rounds it to the storage dtype (unit roundoff ``u``). Classical Gram-Schmidt
applied twice against the *stored* rows leaves a new vector orthogonal to them to ``O(u^2)``; rounding
it for storage makes the basis orthonormal to ``O(u)`` only, so with ``V`` the stored rows the Lanczos
relation holds as ``A V^T = V^T H + beta v e^T + F`` with ``||F||_F <= sqrt(m) u max beta`` (restarts add
``O(u ||A||)`` per kept vector): recurrence residuals miss that term, and Ritz values are off the Rayleigh
quotients of the Ritz vectors to first order in ``u``. So :func:`landscape.linalg.eigs` certifies the
pairs it returns with one more product (Rayleigh quotients, true residuals). Measured on a 300 x 300
Hessian-like spectrum, the true residuals of converged pairs were ``0.07-0.6 u ||A||``. With storage in
the work dtype, ``u`` is 0 here and the usual rounding analysis applies.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

CHUNK_ELEMENTS = 2 ** 22


class Layout:
    """Storage dtype and device of a basis, and the dtype its arithmetic runs in.

    Args:
        dtype: storage dtype (default: the operator's). device: storage device (default: the operator's).
        op_dtype, op_device: the operator's, where vectors go to be multiplied.
    """

    def __init__(self, op_dtype: torch.dtype, op_device: torch.device, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None):
        self.dtype = op_dtype if dtype is None else dtype
        if not self.dtype.is_floating_point or self.dtype.is_complex:
            raise TypeError(f"basis_dtype must be a real floating-point dtype, got {self.dtype}")
        self.device = op_device if device is None else torch.device(device)
        self.op_dtype, self.op_device = op_dtype, op_device
        self.work_dtype = torch.promote_types(op_dtype, self.dtype)

    @property
    def unit_roundoff(self) -> float:
        """``u`` of storing a work vector: ``eps/2`` of the storage dtype if it is less precise, else 0."""
        if self.dtype == self.work_dtype:
            return 0.0
        return float(torch.finfo(self.dtype).eps) / 2

    def zeros(self, *shape: int) -> Tensor:
        """Storage for a basis of the given shape."""
        return torch.zeros(*shape, dtype=self.dtype, device=self.device)

    def to_work(self, x: Tensor) -> Tensor:
        """``x`` in the work dtype on the storage device (``x`` itself when it already is)."""
        return x.to(device=self.device, dtype=self.work_dtype)

    def to_op(self, x: Tensor) -> Tensor:
        """``x`` in the operator's dtype on its device (``x`` itself when it already is)."""
        return x.to(device=self.op_device, dtype=self.op_dtype)


def _pieces(Q: Tensor, dtype: torch.dtype, always: bool = False) -> Iterator[tuple[slice, Tensor]]:
    """``Q[..., s]`` in ``dtype`` over column slices ``s`` of at most ``CHUNK_ELEMENTS`` elements: one
    slice (``Q`` itself, no copy) when ``Q`` already has ``dtype`` unless ``always``."""
    n = Q.shape[-1]
    if Q.dtype == dtype and not always:
        yield slice(0, n), Q
        return
    width = max(1, CHUNK_ELEMENTS // max(1, Q[..., 0].numel()))
    for start in range(0, n, width):
        s = slice(start, min(start + width, n))
        yield s, Q[..., s].to(dtype)


def project(Q: Tensor, w: Tensor) -> Tensor:
    """``Q w``: the coefficients ``(..., m)`` of ``w`` (``(..., n)``, work dtype) on the stored rows
    ``Q`` (``(..., m, n)``), computed in ``w``'s dtype."""
    h = None
    for s, q in _pieces(Q, w.dtype):
        part = (q @ w[..., s, None])[..., 0]
        h = part if h is None else h.add_(part)
    return h


def subtract(Q: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """``w - Q^T h`` as a new tensor, fused (``addmv`` / ``baddbmm``) chunk by chunk."""
    out = torch.empty(w.shape, dtype=w.dtype, device=w.device)   # contiguous whatever w is
    n = w.shape[-1]
    for s, q in _pieces(Q, w.dtype):
        if q.ndim == 2:
            torch.addmv(w[s], q.T, h, alpha=-1, out=out[s])
        elif s.stop - s.start == n:
            torch.baddbmm(w[..., None], q.mT, h[..., None], alpha=-1, out=out[..., None])
        else:
            out[..., s] = torch.baddbmm(w[..., s, None], q.mT, h[..., None], alpha=-1)[..., 0]
    return out


def cgs2(Q: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Classical Gram-Schmidt applied twice: ``w = Q^T h + w_perp`` with ``w_perp`` orthogonal to the
    stored rows of ``Q`` to working precision; returns ``(w_perp, h)``. Batched over leading dimensions."""
    h = project(Q, w)
    w = subtract(Q, h, w)
    h2 = project(Q, w)
    return subtract(Q, h2, w), h.add_(h2)


def combine(S: Tensor, Q: Tensor, out: Tensor | None = None) -> Tensor:
    """``S^T Q`` (``(k, n)``) for ``S`` (``(m, k)``) and stored rows ``Q`` (``(m, n)``), in ``S``'s dtype,
    chunk by chunk (temporary memory ``(m + k) * CHUNK_ELEMENTS / m`` elements at most). With ``out`` a
    ``(k, n)`` tensor, writes there; ``out`` may share storage with ``Q`` (each chunk is read before it
    is written), which is how a thick restart rewrites the basis in place."""
    if out is None:
        out = torch.empty(S.shape[1], Q.shape[-1], dtype=S.dtype, device=Q.device)
    for s, q in _pieces(Q, S.dtype, always=True):
        out[:, s] = S.T @ q
    return out
