"""Spectral density by stochastic Lanczos quadrature (SLQ), with errors across runs."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.lanczos import lanczos_tridiagonal
from landscape.linalg.operator import Counted, SymmetricOperator
from landscape.linalg.uncertainty import format_estimate, reliability, total_error


@dataclass(frozen=True)
class Estimate:
    """A mean over independent SLQ runs with its errors (:mod:`landscape.linalg.uncertainty`).

    Attributes:
        value: the mean over runs.
        error: the total error, the ``±`` to read: ``t stderr + quadrature_error``, the half-width of an
            interval meant to hold the exact value with probability at least
            :data:`~landscape.linalg.uncertainty.COVERAGE` (95%), ``t`` the Student-t quantile for
            ``runs - 1`` degrees of freedom; for a fraction at most ``max(value, 1 - value)``.
        stderr: the sampling part alone: sample standard deviation over runs divided by ``sqrt(runs)``.
        quadrature_error: a deterministic bound on the Gauss quadrature's own error (counting, see
            :meth:`SpectralDensity.negative_fraction`); ``None`` where none is known (smooth spectral sums,
            whose quadrature is exact for polynomials of degree below ``2 steps`` and not bounded otherwise).
        reliable: ``error <= 0.5 |value|`` (or below the quantity's resolution); when ``False``, do not read
            ``value`` as a number. reason: why not (empty when reliable).
        runs: the independent runs averaged.
    """
    value: float
    error: float
    stderr: float
    quadrature_error: float | None
    reliable: bool
    reason: str
    runs: int

    @classmethod
    def of(cls, value: float, stderr: float, runs: int, quadrature_error: float | None = None,
           resolution: float = 0.0, within: tuple[float, float] | None = None) -> Estimate:
        """The estimate with its total error and reliability from its parts; ``within``: the range the exact
        value is known to lie in (see :func:`~landscape.linalg.uncertainty.total_error`)."""
        error = total_error(stderr, runs, quadrature_error, value, within)
        reliable, reason = reliability(value, error, runs, quadrature_error, resolution,
                                       remedy="more Lanczos steps, deflation (saddle_index) or a threshold "
                                              "outside the bulk of eigenvalues resolve it")
        return cls(value=value, error=error, stderr=stderr, quadrature_error=quadrature_error, reliable=reliable,
                   reason=reason, runs=runs)

    def __str__(self) -> str:
        """``"value ± error"``, or with ``" (unreliable: reason)"`` appended."""
        return format_estimate(self.value, self.error, self.reliable, self.reason)


@dataclass(frozen=True)
class SpectralDensity:
    """Gauss quadrature rules of ``runs`` Lanczos runs for the spectral measure of an ``n x n`` operator.

    Run ``r`` started from ``v_r = z_r / sqrt(n)`` (``z_r`` Rademacher) gives nodes ``theta_{r,k}`` (Ritz
    values) and weights ``w_{r,k}`` (squared first components of the Ritz vectors, summing to 1) with
    ``v_r^T f(A) v_r ~ sum_k w_{r,k} f(theta_{r,k})``, exact for polynomials of degree ``< 2 steps``. The
    density is ``phi(t) = (1/runs) sum_{r,k} w_{r,k} delta(t - theta_{r,k})`` (Ubaru, Chen & Saad 2017;
    Ghorbani, Krishnan & Xiao 2019). A run that met an invariant subspace early has fewer nodes: its
    remaining entries have weight 0 (and repeat a node).

    Attributes:
        nodes, weights: ``(runs, steps)`` float64 tensors on the CPU.
        dim: ``n``. matvecs: products used.
        couplings: ``(runs, steps)``: ``c_{r,k} = beta_r s_{r,k}``, with ``beta_r`` the norm of run ``r``'s
            next Lanczos residual and ``s_{r,k}`` the last component of Ritz vector ``k`` signed so that its
            first is positive (``|c_{r,k}|`` is that Ritz pair's residual norm ``||A y - theta y||``; 0 after a
            breakdown). They give the count its sharp quadrature bound (see :meth:`negative_fraction`);
            ``None`` for a density rebuilt from nodes and weights alone (analysis.json, tracker records),
            whose counts fall back to the wider Chebyshev-Markov-Stieltjes bound.

    Each :class:`Estimate` carries its total ``error``: the sampling error across runs (the probe noise,
    ``stderr``, itself estimated from ``runs`` samples, so rough when a few outliers dominate a sum, e.g.
    ``tr A^2``) and, for counting (a jump in ``f``), the quadrature's own error, bounded by the weight of
    the nodes next to the jump (``quadrature_error``, see :meth:`negative_fraction`); inside a dense bulk
    the latter dominates and the estimate is marked unreliable.
    """
    nodes: Tensor
    weights: Tensor
    dim: int
    matvecs: int
    couplings: Tensor | None = None

    def pdf(self, grid: Tensor, sigma: float) -> Tensor:
        """The density smoothed by a Gaussian of standard deviation ``sigma`` (in eigenvalue units):

            ``phi_sigma(t) = (1/runs) sum_{r,k} w_{r,k} exp(-(t - theta_{r,k})^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``,

        which integrates to 1 over ``t``. ``grid``: the points ``t`` (any shape), returned density alike.
        """
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        t = torch.as_tensor(grid, dtype=torch.float64).cpu()
        z = (t.reshape(-1, 1) - self.nodes.reshape(1, -1)) / sigma
        kernel = torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
        return (kernel @ self.weights.reshape(-1) / self.nodes.shape[0]).reshape(t.shape)

    def negative_fraction(self, tol: float = 0.0) -> Estimate:
        """Fraction of eigenvalues below ``-tol`` (``tol`` in eigenvalue units, e.g. ``1e-3 * |lambda|_max``):
        the mean over runs of ``S_r = sum_k w_{r,k} [theta_{r,k} < -tol]``.

        ``quadrature_error`` bounds the quadrature's own error, ``mean_r q_r`` with ``q_r`` a bound on
        ``|S_r - mu_r|``, ``mu_r = v_r^T 1[A < -tol] v_r`` run ``r``'s own spectral measure of ``(-inf, -tol)``;
        ``mean_r mu_r`` is the unbiased Hutchinson-type estimate whose sampling error ``stderr`` describes.
        ``q_r`` is the smaller of two bounds:

        * Chebyshev-Markov-Stieltjes (Szego, "Orthogonal Polynomials", section 3.41): ``mu_r`` lies in
          ``[S_r - w_below, S_r + w_above]``, the weights of the nodes next to ``-tol`` on either side, so
          ``q_r = max(w_below, w_above)``;
        * Markov-Krein (Karlin & Studden, "Tchebycheff Systems", chapter III; with ``couplings``): the
          ``steps + 1``-point Gauss-Radau rule with a node at ``t = -tol`` (the arrowhead
          ``[[diag(theta), c], [c^T, t + sum_k c_k^2 / (theta_k - t)]]``, Golub & Meurant, "Matrices, Moments
          and Quadrature", section 6.2) matches the moments of ``mu_r`` up to degree ``2 steps``, and every
          measure with those moments has mass in ``(-inf, t)`` within ``[L_r, L_r + rho_r]``, ``L_r`` its weight
          below ``t`` and ``rho_r`` its weight at ``t`` (the Christoffel function, the most mass those moments
          allow at ``t``); so ``q_r = max(|S_r - L_r|, |L_r + rho_r - S_r|)``, zero when the run resolved
          ``t`` (a gap around it, or a breakdown).

        The bound is large when ``-tol`` falls in a dense bulk of eigenvalues, which more ``steps`` or
        deflation resolve; the estimate is then marked unreliable. Resolution: ``1/n``.

        ``stderr`` is the larger of the sample standard error and a bound on the exact one: ``mu_r = z_r^T P z_r
        / n``, ``P`` the spectral projector of rank ``k = p n``, has Rademacher variance ``2 (||P||_F^2 -
        sum_i P_ii^2) / n^2 <= 2 p (1 - p) / n`` (``||P||_F^2 = k``, ``sum_i P_ii^2 >= k^2 / n``), evaluated
        at the ``p`` in ``value ± quadrature_error`` nearest 1/2. A few runs that all miss a small spectral mass
        give a sample standard deviation near 0; this floor keeps the ``±`` from shrinking with them.
        """
        below = self.nodes < -tol                       # a prefix of each run's ascending nodes
        count = below.sum(dim=1, keepdim=True)
        steps = self.nodes.shape[1]
        edge = self.nodes.gather(1, (count - 1).clamp(min=0))   # padding repeats the largest node
        w_below = torch.where(count > 0, (self.weights * (self.nodes == edge)).sum(dim=1, keepdim=True), 0.0)
        w_above = torch.where(count < steps, self.weights.gather(1, count.clamp(max=steps - 1)), 0.0)
        bound = torch.maximum(w_below, w_above).reshape(-1).numpy()
        per_run = (self.weights * below).sum(dim=1)
        if self.couplings is not None:
            bound = np.minimum(bound, [_markov_krein(theta, w, c, -tol, s) for theta, w, c, s in zip(
                self.nodes.numpy(), self.weights.numpy(), self.couplings.numpy(), per_run.numpy())])
        quadrature = float(bound.mean())
        value = float(per_run.mean())
        nearest_half = min(max(0.5, value - quadrature), value + quadrature)
        floor = math.sqrt(2 * nearest_half * (1 - nearest_half) / self.dim / per_run.numel())
        return self._across_runs(per_run, quadrature_error=quadrature, resolution=1 / self.dim, stderr_floor=floor,
                                 within=(0.0, 1.0))

    def spectral_sum(self, f: Callable[[Tensor], Tensor]) -> Estimate:
        """``tr f(A) ~ n (1/runs) sum_r sum_k w_{r,k} f(theta_{r,k})``; ``f`` maps a float64 tensor elementwise
        (e.g. ``torch.abs``, ``lambda x: x**2``)."""
        return self._across_runs(self.dim * (self.weights * f(self.nodes)).sum(dim=1))

    def _across_runs(self, per_run: Tensor, quadrature_error: float | None = None, resolution: float = 0.0,
                     stderr_floor: float = 0.0, within: tuple[float, float] | None = None) -> Estimate:
        runs = per_run.numel()
        stderr = max(float(per_run.std(correction=1)) / math.sqrt(runs), stderr_floor)
        return Estimate.of(float(per_run.mean()), stderr, runs, quadrature_error, resolution, within)


def _markov_krein(theta: np.ndarray, w: np.ndarray, c: np.ndarray, t: float, estimate: float) -> float:
    """``max(|estimate - L|, |L + rho - estimate|)``: the farthest the measure of ``(-inf, t)`` of one run can lie
    from ``estimate`` given its moments up to degree ``2 steps`` (see :meth:`SpectralDensity.negative_fraction`);
    ``inf`` when ``t`` is a node (the Radau rule is not defined there; the other bound applies)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        corner = t + np.sum(np.where(c == 0, 0.0, c**2 / (theta - t)))
    if not np.isfinite(corner):
        return math.inf
    m = theta.size
    arrow = np.zeros((m + 1, m + 1))
    arrow[np.arange(m), np.arange(m)] = theta
    arrow[:m, m] = arrow[m, :m] = c
    arrow[m, m] = corner
    values, vectors = np.linalg.eigh(arrow)
    mass = (np.sqrt(w) @ vectors[:m]) ** 2
    at = int(np.argmin(np.abs(values - t)))
    low = float(mass[values < t].sum() - (mass[at] if values[at] < t else 0.0))
    return max(abs(estimate - low), abs(low + float(mass[at]) - estimate))


def density(op: SymmetricOperator, steps: int = 90, runs: int = 10, seed: int = 0,
            block: int | None = None, basis_dtype: torch.dtype | None = None,
            basis_device: torch.device | str | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature: ``runs`` Lanczos runs of ``steps`` steps from Rademacher vectors.

    The runs go through the operator together, one ``matmat`` of ``block`` vectors per step (default all
    ``runs``), each fully reorthogonalised against its own basis so no spurious (ghost) nodes appear.
    Tridiagonal eigenproblems by ``scipy.linalg.eigh_tridiagonal``.

    Args:
        op: symmetric operator. steps: Lanczos steps per run (at most ``n``). runs: independent runs, at
            least 2 so that errors exist. seed: seeds a ``torch.Generator`` on the operator's device.
        block: runs per ``matmat``; lower it to save memory.
        basis_dtype, basis_device: where the Lanczos bases are stored (default: the operator's dtype and
            device), e.g. ``torch.bfloat16`` or ``"cpu"`` (see :mod:`landscape.linalg.basis`). A less precise
            basis perturbs nodes and weights by about its machine epsilon relative to ``||A||``, far below
            the error across runs.

    Cost: ``steps * runs`` matvecs at most (fewer if a run meets an invariant subspace). Memory:
    ``steps n block`` elements of ``basis_dtype`` on ``basis_device`` for the bases, about ``3 n block``
    of the operator's dtype for one step's vectors, ``n runs`` for the start vectors, ``2 runs steps`` host
    floats. One host transfer of ``2 block`` numbers per step.

    Distributed operators: run the same call on every rank (see :func:`landscape.linalg.eigs`); every rank
    gets the same nodes and weights.
    """
    A = Counted(op)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if runs < 2:
        raise ValueError(f"runs must be at least 2 for a standard error across runs, got {runs}")
    block = runs if block is None else block
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    steps = min(steps, A.n)
    Z = A.rademacher(runs, A.generator(seed))
    nodes = np.zeros((runs, steps))
    weights = np.zeros((runs, steps))
    couplings = np.zeros((runs, steps))
    for start in range(0, runs, block):
        tri = lanczos_tridiagonal(A, Z[:, start:start + block], steps, basis_dtype, basis_device)
        for i in range(tri.lengths.size):
            theta, S = tri.ritz(i)
            nodes[start + i] = theta[-1]
            nodes[start + i, : theta.size] = theta
            weights[start + i, : theta.size] = S[0] ** 2
            couplings[start + i, : theta.size] = tri.beta[i, theta.size - 1] * S[-1] * np.where(S[0] < 0, -1.0, 1.0)
    return SpectralDensity(nodes=torch.from_numpy(nodes), weights=torch.from_numpy(weights), dim=A.n,
                           matvecs=A.matvecs, couplings=torch.from_numpy(couplings))
