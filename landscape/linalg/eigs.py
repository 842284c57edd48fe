"""Extreme eigenpairs of a symmetric operator by thick-restart Lanczos, converged on residual norms."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.lanczos import ThickRestartLanczos
from landscape.linalg.operator import Counted, SymmetricOperator

WHICH = ("largest", "smallest", "both")
CRITERIA = ("residual", "eigenvalue")


@dataclass(frozen=True)
class Eigenpairs:
    """Ritz approximations to extreme eigenpairs, with their residuals and error bounds.

    Attributes:
        eigenvalues: ``(k,)`` for ``which="largest"`` (descending) or ``"smallest"`` (ascending); ``(2k,)``
            for ``"both"``, descending, so the first ``k`` are the largest and the last ``k`` the smallest.
        eigenvectors: ``(n, k)`` (or ``(n, 2k)``) orthonormal columns in the same order.
        residuals: ``||A v_i - theta_i v_i||_2`` from the Lanczos recurrence (``|beta| |s_i[-1]|``). With
            a basis stored less precisely than the operator (``basis_dtype``), the recurrence is exact only
            to about the basis's machine epsilon (:mod:`landscape.linalg.basis`): the returned pairs are
            then multiplied once more, and ``eigenvalues`` are their Rayleigh quotients
            ``v_i^T A v_i`` and ``residuals`` their true residual norms.
        error_bounds: ``min(r_i, r_i^2 / gap_i) + sqrt(n) eps scale`` estimating ``|lambda_i - theta_i|``,
            where ``gap_i`` is the distance from ``theta_i`` to the nearest other Ritz value less that value's
            residual (floored at 0) and the last term is the rounding floor (``eps`` of the dtype). ``r_i``
            bounds the distance from ``theta_i`` to the nearest eigenvalue of ``A`` rigorously;
            ``r_i^2 / gap_i`` (Kato-Temple; Parlett 1998 section 11.7) holds when ``gap_i`` is at most the
            distance to every other eigenvalue, which the Ritz values estimate from inside the spectrum.
        matvecs: products with the operator used by this call.
        converged: every returned pair met the stopping rule within ``max_matvecs``.
        which, tol, criterion: the request; ``scale``: the ``|lambda|_max`` estimate the tolerance multiplied.
        space: the operator's ``space`` attribute (a :class:`landscape.ParamSpace`), if it has one.

    Tensors are in the operator's dtype and on its device.
    """
    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    error_bounds: Tensor
    matvecs: int
    converged: bool
    which: str
    tol: float
    criterion: str
    scale: float
    space: Any = field(default=None, repr=False, compare=False)

    def eigenvector_dicts(self) -> list[dict[str, Tensor]]:
        """The eigenvectors as parameter dictionaries ``{name: tensor shaped like the parameter}``, in order."""
        if self.space is None:
            raise ValueError("the operator has no `space` attribute, so eigenvectors have no parameter layout; "
                             "use .eigenvectors (flat columns)")
        return [self.space.to_dict(self.eigenvectors[:, i]) for i in range(self.eigenvectors.shape[1])]


def eigs(op: SymmetricOperator, k: int = 6, which: str = "largest", tol: float = 1e-4,
         criterion: str = "residual", max_matvecs: int | None = None, ncv: int | None = None,
         v0: Tensor | None = None, seed: int = 0, basis_dtype: torch.dtype | None = None,
         basis_device: torch.device | str | None = None) -> Eigenpairs:
    """The ``k`` algebraically largest, smallest, or both, eigenpairs of a symmetric operator.

    Thick-restart Lanczos with full reorthogonalisation (Wu & Simon 2000): one matvec per step, the basis
    kept orthonormal by classical Gram-Schmidt twice, ``ncv`` basis vectors at most. When the basis is full
    it restarts, losing no matvecs, from the ``m + (ncv - m) // 3`` Ritz vectors nearest the wanted end(s)
    (``m`` the number of wanted pairs) plus the converged Ritz vectors elsewhere, locked so that they
    deflate the operator: seeking the most negative eigenvalues, the locked large outliers no longer slow
    the polynomial filter down.

    Stopping rule, checked after every step once there are ``m`` Ritz values: with ``scale`` the largest
    ``|theta|`` of any Ritz value so far (a lower bound on ``||A||_2``, accurate after a few steps), stop
    when every wanted pair has

    * ``criterion="residual"``: ``r_i = ||A v_i - theta_i v_i|| <= tol * scale``. Then some eigenvalue lies
      within ``tol * scale`` of ``theta_i`` (and, by Kato-Temple, within ``r_i^2 / gap_i``, far closer);
    * ``criterion="eigenvalue"``: ``error_bounds_i <= tol * scale``, i.e. the eigenvalue error
      estimate (see :class:`Eigenpairs`) rather than the vector's residual meets the tolerance. It stops
      earlier where gaps are wide compared with the residuals (the eigenvalue error is then about the
      squared residual); in clusters it falls back to the residual. Use it when only eigenvalues matter.

    The residual comes from the recurrence, ``||A V s - theta V s|| = |beta_j| |s_j|``, costing no matvecs.

    Args:
        op: symmetric operator (``shape``, ``dtype``, ``device``, ``matmat``).
        k: number of eigenpairs at each wanted end; ``k`` (``2k`` for ``"both"``) must be below ``n``.
        which: ``"largest"`` (algebraic, descending), ``"smallest"`` (most negative first, ascending), or
            ``"both"`` (``2k`` values, descending).
        tol: relative tolerance as above. It should exceed the operator's rounding, ``~sqrt(n) eps |A|``.
        criterion: ``"residual"`` or ``"eigenvalue"``.
        max_matvecs: budget of matvecs; default ``max(1000, 10 * ncv)``. At least the number of wanted
            pairs. A less precise ``basis_dtype`` adds the certifying products (one per returned pair).
        ncv: largest basis size, ``m < ncv <= n``; default ``min(n, max(5 m, 20))`` for ``"largest"``
            (top-5 of a 7.4k-parameter MLP Hessian at 1e-4: 22 matvecs with a restart at ``ncv=20``, 21 from
            ``ncv=24`` on) and ``min(n, max(2 m + 1, 60))`` otherwise: the most negative eigenvalues of a
            Hessian sit at the edge of its bulk and need ~100 Lanczos steps, which restarts would lengthen.
        v0: warm start, a vector ``(n,)`` or a block ``(n, b)`` (e.g. the eigenvectors of a previous call);
            the run starts from the sum of its normalised columns. It finds what that vector's Krylov space
            holds: if ``v0`` spans an invariant subspace the run stops at its eigenpairs, so an eigenvector
            orthogonal to a stale ``v0`` can be missed; start cold from time to time.
        seed: seeds the random start (and the random continuation after an exact invariant subspace) on
            the operator's device; the global RNG is unused.
        basis_dtype: dtype the Lanczos basis is stored in (default: the operator's). ``torch.bfloat16``
            under a float32 operator, or ``torch.float32`` under a float64 one, halves the basis memory.
            Rounding the basis puts a floor of about ``eps_b |lambda|_max / 4`` under the true residuals
            (``eps_b`` its machine epsilon), so with ``criterion="residual"`` ``tol`` must exceed ``eps_b``
            (0.0078 for bfloat16); the returned pairs are certified by ``k`` more products (see
            ``residuals``). Eigenvalues are far more accurate (``r^2 / gap``): on a 300 x 300 Hessian-like
            spectrum with a bfloat16 basis, relative eigenvalue errors of 3e-6 to 5e-5 where the true
            residuals were 3e-4 to 2e-3. float16 loses entries below 6e-5 (its normal range): prefer
            bfloat16.
        basis_device: device the basis is stored on (default: the operator's), e.g. ``"cpu"`` while the
            operator runs on a GPU: each step then moves one vector to the device and one back, and
            orthogonalises on the basis device.

    Memory: ``(ncv + 1) n`` elements of ``basis_dtype`` on ``basis_device`` for the basis; about ``3 n``
    elements of the operator's dtype for one step's vectors (on the basis device, plus ``n`` on the
    operator's when the two differ); restarts rewrite the basis in place, in chunks of at most 4M elements;
    ``k n`` (``2 k n`` for ``"both"``) for the returned eigenvectors; ``ncv^2`` floats on the host. Plus
    whatever the operator keeps. For an 11M-parameter float32 network and ``k = 1`` (``ncv = 20``): 0.92
    GB of basis in float32, 0.46 GB in bfloat16, none on the GPU with ``basis_device="cpu"``.

    Host synchronisation: one transfer of ``j + 2`` numbers per step (the new column of ``H``, which the
    convergence check of that step needs); the small projected eigenproblem is solved on the host.

    Distributed operators: run the same call, with the same arguments and ``seed``, on every rank. The
    start vector comes from a generator seeded on the operator's device, every product returns the same
    all-reduced result on every rank, and the rest of the arithmetic is the same on every rank, so every
    decision (convergence, restarts, breakdowns) and every result agree across ranks.

    Single-vector Lanczos finds one vector per multiple eigenvalue; the other copies appear only through
    rounding and restarts, so a multiplicity may be under-reported (as with ARPACK).
    """
    A = Counted(op)
    n = A.n
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    wanted = 2 * k if which == "both" else k
    if k < 1 or wanted >= n:
        raise ValueError(f"k={k} with which={which!r} asks for {wanted} eigenpairs of a dimension-{n} operator; "
                         f"it must be at least 1 and below {n} (for all eigenpairs use torch.linalg.eigh)")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    default_ncv = max(5 * wanted, 20) if which == "largest" else max(2 * wanted + 1, 60)
    ncv = min(n, default_ncv) if ncv is None else ncv
    if not wanted < ncv <= n:
        raise ValueError(f"ncv={ncv} must satisfy {wanted} (eigenpairs asked) < ncv <= n={n}")
    max_matvecs = max(1000, 10 * ncv) if max_matvecs is None else max_matvecs
    if max_matvecs < wanted:
        raise ValueError(f"max_matvecs={max_matvecs} is below the {wanted} eigenpairs asked")

    generator = A.generator(seed)
    run = ThickRestartLanczos(A, ncv, generator, basis_dtype, basis_device)
    lossy = 2 * run.layout.unit_roundoff     # eps_b when the basis is less precise than the operator, else 0
    if criterion == "residual" and not tol > lossy:
        raise ValueError(f"tol={tol} is below the precision of a {run.layout.dtype} basis (eps {lossy:.3g}), "
                         "which bounds the residuals: use a larger tol, criterion='eigenvalue', or a more "
                         "precise basis_dtype")
    run.start(_start_vector(A, v0, generator))
    scale = 0.0
    rounding = math.sqrt(n) * float(torch.finfo(A.dtype).eps)
    while True:
        run.expand()
        if run.j < wanted:
            continue
        theta, S, r = run.ritz()
        scale = max(scale, float(np.abs(theta).max()))
        bounds = _error_bounds(theta, r) + rounding * scale
        sel = _select(theta.size, which, wanted)
        test = r[sel] if criterion == "residual" else bounds[sel]
        converged = bool(np.all(test <= tol * scale))
        if converged or run.exhausted or A.matvecs >= max_matvecs:
            break
        if run.j == ncv:
            idx = _restart_set(theta.size, which, wanted, r <= tol * scale)
            run.restart(theta[idx], S[:, idx])

    def tensor(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=A.dtype, device=A.device)

    vectors = run.vectors(S[:, sel])
    if lossy:   # the recurrence no longer certifies the pairs: one more product does
        rho, true, vectors = _rayleigh_quotients(A, vectors)
        theta, r = theta.copy(), r + lossy * scale   # the other Ritz pairs' residuals, with the rounding floor
        theta[sel], r[sel] = rho, true
        bounds = _error_bounds(theta, r) + rounding * scale
        test = r[sel] if criterion == "residual" else bounds[sel]
        converged = converged and bool(np.all(test <= tol * scale))
        order = np.argsort(theta[sel] if which == "smallest" else -theta[sel], kind="stable")
        sel, vectors = sel[order], vectors[torch.as_tensor(order, device=vectors.device)]
    return Eigenpairs(eigenvalues=tensor(theta[sel]), eigenvectors=vectors.T.contiguous(),
                      residuals=tensor(r[sel]), error_bounds=tensor(bounds[sel]), matvecs=A.matvecs,
                      converged=converged, which=which, tol=tol, criterion=criterion, scale=scale,
                      space=getattr(op, "space", None))


def _select(size: int, which: str, count: int) -> np.ndarray:
    """Indices into ``size`` ascending Ritz values: ``count`` at the wanted end(s), in output order
    (``"both"``: ``count - count // 2`` from the top, then ``count // 2`` from the bottom, all descending)."""
    if which == "largest":
        return np.arange(size - 1, size - 1 - count, -1)
    if which == "smallest":
        return np.arange(count)
    top = count - count // 2
    return np.concatenate([np.arange(size - 1, size - 1 - top, -1), np.arange(count // 2 - 1, -1, -1)])


def _restart_set(size: int, which: str, wanted: int, converged: np.ndarray) -> np.ndarray:
    """Ritz pairs a thick restart keeps: ``wanted + (size - wanted) // 3`` nearest the wanted end(s), and
    converged pairs elsewhere (locked, deflating e.g. the large outliers while seeking the most negative
    eigenvalues), leaving at least ``size // 4`` fresh steps per cycle."""
    near = _select(size, which, wanted + (size - wanted) // 3)
    room = size - max(size // 4, 1) - near.size
    locked = np.setdiff1d(np.flatnonzero(converged), near)[::-1][:max(room, 0)]
    return np.sort(np.concatenate([near, locked]))


def _error_bounds(theta: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``min(r_i, r_i^2 / gap_i)`` with ``gap_i = max(0, min_{j != i} |theta_i - theta_j| - r_j)``."""
    if theta.size == 1:
        return r.copy()
    dist = np.abs(theta[:, None] - theta[None, :]) - r[None, :]
    np.fill_diagonal(dist, np.inf)
    gap = np.maximum(dist.min(axis=1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = np.where(gap > 0, r**2 / gap, np.inf)
    return np.minimum(r, quad)


def _rayleigh_quotients(A: Counted, Y: Tensor) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """For the rows ``y`` of ``Y`` normalised: Rayleigh quotients ``rho = y^T A y`` and residual norms
    ``||A y - rho y||``, by one product of all the rows, and the normalised rows."""
    Y = Y / torch.linalg.vector_norm(Y, dim=1, keepdim=True)
    AY = A.matmat(Y.T.contiguous()).T
    rho = (Y * AY).sum(dim=1)
    residuals = torch.linalg.vector_norm(AY - rho[:, None] * Y, dim=1)
    host = torch.stack([rho, residuals]).cpu().double().numpy()
    return host[0], host[1], Y


def _start_vector(A: Counted, v0: Tensor | None, generator: torch.Generator) -> Tensor:
    """A random Gaussian vector, or the sum of ``v0``'s normalised columns."""
    if v0 is None:
        return torch.randn(A.n, generator=generator, dtype=A.dtype, device=A.device)
    V = v0.to(dtype=A.dtype, device=A.device)
    V = V[:, None] if V.ndim == 1 else V
    if V.ndim != 2 or V.shape[0] != A.n:
        raise ValueError(f"v0 must have shape ({A.n},) or ({A.n}, b), got {tuple(v0.shape)}")
    norms = torch.linalg.vector_norm(V, dim=0)
    if not bool((norms > 0).all()) or not bool(torch.isfinite(V).all()):
        raise ValueError("v0 has a zero or non-finite column")
    return (V / norms).sum(dim=1)
