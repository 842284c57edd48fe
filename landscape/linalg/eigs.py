"""Extreme eigenpairs of a symmetric operator, certified to be the ``k`` extreme ones within a tolerance."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.block_lanczos import BlockKrylov, block_norm, gram_norm
from landscape.linalg.certify import gap_bounds, verify
from landscape.linalg.choose import choose
from landscape.linalg.lanczos import ThickRestartLanczos
from landscape.linalg.memory import MemoryBudgetError, plan_block, plan_lanczos
from landscape.linalg.operator import Counted, SymmetricOperator

WHICH = ("largest", "smallest", "both")
CRITERIA = ("residual", "eigenvalue")
METHODS = ("lanczos", "block", "auto")
TOLERANCE_MEANING = "|theta_i - lambda_i| <= tol * |lambda|_max for each i (lambda_i the i-th extreme eigenvalue)"


@dataclass(frozen=True)
class Eigenpairs:
    """Ritz approximations to the ``k`` extreme eigenpairs, with their residuals and certified error bounds.

    Attributes:
        eigenvalues: ``(k,)`` for ``which="largest"`` (descending) or ``"smallest"`` (ascending); ``(2k,)``
            for ``"both"``, descending, so the first ``k`` are the largest and the last ``k`` the smallest.
        eigenvectors: ``(n, k)`` (or ``(n, 2k)``) orthonormal columns in the same order.
        residuals: ``||A v_i - theta_i v_i||_2``: from the Lanczos recurrence (``|beta| |s_i[-1]|``), or, when
            the pairs come from a block or merged basis (``method="block"``, a refinement after a failed
            verification) or from a basis stored less precisely than the operator (``basis_dtype``), from an
            explicit product (true residuals).
        error_bounds: bounds on ``|theta_i - lambda_i|``, ``lambda_i`` the ``i``-th extreme eigenvalue counted
            with multiplicity (:mod:`landscape.linalg.certify`): ``eps + max(0, mu - theta_i)``, or
            ``2 eps^2 / (eta_i + sqrt(eta_i^2 + 4 eps^2))`` across a gap ``eta_i`` to the rest of the
            spectrum, where ``eps`` is the norm of the whole residual block and ``mu`` the extreme eigenvalue
            of the rest (estimated by the verification pass when ``converged``, by the solver's unwanted Ritz
            values otherwise), plus the rounding floor ``sqrt(n) eps_dtype scale``. Ritz values lie inside
            the spectrum, so the error is one-sided: ``theta_i <= lambda_i`` at the top, ``>=`` at the bottom.
        matvecs: products with the operator used by this call, certification included.
        converged: certified: the returned values are the ``k`` extreme eigenvalues (with multiplicity) to
            within ``tol * scale`` each (``error_bounds <= tol * scale``), checked by a verification pass from
            a fresh random start deflated against the returned vectors (see :func:`eigs` for the probability
            model); with ``criterion="residual"`` every residual is within ``tol * scale`` too.
        reason: why ``converged`` is False ("" when it is True).
        which, tol, criterion: the request; ``tol`` is relative to ``|lambda|_max`` (:data:`TOLERANCE_MEANING`),
            ``scale`` the ``|lambda|_max`` estimate it multiplied (the largest ``|theta|`` seen), so
            ``tol * scale`` (:attr:`absolute_tol`) is the absolute tolerance.
        method: the method used, ``"lanczos"`` or ``"block"`` (what ``"auto"`` picked). method_reason: why:
            ``"requested"``, or ``"auto"``'s measured times and expected ratio (:mod:`landscape.linalg.choose`).
            block_cost_ratio: ``"auto"``'s measured cost per vector of a product of ``block_size`` vectors
            relative to a single product (``nan`` when nothing was measured). basis: the basis's size, dtype,
            device and bytes, and, with ``max_memory``, how the budget chose them. certify_matvecs: the products
            the verification passes and any refinement after a failed one cost (included in ``matvecs``).
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
    reason: str = ""
    method: str = "lanczos"
    certify_matvecs: int = 0
    method_reason: str = "requested"
    block_cost_ratio: float = math.nan
    basis: str = ""

    @property
    def absolute_tol(self) -> float:
        """``tol * scale``: the absolute eigenvalue error ``converged`` certifies."""
        return self.tol * self.scale

    @property
    def tolerance(self) -> str:
        """What ``tol`` means, in words with this result's numbers."""
        return f"{TOLERANCE_MEANING}; tol={self.tol:g}, |lambda|_max ~ {self.scale:.4g}: {self.absolute_tol:.3g}"

    def pick(self, positions: slice) -> Eigenpairs:
        """The pairs at ``positions`` (e.g. ``slice(0, 3)``, the three most extreme), everything else kept:
        each value's certificate is its own, so a certified result's subset stays certified."""
        return replace(self, eigenvalues=self.eigenvalues[positions], eigenvectors=self.eigenvectors[:, positions],
                       residuals=self.residuals[positions], error_bounds=self.error_bounds[positions])

    def eigenvector_dicts(self) -> list[dict[str, Tensor]]:
        """The eigenvectors as parameter dictionaries ``{name: tensor shaped like the parameter}``, in order."""
        if self.space is None:
            raise ValueError("the operator has no `space` attribute, so eigenvectors have no parameter layout; "
                             "use .eigenvectors (flat columns)")
        return [self.space.to_dict(self.eigenvectors[:, i]) for i in range(self.eigenvectors.shape[1])]


def eigs(op: SymmetricOperator, k: int = 6, which: str = "largest", tol: float = 1e-4,
         criterion: str = "residual", max_matvecs: int | None = None, ncv: int | None = None,
         v0: Tensor | None = None, seed: int = 0, basis_dtype: torch.dtype | None = None,
         basis_device: torch.device | str | None = None, method: str = "lanczos", block_size: int | None = None,
         certify: bool = True, max_memory: int | None = None) -> Eigenpairs:
    """The ``k`` algebraically largest, smallest, or both, eigenpairs of a symmetric operator, certified.

    Tolerance. ``tol`` is relative to ``|lambda|_max``: ``converged=True`` means every returned value is within
    ``tol * scale`` of the corresponding extreme eigenvalue counted with multiplicity (``scale`` the largest
    ``|theta|`` seen, a lower bound on ``||A||_2``, accurate after a few steps), and not only of *some*
    eigenvalue: a missed copy of a multiple eigenvalue or a hidden member of a cluster makes it False. Small
    eigenvalues are therefore resolved only to ``tol |lambda|_max``: the most negative eigenvalues of a Hessian
    at interpolation, around ``-5e-4 |lambda|_max``, need ``tol`` well below ``5e-4`` to mean anything.

    Methods:

    * ``"lanczos"``: thick-restart Lanczos with full reorthogonalisation (Wu & Simon 2000): one matvec per
      step, ``ncv`` basis vectors at most. When the basis is full it restarts, losing no matvecs, from the
      ``m + (ncv - m) // 3`` Ritz vectors nearest the wanted end(s) (``m`` the number of wanted pairs) plus the
      converged Ritz vectors elsewhere, locked so that they deflate the operator.
    * ``"block"``: block Lanczos in Rayleigh-Ritz form (:mod:`landscape.linalg.block_lanczos`) from ``block_size``
      random vectors (default ``m``), one ``matmat`` of ``block_size`` vectors per step: it sees eigenvalues of
      multiplicity up to ``block_size`` at once, and on an accelerator a ``matmat`` of ``b`` vectors costs far
      less than ``b`` products. On a CPU it needs more matvecs than ``"lanczos"``.
    * ``"auto"``: ``"block"`` or ``"lanczos"`` by measured wall time (:mod:`landscape.linalg.choose`): one
      product of ``block_size`` vectors against single products, timed at the first call on an operator
      (``2 (block_size + 1)`` products, counted in ``matvecs``) and kept for later calls on it, weighed against
      block Lanczos's ~2x matvecs. On a CPU it picks ``"lanczos"``. Not the default: the measurement costs
      about 30% of a certified top-5 solve at first use, and timings differ between ranks, so a distributed
      operator (whose ranks must take the same decisions) needs an explicit method. With ``basis_dtype`` or
      ``basis_device`` it is ``"lanczos"`` without measuring (the only method that stores its basis so).

    Stopping rule, checked after every step: with ``eps`` the norm of the residual block of the wanted pairs
    and ``mu`` the nearest unwanted Ritz value pushed out by its residual, every wanted pair's bound
    (:func:`landscape.linalg.certify.gap_bounds`) is within ``tol * scale``; with ``criterion="residual"``
    every residual ``r_i = ||A v_i - theta_i v_i||`` is within ``tol * scale`` too (use it when the vectors
    matter; ``"eigenvalue"`` stops earlier where gaps are wide, the eigenvalue error being about
    ``eps^2 / gap``).

    Certification (``certify=True``), after the stopping rule: a verification pass
    (:func:`landscape.linalg.certify.verify`), a Lanczos run from a fresh random start on the operator
    deflated against the returned vectors, bounds the rest of the spectrum. If it finds an eigenvalue beyond
    the ``k``-th value by more than the bounds allow, the union of the returned and the found vectors seeds a
    block refinement and a new pass follows; if the residual block is too large for the gaps, the pairs are
    refined too. ``converged`` is True only when a pass certifies ``error_bounds <= tol * scale``; otherwise
    ``reason`` says what failed. The certificate is exact given the extreme eigenvalue of the deflated operator;
    the pass bounds that eigenvalue by its own extreme Ritz value plus its residual once converged to
    ``tol * scale``, or plus the Kuczynski-Wozniakowski reach (probability of a miss at most 1%), see
    :mod:`landscape.linalg.certify` for the probability model. Cost, on the MNIST-1D benchmark models at
    ``tol=1e-4`` (``analyses/README.md``): top-5 +10 to +18 matvecs (+40-70%), five most negative +33 to +45
    (+40-55%) and up to 4x in one seed of the CNN; ``certify=False`` skips the pass and always reports
    ``converged=False``.

    Args:
        op: symmetric operator (``shape``, ``dtype``, ``device``, ``matmat``).
        k: number of eigenpairs at each wanted end; ``k`` (``2k`` for ``"both"``) must be below ``n``.
        which: ``"largest"`` (algebraic, descending), ``"smallest"`` (most negative first, ascending), or
            ``"both"`` (``2k`` values, descending).
        tol: relative tolerance as above. It should exceed the operator's rounding, ``~sqrt(n) eps |A|``.
        criterion: ``"residual"`` or ``"eigenvalue"``.
        max_matvecs: budget of matvecs, certification and ``"auto"``'s measurement included; default
            ``max(1000, 10 * ncv)`` plus the measurement. At least
            the number of wanted pairs.
        ncv: largest basis size, ``m < ncv <= n``; default ``min(n, max(5 m, 20))`` for ``"largest"``
            (top-5 of a 7.4k-parameter MLP Hessian at 1e-4: 22 matvecs with a restart at ``ncv=20``, 21 from
            ``ncv=24`` on) and ``min(n, max(2 m + 1, 60))`` otherwise: the most negative eigenvalues of a
            Hessian sit at the edge of its bulk and need ~100 Lanczos steps, which restarts would lengthen.
            ``"block"`` uses at least ``4 block_size + m``.
        v0: warm start, a vector ``(n,)`` or a block ``(n, b)`` (e.g. the eigenvectors of a previous call):
            ``"lanczos"`` starts from the sum of its normalised columns, ``"block"`` from the columns (topped
            up with random ones to ``block_size``). A stale ``v0`` spanning an invariant subspace would hide the
            rest of the spectrum; the verification pass starts cold, so it catches that.
        seed: seeds the random starts (and the random continuation after an exact invariant subspace) on
            the operator's device; the global RNG is unused.
        basis_dtype: dtype the Lanczos basis is stored in (default: the operator's; ``"lanczos"`` only).
            ``torch.bfloat16`` under a float32 operator, or ``torch.float32`` under a float64 one, halves the
            basis memory. Rounding the basis puts a floor of about ``eps_b |lambda|_max / 4`` under the true
            residuals (``eps_b`` its machine epsilon), so with ``criterion="residual"`` ``tol`` must exceed
            ``eps_b`` (0.0078 for bfloat16); the returned pairs are then re-projected by one more product of
            the ``m`` vectors (see ``residuals``). Eigenvalues are far more accurate (``r^2 / gap``): on a
            300 x 300 Hessian-like spectrum with a bfloat16 basis, relative eigenvalue errors of 3e-6 to 5e-5
            where the true residuals were 3e-4 to 2e-3. float16 loses entries below 6e-5 (its normal range):
            prefer bfloat16.
        basis_device: device the basis is stored on (default: the operator's; ``"lanczos"`` only), e.g.
            ``"cpu"`` while the operator runs on a GPU: each step then moves one vector to the device and one
            back, and orthogonalises on the basis device.
        method: ``"lanczos"``, ``"block"`` or ``"auto"`` (above).
        block_size: vectors per step of ``"block"`` (default ``m``); at least the largest multiplicity expected.
        certify: run the verification pass (above).
        max_memory: bytes the basis may take on the operator's device (:mod:`landscape.linalg.memory`, which
            says exactly what is counted). ``"lanczos"``: at the requested ``ncv``, the operator's dtype, else
            float32, else bfloat16 (only a dtype whose epsilon is below ``tol``: its rounding floors the bounds),
            else the host (``"cpu"``) when the operator is elsewhere, else ``ncv`` reduced down to
            ``min(n, 2 m + 2)`` in the least precise dtype allowed; ``"block"``: ``ncv`` reduced down to
            ``min(n, 3 block_size + m)``; a refinement after a failed verification pass that does not fit is
            skipped (``converged=False``, ``reason`` says so); ``"auto"`` falls back to ``"lanczos"`` when
            ``"block"`` does not fit. Raises :class:`landscape.linalg.memory.MemoryBudgetError` when even
            the minimum does not fit. The choice is in the result's ``basis``.

    Memory (``"lanczos"``): ``(ncv + 1) n`` elements of ``basis_dtype`` on ``basis_device`` for the basis;
    about ``3 n`` elements of the operator's dtype for one step's vectors (on the basis device, plus ``n`` on
    the operator's when the two differ); restarts rewrite the basis in place, in chunks of at most 4M
    elements; ``m n`` for the returned eigenvectors; ``ncv^2`` floats on the host. The verification pass
    holds another basis of at most ``ncv + 1`` vectors (the solver's is freed first) plus the ``m`` it
    deflates. ``"block"``: at most ``(4 ncv + 3 block_size + 2 m) n`` elements of the operator's dtype (basis,
    image, a step's Ritz vectors and residuals, and its block). Plus whatever the operator keeps. For an
    11M-parameter float32 network and ``k = 1`` (``ncv = 20``): 0.92 GB of basis in float32, 0.46 GB in
    bfloat16, none on the GPU with ``basis_device="cpu"``.

    Host synchronisation: one transfer of ``j + 2`` numbers per Lanczos step (the new column of ``H``, which
    the convergence check of that step needs); three per block step, whatever ``block_size``; the small
    projected eigenproblems are solved on the host.

    Distributed operators: run the same call, with the same arguments and ``seed``, on every rank. The
    start vectors come from a generator seeded on the operator's device, every product returns the same
    all-reduced result on every rank, and the rest of the arithmetic is the same on every rank, so every
    decision (convergence, restarts, breakdowns, certification) and every result agree across ranks.
    """
    A = Counted(op)
    n = A.n
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    wanted = 2 * k if which == "both" else k
    if k < 1 or wanted >= n:
        raise ValueError(f"k={k} with which={which!r} asks for {wanted} eigenpairs of a dimension-{n} operator; "
                         f"it must be at least 1 and below {n} (for all eigenpairs use torch.linalg.eigh)")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if method == "block" and (basis_dtype is not None or basis_device is not None):
        raise ValueError("basis_dtype and basis_device apply to method='lanczos'; method='block' keeps its basis "
                         "in the operator's dtype and device")
    block_size = wanted if block_size is None else block_size
    if not 1 <= block_size < n:
        raise ValueError(f"block_size={block_size} must be at least 1 and below n={n}")
    method_reason, block_cost_ratio = "requested", math.nan
    if method == "auto" and (basis_dtype is not None or basis_device is not None):
        method, method_reason = "lanczos", "auto: basis_dtype or basis_device given, which only 'lanczos' supports"
    elif method == "auto":
        decision = choose(A, block_size, seed)
        method, method_reason, block_cost_ratio = decision.method, decision.reason, decision.timing.cost_ratio
    if method == "block" and max_memory is not None and method_reason != "requested":
        try:   # "auto" picked block: it must fit too
            plan_block(n, wanted, block_size, min(n, _default_ncv(which, wanted, method, block_size)) if ncv is None
                       else ncv, A.dtype, A.device, max_memory)
        except MemoryBudgetError:
            method, method_reason = "lanczos", method_reason + "; but block Lanczos does not fit max_memory: " \
                                                               "single-vector Lanczos"
    ncv = min(n, _default_ncv(which, wanted, method, block_size)) if ncv is None else ncv
    if not wanted < ncv <= n:
        raise ValueError(f"ncv={ncv} must satisfy {wanted} (eigenpairs asked) < ncv <= n={n}")
    if method == "lanczos":
        plan = plan_lanczos(n, wanted, ncv, A.dtype, A.device, max_memory, basis_dtype, basis_device, tol)
        basis_dtype, basis_device = plan.dtype, plan.device
    else:
        plan = plan_block(n, wanted, block_size, ncv, A.dtype, A.device, max_memory)
    ncv = plan.ncv
    max_matvecs = max(1000, 10 * ncv) + A.matvecs if max_matvecs is None else max_matvecs
    if max_matvecs < wanted:
        raise ValueError(f"max_matvecs={max_matvecs} is below the {wanted} eigenpairs asked")

    generator = A.generator(seed)
    stop = _StoppingRule(which, wanted, tol, criterion, math.sqrt(n) * float(torch.finfo(A.dtype).eps))
    if method == "lanczos":
        ritz = _lanczos(A, stop, ncv, max_matvecs, _start_vector(A, v0, generator), generator, basis_dtype,
                        basis_device)
    else:
        ritz = _block(A, stop, ncv, max_matvecs, _start_block(A, v0, block_size, generator), generator, 0.0)
    solved = A.matvecs
    converged, reason = False, ""
    if not ritz.met:
        reason = f"the stopping rule was not met within max_matvecs={max_matvecs} products"
    elif not certify:
        reason = "certify=False: the stopping rule was met but no verification pass checked that these are the " \
                 "k extreme eigenvalues"
    sides = stop.sides()
    for rounds in range(2 * wanted + 4):
        if not (ritz.met and certify):
            break
        left = max_matvecs - A.matvecs
        target = tol * ritz.scale
        if left <= 0:
            reason = f"max_matvecs={max_matvecs} was spent before a verification pass could run"
            break
        check = verify(A, ritz.vectors.T, ritz.values, sides, ritz.eps, target, ritz.scale, generator, ncv, left,
                       stop.rounding * ritz.scale, basis_dtype, basis_device)
        if check.passed:
            converged, reason = True, ""
            ritz = ritz.with_bounds(check.bounds)
            break
        reason = check.reason
        if A.matvecs >= max_matvecs:
            reason += f"; max_matvecs={max_matvecs} spent"
            break
        # refine from the union of the pairs and what the pass found, until the bounds hold against the
        # eigenvalues the pass saw (which the refinement's own Ritz values may not show), at half the target
        start = torch.cat([ritz.vectors, check.missed.T.to(ritz.vectors)], dim=1)
        found = check.missed.shape[0] > 0   # then what the pass saw joins the pairs: no bound on the rest
        seen_top = check.mu_top if math.isfinite(check.mu_top) and not found else -math.inf
        seen_bottom = check.mu_bottom if math.isfinite(check.mu_bottom) and not found else math.inf
        rule = _StoppingRule(which, wanted, tol, criterion, stop.rounding, ritz.shrink / 2, seen_top, seen_bottom)
        try:
            refine = plan_block(n, wanted, start.shape[1], ncv, A.dtype, A.device, max_memory)
        except MemoryBudgetError as error:
            reason += f"; the block refinement was skipped: {error}"
            break
        ritz = _block(A, rule, refine.ncv, max_matvecs, start, generator, ritz.scale)
        if not ritz.met:
            reason += f"; the refinement did not meet the stopping rule within max_matvecs={max_matvecs}"
    else:
        reason += f"; gave up after {rounds + 1} verification passes"

    def tensor(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=A.dtype, device=A.device)

    return Eigenpairs(eigenvalues=tensor(ritz.values), eigenvectors=ritz.vectors.contiguous(),
                      residuals=tensor(ritz.residuals), error_bounds=tensor(ritz.bounds), matvecs=A.matvecs,
                      converged=converged, which=which, tol=tol, criterion=criterion, scale=ritz.scale,
                      space=getattr(op, "space", None), reason=reason, method=method,
                      certify_matvecs=A.matvecs - solved, method_reason=method_reason,
                      block_cost_ratio=block_cost_ratio, basis=plan.reason)


@dataclass(frozen=True)
class _Ritz:
    """Wanted Ritz pairs in output order: values, vectors (columns), residual norms, the residual block's
    2-norm ``eps``, error bounds, whether the stopping rule was met, the scale, the stopping rule's shrink."""
    values: np.ndarray
    vectors: Tensor
    residuals: np.ndarray
    eps: float
    bounds: np.ndarray
    met: bool
    scale: float
    shrink: float = 1.0

    def with_bounds(self, bounds: np.ndarray) -> _Ritz:
        return replace(self, bounds=bounds)


@dataclass(frozen=True)
class _StoppingRule:
    """The stopping rule of :func:`eigs` (see its docstring), with the target ``shrink * tol * scale``."""
    which: str
    wanted: int
    tol: float
    criterion: str
    rounding: float          # sqrt(n) eps of the dtype: the floor added to every bound, times scale
    shrink: float = 1.0
    seen_top: float = -math.inf      # eigenvalues known to lie this far out in the rest of the spectrum
    seen_bottom: float = math.inf    # (a failed verification pass's extreme Ritz values)

    def sides(self) -> np.ndarray:
        """``+1`` (top end) or ``-1`` (bottom end) for each wanted value, in output order."""
        top = {"largest": self.wanted, "smallest": 0, "both": self.wanted - self.wanted // 2}[self.which]
        return np.concatenate([np.ones(top), -np.ones(self.wanted - top)])

    def check(self, theta: np.ndarray, r: np.ndarray, eps: float, scale: float) -> tuple[np.ndarray, np.ndarray, bool]:
        """For ascending Ritz values ``theta`` and residuals ``r``: the wanted indices (output order), their
        bounds with the unwanted Ritz values as the rest of the spectrum, and whether the rule is met."""
        sel = _select(theta.size, self.which, self.wanted)
        rest = np.setdiff1d(np.arange(theta.size), sel)
        wanted_values = theta[sel]
        mu_top = max((theta[rest] + r[rest]).max() if rest.size else wanted_values.min(), self.seen_top)
        mu_bottom = min((theta[rest] - r[rest]).min() if rest.size else wanted_values.max(), self.seen_bottom)
        bounds = gap_bounds(wanted_values, self.sides(), eps, mu_top, mu_bottom) + self.rounding * scale
        target = self.shrink * self.tol * scale
        met = bool(np.all(bounds <= target))
        if self.criterion == "residual":
            met = met and bool(np.all(r[sel] <= target))
        return sel, bounds, met


def _default_ncv(which: str, wanted: int, method: str, block_size: int) -> int:
    """The default ``ncv`` before the cap at ``n`` (see :func:`eigs`)."""
    ncv = max(5 * wanted, 20) if which == "largest" else max(2 * wanted + 1, 60)
    return max(ncv, 4 * block_size + wanted) if method == "block" else ncv


def _lanczos(A: Counted, stop: _StoppingRule, ncv: int, max_matvecs: int, v: Tensor, generator: torch.Generator,
             basis_dtype: torch.dtype | None, basis_device: torch.device | str | None) -> _Ritz:
    """Thick-restart Lanczos until ``stop`` is met, the space is exhausted or the budget spent."""
    run = ThickRestartLanczos(A, ncv, generator, basis_dtype, basis_device)
    lossy = 2 * run.layout.unit_roundoff     # eps_b when the basis is less precise than the operator, else 0
    if stop.criterion == "residual" and not stop.tol > lossy:
        raise ValueError(f"tol={stop.tol} is below the precision of a {run.layout.dtype} basis (eps {lossy:.3g}), "
                         "which bounds the residuals: use a larger tol, criterion='eigenvalue', or a more "
                         "precise basis_dtype")
    run.start(v)
    scale = 0.0
    while True:
        run.expand()
        if run.j < stop.wanted:
            continue
        theta, S, r = run.ritz()
        scale = max(scale, float(np.abs(theta).max()))
        if lossy:
            r = r + lossy * scale     # the rounding floor of the stored basis
        eps = float(np.sqrt(np.sum(r[_select(theta.size, stop.which, stop.wanted)] ** 2)))   # R = beta v s^T
        sel, bounds, met = stop.check(theta, r, eps, scale)
        if met or run.exhausted or A.matvecs >= max_matvecs:
            break
        if run.j == ncv:
            idx = _restart_set(theta.size, stop.which, stop.wanted, r <= stop.tol * scale)
            run.restart(theta[idx], S[:, idx])
    vectors = run.vectors(S[:, sel]).T
    if not lossy:
        return _Ritz(theta[sel], vectors, r[sel], eps, bounds, met, scale)
    # the recurrence no longer certifies the pairs: one more product of them does (Rayleigh-Ritz)
    values, vectors, residuals, eps = _rayleigh_ritz(A, vectors, stop)
    rest = np.setdiff1d(np.arange(theta.size), sel)
    theta_all, r_all = np.concatenate([values, theta[rest]]), np.concatenate([residuals, r[rest]])
    order = np.argsort(theta_all, kind="stable")
    _, bounds, again = stop.check(theta_all[order], r_all[order], eps, scale)
    return _Ritz(values, vectors, residuals, eps, bounds, met and again, scale)


def _block(A: Counted, stop: _StoppingRule, ncv: int, max_matvecs: int, X: Tensor, generator: torch.Generator,
           scale: float) -> _Ritz:
    """Block Lanczos (:class:`BlockKrylov`) from the columns of ``X`` until ``stop`` is met, the space is
    exhausted or the budget spent; blocks of ``X.shape[1]`` vectors."""
    b = X.shape[1]
    ncv = max(ncv, min(A.n, 3 * b + stop.wanted))
    space = BlockKrylov(A, ncv, generator)
    space.extend(X)
    while True:
        theta, S = space.ritz()
        Y, R = space.pairs(S, theta)
        if theta.size >= stop.wanted:
            scale = max(scale, float(np.abs(theta).max()))
            sel = torch.as_tensor(_select(theta.size, stop.which, stop.wanted).copy(), device=A.device)
            wanted_R = R[:, sel]
            # one host read per step: every residual norm, and the Gram matrix of the wanted ones' block
            host = torch.cat([torch.linalg.vector_norm(R, dim=0), (wanted_R.T @ wanted_R).flatten()])
            host = host.cpu().double().numpy()
            r_all, eps = host[: theta.size], gram_norm(host[theta.size:].reshape(stop.wanted, stop.wanted))
            sel, bounds, met = stop.check(theta, r_all, eps, scale)
            if met or space.exhausted or A.matvecs + b > max_matvecs:
                return _Ritz(theta[sel], Y[:, sel.copy()], r_all[sel], eps, bounds, met, scale, stop.shrink)
        near = _select(theta.size, stop.which, min(b, theta.size))
        grow = R[:, near.copy()]
        del Y, R
        if space.m + b > ncv:
            keep = _select(theta.size, stop.which, min(theta.size, stop.wanted + (space.m - stop.wanted) // 3))
            space.restart(S[:, keep], theta[keep])
        space.extend(grow)


def _rayleigh_ritz(A: Counted, Y: Tensor, stop: _StoppingRule) -> tuple[np.ndarray, Tensor, np.ndarray, float]:
    """Rayleigh-Ritz on the span of the columns of ``Y`` (orthonormalised), by one product of all of them:
    the Ritz values in output order, the vectors, their true residual norms and the residual block's norm."""
    Q, _ = torch.linalg.qr(Y)
    AQ = A.matmat(Q)
    G = (Q.T @ AQ).cpu().double().numpy()
    theta, S = np.linalg.eigh((G + G.T) / 2)
    order = _select(theta.size, stop.which, theta.size) if stop.which != "both" else np.arange(theta.size)[::-1]
    coefficients = torch.as_tensor(S[:, order], dtype=A.dtype, device=A.device)
    vectors = Q @ coefficients
    R = AQ @ coefficients - vectors * torch.as_tensor(theta[order], dtype=A.dtype, device=A.device)
    residuals = torch.linalg.vector_norm(R, dim=0).cpu().double().numpy()
    return theta[order], vectors, residuals, block_norm(R)


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


def _start_block(A: Counted, v0: Tensor | None, b: int, generator: torch.Generator) -> Tensor:
    """``b`` random Gaussian columns, or the columns of ``v0`` topped up with random ones to ``b``."""
    X = torch.randn(A.n, b, generator=generator, dtype=A.dtype, device=A.device)
    if v0 is None:
        return X
    V = v0.to(dtype=A.dtype, device=A.device)
    V = V[:, None] if V.ndim == 1 else V
    if V.ndim != 2 or V.shape[0] != A.n:
        raise ValueError(f"v0 must have shape ({A.n},) or ({A.n}, b), got {tuple(v0.shape)}")
    if not bool(torch.isfinite(V).all()) or not bool((torch.linalg.vector_norm(V, dim=0) > 0).all()):
        raise ValueError("v0 has a zero or non-finite column")
    return torch.cat([V, X[:, V.shape[1]:]], dim=1) if V.shape[1] < b else V
