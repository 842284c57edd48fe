"""Escape dimensions: the directions of negative curvature at a critical point, and the experiment that
shows why they matter for over-parameterisation.

At a critical point (zero gradient) the loss along ``theta + s v`` for a unit eigenvector ``v`` of the
Hessian with eigenvalue ``lambda < 0`` falls as ``L + s^2 lambda / 2``: gradient descent started near the
point leaves it along such directions, at a rate ``(1 + lr |lambda|)`` per step. Martinelli, Brea & Gerstner
("The Puzzling Success of Overparameterization: Lottery Tickets or Escape Dimensions?") call them escape
dimensions: embedding a narrow network's minimum into a wider network by splitting a neuron
(:func:`~landscape.instruments.widening.widen`, function-preserving) puts it on a line of critical points
(Fukumizu & Amari 2000) whose points are often strict saddles (Simsek et al. 2021, "Geometry of the loss
landscape in overparameterized neural networks: symmetries and invariances"), so the wider network can
descend below the narrow network's minimum. :func:`escape_experiment` measures exactly that.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.foundation.state import preserved_rng
from landscape.instruments.widening import widen
from landscape.linalg import Eigenpairs, SymmetricOperator, eigs
from landscape.operators import Hessian
from landscape.operators.functional import LossFn
from landscape.operators.reduction import batch_weights, loss_reduction

ESCAPE_MARGIN = 1e-2   # escaped: the final loss is below the narrow minimum's by more than this fraction of it


@dataclass(frozen=True)
class EscapeDimensions:
    """Eigenpairs of the Hessian with eigenvalue below ``-threshold``, ``threshold = tol * scale``.

    Attributes:
        eigenvalues: ``(m,)`` ascending (most negative first), in loss per parameter^2.
        eigenvectors: ``(n, m)`` orthonormal flat directions, in the same order.
        directions: the eigenvectors as parameter dictionaries ``{name: tensor shaped like the parameter}``
            (``op.space.to_dict``), or ``()`` when the operator has no parameter space.
        residuals: ``(m,)`` ``||H v - lambda v||``; ``error_bounds``: estimates of ``|lambda_true - lambda|``
            (see :class:`landscape.linalg.Eigenpairs`).
        tol, threshold, scale: the relative tolerance, the absolute one, and the ``|lambda|_max`` estimate.
        complete: fewer than the ``k`` eigenpairs computed were below the threshold and the solve
            converged, so these are all the escape dimensions; otherwise there may be more (ask for larger k).
        matvecs: products used. converged: the eigen solves met their tolerance.
    """
    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    error_bounds: Tensor
    tol: float
    threshold: float
    scale: float
    complete: bool
    matvecs: int
    converged: bool
    directions: tuple[dict[str, Tensor], ...] = field(default=(), repr=False, compare=False)

    @property
    def count(self) -> int:
        """Number of escape dimensions found."""
        return int(self.eigenvalues.numel())


def escape_dimensions(op: SymmetricOperator, tol: float = 1e-3, k: int = 10, *, eig_tol: float | None = None,
                      top: Eigenpairs | None = None, bottom: Eigenpairs | None = None,
                      max_matvecs: int | None = None, seed: int = 0) -> EscapeDimensions:
    """The directions of negative curvature below ``-tol * |lambda|_max``, from the ``k`` most negative
    eigenpairs (:func:`landscape.linalg.eigs`, ``which="smallest"``) and the largest one (for the scale).

    Args:
        op: symmetric operator, e.g. :class:`landscape.Hessian`.
        tol: threshold relative to ``|lambda|_max``. k: smallest eigenpairs computed.
        eig_tol: residual tolerance of the solves relative to ``|lambda|_max`` (default ``tol / 10``).
        top, bottom: eigenpairs already computed (``"largest"``, ``"smallest"``); not counted again.
        max_matvecs: budget of each solve. seed: seeds their random starts.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    eig_tol = tol / 10 if eig_tol is None else eig_tol
    matvecs = 0
    if top is None:
        top = eigs(op, k=1, which="largest", tol=eig_tol, max_matvecs=max_matvecs, seed=seed)
        matvecs += top.matvecs
    if bottom is None:
        bottom = eigs(op, k=k, which="smallest", tol=eig_tol, max_matvecs=max_matvecs, seed=seed + 1)
        matvecs += bottom.matvecs
    scale = max(abs(float(top.eigenvalues[0])), abs(float(bottom.eigenvalues[0])))
    threshold = tol * scale
    keep = bottom.eigenvalues < -threshold
    vectors = bottom.eigenvectors[:, keep]
    space = getattr(op, "space", None)
    directions = tuple(space.to_dict(vectors[:, i]) for i in range(vectors.shape[1])) if space is not None else ()
    return EscapeDimensions(eigenvalues=bottom.eigenvalues[keep], eigenvectors=vectors,
                            residuals=bottom.residuals[keep], error_bounds=bottom.error_bounds[keep], tol=tol,
                            threshold=threshold, scale=scale,
                            complete=bottom.converged and int(keep.sum()) < bottom.eigenvalues.numel(),
                            matvecs=matvecs, converged=top.converged and bottom.converged, directions=directions)


@dataclass(frozen=True)
class Minimum:
    """A network polished to a critical point: the (copied) model, its loss and gradient norm."""
    model: nn.Module
    loss: float
    gradient_norm: float
    iterations: int


def minimize(model: nn.Module, loss_fn: LossFn, data: Any, *, max_iter: int = 2000, gradient_tol: float = 1e-10,
             dtype: torch.dtype | None = torch.float64) -> Minimum:
    """Full-batch L-BFGS (strong Wolfe line search) from a copy of ``model`` to a critical point of the loss
    over ``data`` (mean- or sum-reduced as ``loss_fn`` reduces a batch), stopping when the gradient's largest
    entry is below ``gradient_tol``.

    Returns a :class:`Minimum` holding the copy (in ``dtype``, default float64; ``None`` keeps the model's),
    in eval mode. The argument and the global random state are left untouched.
    """
    polished = copy.deepcopy(model).eval()
    if dtype is not None:
        polished = polished.to(dtype)
    params = [p for p in polished.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=gradient_tol,
                                  tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        return _full_loss(polished, loss_fn, data, backward=True)

    with preserved_rng():
        optimizer.step(closure)
        loss = float(closure())
    iterations = int(optimizer.state[params[0]].get("n_iter", 0))
    grad = torch.cat([p.grad.reshape(-1) for p in params])
    for p in params:
        p.grad = None
    return Minimum(model=polished, loss=loss, gradient_norm=float(grad.norm()), iterations=iterations)


@dataclass(frozen=True)
class EscapeExperiment:
    """Widening a narrow minimum opens escape dimensions, and gradient descent leaves along them.

    Attributes:
        narrow_loss, narrow_gradient_norm: at the narrow network's (polished) critical point.
        narrow: its escape dimensions (normally none: a minimum).
        wide_loss, wide_gradient_norm: at the widened network, the same function (equal loss up to rounding).
        wide: its escape dimensions.
        opened: ``wide.count - narrow.count``, the negative-curvature directions widening opened.
        losses: mean loss along the perturbed gradient descent of the wide network, ``steps + 1`` values
            starting at the perturbed point.
        control_losses: the same run from the narrow minimum, perturbed as far in a random direction.
        escaped: the wide run ended below the narrow minimum's loss by more than ``ESCAPE_MARGIN`` of it.
        lr, radius, steps: of the descent. extra, ratio: of the widening. matvecs: Hessian products used.
    """
    narrow_loss: float
    narrow_gradient_norm: float
    narrow: EscapeDimensions
    wide_loss: float
    wide_gradient_norm: float
    wide: EscapeDimensions
    opened: int
    losses: Tensor
    control_losses: Tensor
    escaped: bool
    lr: float
    radius: float
    steps: int
    extra: int | Mapping[int, int]
    ratio: float
    matvecs: int


def escape_experiment(narrow: nn.Module, loss_fn: LossFn, data: Any, *, extra: int | Mapping[int, int] = 1,
                      ratio: float = 0.5, neurons: Mapping[int, list[int]] | None = None, tol: float = 1e-3,
                      k: int = 10, radius: float = 1e-2, steps: int = 2000, lr: float | None = None,
                      polish: bool = True, seed: int = 0) -> EscapeExperiment:
    """Count the escape dimensions that widening a narrow minimum opens and verify that the loss escapes.

    1. Polish ``narrow`` to a critical point (:func:`minimize`, float64) unless ``polish=False``.
    2. Escape dimensions of the narrow network and of ``widen(narrow, extra, ratio=ratio, neurons=neurons,
       seed=seed)`` (float64 Hessians over ``data``, threshold ``tol * |lambda|_max`` each).
    3. Perturbed gradient descent (Jin et al. 2017, "How to escape saddle points efficiently"): full-batch
       gradient descent for ``steps`` steps with learning rate ``lr`` (default ``1 / lambda_max`` of the wide
       network) from the wide point moved a distance ``radius`` along a random unit combination of its
       escape directions (a random direction if it has none), and, as a control, from the narrow minimum
       moved ``radius`` in a random direction.

    Args:
        narrow: an MLP (see :func:`widen`) trained to, or near, a minimum; it is not modified.
        loss_fn, data: the loss (mean- or sum-reduced, as for :class:`~landscape.operators.Hessian`) and the
            data (one batch or an iterable of batches).
        extra, ratio, neurons: passed to :func:`widen`. tol, k: as for :func:`escape_dimensions`.
        radius: length of the perturbation (parameter units). steps, lr: of the descent.
        polish: run :func:`minimize` first. seed: seeds the neuron draw and the perturbations.
    """
    if polish:
        start = minimize(narrow, loss_fn, data)
        narrow64, narrow_loss, narrow_grad = start.model, start.loss, start.gradient_norm
    else:
        narrow64 = copy.deepcopy(narrow).eval().to(torch.float64)
        narrow_loss, narrow_grad = _loss_and_gradient_norm(narrow64, loss_fn, data)
    wide64 = widen(narrow64, extra, ratio=ratio, neurons=neurons, seed=seed)
    wide_loss, wide_grad = _loss_and_gradient_norm(wide64, loss_fn, data)
    H_narrow = Hessian(narrow64, loss_fn, data, dtype=torch.float64, method="reverse")
    H_wide = Hessian(wide64, loss_fn, data, dtype=torch.float64, method="reverse")
    narrow_dims = escape_dimensions(H_narrow, tol, min(k, H_narrow.shape[0] - 1), seed=seed)
    wide_dims = escape_dimensions(H_wide, tol, min(k, H_wide.shape[0] - 1), seed=seed)
    lr = 1.0 / wide_dims.scale if lr is None else lr
    generator = torch.Generator().manual_seed(seed)
    if wide_dims.count:
        coefficients = torch.randn(wide_dims.count, generator=generator, dtype=torch.float64)   # seeded on the CPU
        direction = wide_dims.eigenvectors @ coefficients.to(wide_dims.eigenvectors.device)
    else:
        direction = torch.randn(H_wide.shape[0], generator=generator, dtype=torch.float64)
    losses = _descend(wide64, H_wide.space, loss_fn, data, radius * direction / direction.norm(), lr, steps)
    control = torch.randn(H_narrow.shape[0], generator=generator, dtype=torch.float64)
    control_losses = _descend(narrow64, H_narrow.space, loss_fn, data, radius * control / control.norm(), lr,
                              steps)
    return EscapeExperiment(
        narrow_loss=narrow_loss, narrow_gradient_norm=narrow_grad, narrow=narrow_dims, wide_loss=wide_loss,
        wide_gradient_norm=wide_grad, wide=wide_dims, opened=wide_dims.count - narrow_dims.count, losses=losses,
        control_losses=control_losses, escaped=bool(losses[-1] < (1 - ESCAPE_MARGIN) * narrow_loss), lr=lr,
        radius=radius, steps=steps, extra=extra, ratio=ratio,
        matvecs=H_narrow.matvecs + H_wide.matvecs)


def _full_loss(model: nn.Module, loss_fn: LossFn, data: Any, backward: bool) -> Tensor:
    """The loss over all batches, reduced as ``loss_fn`` reduces one (the full-data mean or sum, the
    Hessian's loss: :mod:`landscape.operators.reduction`), accumulating gradients if ``backward``."""
    batches = as_batches(data)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    weights = batch_weights(loss_fn, (y for _, y in batches), loss_reduction(loss_fn))
    loss = torch.zeros((), dtype=dtype, device=device)
    for batch, weight in zip(batches, weights):
        x, y = to_device(batch, device, dtype)
        part = loss_fn(model(x), y) * weight
        if backward:
            part.backward()
        loss = loss + part.detach()
    return loss


def _loss_and_gradient_norm(model: nn.Module, loss_fn: LossFn, data: Any) -> tuple[float, float]:
    model.zero_grad(set_to_none=True)
    loss = float(_full_loss(model, loss_fn, data, backward=True))
    norm = math.sqrt(float(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)))
    model.zero_grad(set_to_none=True)
    return loss, norm


def _descend(model: nn.Module, space: Any, loss_fn: LossFn, data: Any, perturbation: Tensor, lr: float,
             steps: int) -> Tensor:
    """Full-batch gradient descent on a copy of ``model`` moved by the flat ``perturbation``: the losses."""
    walker = copy.deepcopy(model)
    params = space.parameters(walker)
    with torch.no_grad():
        for name, delta in space.to_dict(perturbation).items():
            params[name].add_(delta.to(params[name]))
    losses = []   # on the device, read once at the end
    for _ in range(steps):
        walker.zero_grad(set_to_none=True)
        losses.append(_full_loss(walker, loss_fn, data, backward=True))
        with torch.no_grad():
            for p in params.values():
                p.sub_(lr * p.grad)
    with torch.no_grad():
        losses.append(_full_loss(walker, loss_fn, data, backward=False))
    return torch.stack(losses).to(device="cpu", dtype=torch.float64)
