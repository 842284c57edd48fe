"""Loss-surface slices: loss and accuracy on a line or a plane through a model's parameters.

A slice evaluates f(α, β) = L(θ + α d₁ + β d₂) (or L(θ + α d₁) in 1-D) on a grid, for directions d in
parameter space:

* :func:`filter_directions`: Gaussian directions with filter normalisation (Li et al. 2018, "Visualizing
  the Loss Landscape of Neural Nets"): each filter d_i (a slice along the output dimension of a weight)
  is rescaled to ‖θ_i‖, so α = 1 moves every filter by its own norm and slices of networks with
  different weight scales are comparable. α is in units of the filter norms.
* :func:`eigen_directions`: the top Hessian eigenvectors (unit vectors; α in parameter-space distance).
* :func:`line_direction`: θ_B − θ_A, so α = 0 is A and α = 1 is B.
* :func:`pca_directions`: the first two principal components of the differences θ_t − θ of a
  trajectory of checkpoints θ_1 … θ_T (Li et al. 2018, §7), with the trajectory's coordinates in that plane.

Only parameters move; BatchNorm running statistics are either kept from θ (as Li et al. do) or
recomputed at every grid point (``batchnorm="reset"``, see
:func:`landscape.connectivity.interpolation.reset_batchnorm`).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from landscape.connectivity.interpolation import Endpoint, load_run_checkpoint, reset_batchnorm, save_npz, state_of
from landscape.foundation.devices import widest_float
from landscape.foundation.params import ParamSpace
from landscape.foundation.state import preserved_rng, untouched
from landscape.training.evaluation import LossFn, evaluate

Direction = dict[str, Tensor]


@dataclass(frozen=True)
class Directions:
    """One or two directions ``{parameter name: tensor}`` (absent names do not move), axis labels with
    units, and, for PCA, the (T, len(vectors)) coordinates of the trajectory they were computed from."""
    vectors: tuple[Direction, ...]
    labels: tuple[str, ...]
    kind: str
    trajectory: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.vectors) not in (1, 2) or len(self.labels) != len(self.vectors):
            raise ValueError(f"need one or two directions with a label each, got {len(self.vectors)} "
                             f"and {len(self.labels)} labels")


@torch.no_grad()
def filter_directions(model: nn.Module, count: int = 2, *, seed: int = 0,
                      bias_bn: Literal["zero", "filter"] = "zero",
                      masks: Mapping[str, Tensor] | None = None) -> Directions:
    """``count`` random Gaussian directions with filter normalisation (Li et al. 2018).

    For a weight θ of two or more dimensions, each filter i (``θ[i]``: a row of a linear layer, an output
    channel's kernel) gets d_i ← g_i ‖θ_i‖ / ‖g_i‖ with g ~ N(0, I). Parameters of one dimension (biases,
    BatchNorm and LayerNorm scales and shifts) are zeroed with ``bias_bn="zero"`` (Li et al.'s
    ``--xignore biasbn``), or, with ``"filter"``, treated as one filter per
    entry: d_j = sign(g_j) |θ_j| (Li et al.'s code copies θ, i.e. takes every sign positive). Pruned
    coordinates (``masks`` 0) are zero. Drawn from ``seed`` on the model's device, in float64 where the
    device has it (float32 on MPS), without touching the global RNG and without copies to the host: the
    same directions for the same seed on the same kind of device (a GPU's generator draws other numbers
    than the CPU's).
    """
    if bias_bn not in ("zero", "filter"):
        raise ValueError(f"bias_bn must be 'zero' or 'filter', got {bias_bn!r}")
    masks = masks or {}
    space = ParamSpace(model)
    params = space.parameters(model)
    device = next(iter(params.values())).device
    wide = widest_float(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    vectors = []
    for _ in range(count):
        d = {}
        for name, p in params.items():
            g = torch.randn(p.shape, generator=gen, dtype=wide, device=device)
            w = p.detach().to(device=device, dtype=wide)
            if name in masks:
                g = g * masks[name].to(device=device, dtype=wide)
            if p.ndim <= 1:
                g = torch.zeros_like(g) if bias_bn == "zero" else torch.sign(g) * w.abs()
            else:
                g_norm = g.reshape(g.shape[0], -1).norm(dim=1)
                scale = w.reshape(w.shape[0], -1).norm(dim=1) / torch.where(g_norm > 0, g_norm, 1.0)
                g = g * scale.reshape(-1, *([1] * (g.ndim - 1)))
            d[name] = g.to(device=p.device, dtype=p.dtype)
        vectors.append(d)
    labels = ("α (filter-normalised)", "β (filter-normalised)")[:count]
    return Directions(vectors=tuple(vectors), labels=labels, kind="filter")


def eigen_directions(model: nn.Module, loss_fn: LossFn, data: Any, count: int = 2, *,
                     masks: Mapping[str, Tensor] | None = None) -> Directions:
    """The ``count`` eigenvectors of the Hessian of the loss on ``data`` with the largest eigenvalues
    (unit vectors, so α is a Euclidean distance in parameter space), zero on pruned coordinates.

    The Hessian is that of the model in eval mode, the function the slices evaluate (BatchNorm with its
    running statistics); the model's modes, gradients and the RNG states are restored.
    """
    from landscape.linalg import eigs
    from landscape.operators import Hessian

    with untouched(model, training=False):
        op = Hessian(model, loss_fn, data, masks=masks)
        top = eigs(op, k=count, which="largest")
    vectors = tuple(op.space.to_dict(top.eigenvectors[:, i]) for i in range(count))
    labels = tuple(f"{s} along v{i + 1} (λ{i + 1} = {float(top.eigenvalues[i]):.3g}), ‖Δθ‖"
                   for i, s in enumerate("αβ"[:count]))
    return Directions(vectors=vectors, labels=labels, kind="eigen")


def line_direction(model: nn.Module, other: Endpoint) -> Directions:
    """θ_B − θ_A over the parameters, from ``model`` (A, the slice's origin) to ``other`` (B)."""
    space = ParamSpace(model)
    target = state_of(other)
    d = {n: target[n].to(device=p.device, dtype=p.dtype) - p.detach()
         for n, p in space.parameters(model).items()}
    return Directions(vectors=(d,), labels=("α (0 = A, 1 = B)",), kind="line")


@torch.no_grad()
def pca_directions(model: nn.Module, trajectory: Sequence[Endpoint]) -> Directions:
    """The first two principal components of a trajectory θ_1 … θ_T around ``model`` θ (Li et al. 2018).

    The rows θ_t − θ are centred and decomposed by SVD; the two leading right singular vectors are the
    (unit, orthogonal) directions, and each checkpoint's coordinates are (θ_t − θ) · d (uncentred, so θ is
    the origin of the plane). The sign of each component puts the first checkpoint at a negative
    coordinate, so training runs left to right and bottom to top. Labels give each component's share of
    the variance.
    """
    if len(trajectory) < 3:
        raise ValueError(f"a PCA plane needs at least 3 checkpoints, got {len(trajectory)}")
    space = ParamSpace(model)
    origin = space.values(model)
    origin = origin.to(dtype=widest_float(origin.device))   # float64 where the device has it
    rows = []
    for t in trajectory:
        state = state_of(t)
        rows.append(space.to_flat({n: state[n].to(origin.device, origin.dtype) for n in space.names}) - origin)
    diffs = torch.stack(rows)
    _, s, vt = torch.linalg.svd(diffs - diffs.mean(dim=0), full_matrices=False)
    basis = vt[:2]
    coords = diffs @ basis.T
    flip = torch.where(coords[0] > 0, -1.0, 1.0).to(origin.dtype)
    basis, coords = basis * flip[:, None], coords * flip
    ratio = (s[:2] ** 2 / (s ** 2).sum()).tolist()
    p = next(model.parameters())
    vectors = tuple({n: t.to(p.dtype) for n, t in space.to_dict(basis[i]).items()} for i in range(2))
    labels = tuple(f"PC{i + 1} ({100 * r:.1f}% of variance), ‖Δθ‖" for i, r in enumerate(ratio))
    return Directions(vectors=vectors, labels=labels, kind="pca", trajectory=coords.cpu().numpy())


@dataclass(frozen=True)
class LossSurface:
    """Loss and accuracy on a 1-D or 2-D grid around a model.

    Attributes:
        alphas: (P,) coordinates along the first direction.
        betas: (Q,) coordinates along the second, or ``None`` for a 1-D slice.
        loss: (P,) or (P, Q) mean loss, ``loss[i, j]`` at (``alphas[i]``, ``betas[j]``).
        accuracy: same shape, or ``None`` when the targets are not class labels.
        labels: axis labels (with units) of the directions.
        kind: how the directions were made (``"filter"``, ``"eigen"``, ``"line"``, ``"pca"``).
        batchnorm: ``"keep"`` or ``"reset"`` (see :func:`loss_surface`).
        trajectory: (T, 2) coordinates of the trajectory in the plane (PCA), else ``None``.
    """
    alphas: np.ndarray
    betas: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None
    labels: tuple[str, ...]
    kind: str
    batchnorm: str
    trajectory: np.ndarray | None = None

    @property
    def ndim(self) -> int:
        return 1 if self.betas is None else 2

    @property
    def error(self) -> np.ndarray | None:
        """Classification error, 1 − accuracy."""
        return None if self.accuracy is None else 1.0 - self.accuracy

    @property
    def minimum(self) -> tuple[tuple[float, ...], float]:
        """Grid coordinates of the lowest (finite) loss, and that loss."""
        idx = np.unravel_index(int(np.nanargmin(self.loss)), self.loss.shape)
        axes = (self.alphas,) if self.betas is None else (self.alphas, self.betas)
        return tuple(float(a[i]) for a, i in zip(axes, idx)), float(self.loss[idx])

    def save(self, path: str | os.PathLike) -> None:
        """Write the arrays to ``path`` (``.npz``, atomically) so a figure can be redrawn from them."""
        arrays = {"alphas": self.alphas, "loss": self.loss, "labels": np.array(self.labels),
                  "kind": np.array(self.kind), "batchnorm": np.array(self.batchnorm)}
        optional = {"betas": self.betas, "accuracy": self.accuracy, "trajectory": self.trajectory}
        arrays.update({k: v for k, v in optional.items() if v is not None})
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LossSurface:
        with np.load(path) as z:
            get = lambda k: z[k] if k in z else None  # noqa: E731
            return cls(alphas=z["alphas"], betas=get("betas"), loss=z["loss"], accuracy=get("accuracy"),
                       labels=tuple(str(s) for s in z["labels"]), kind=str(z["kind"]),
                       batchnorm=str(z["batchnorm"]), trajectory=get("trajectory"))


@torch.no_grad()
def loss_surface(model: nn.Module, loss_fn: LossFn, data: Any, directions: Directions,
                 alphas: Sequence[float] | np.ndarray | None = None,
                 betas: Sequence[float] | np.ndarray | None = None, *,
                 points: int = 21, span: float = 1.0,
                 batchnorm: Literal["reset", "keep"] = "reset", bn_data: Any = None,
                 progress: bool = True) -> LossSurface:
    """Loss and accuracy of θ + α d₁ (+ β d₂) on ``data`` over a grid, on a copy of ``model``.

    Args:
        alphas, betas: grid coordinates; default ``points`` values evenly spaced in [−span, span]
            (an odd ``points`` puts the model itself at the centre).
        batchnorm: ``"reset"`` (default) recomputes BatchNorm running statistics at every point from
            ``bn_data`` (default ``data``), for the reason given in
            :func:`landscape.connectivity.interpolation.interpolate`: the stored statistics are those of θ, not of the
            perturbed network. ``"keep"`` uses θ's statistics everywhere, as Li et al. (2018) do. Models without
            BatchNorm are unaffected.
        progress: a tqdm progress bar over grid points.

    Points where the loss is not finite are NaN. Cost: one forward pass over ``data`` per grid point (plus
    one over ``bn_data`` with ``"reset"``). The user's model, its modes, gradients and the RNG states are
    left as they were.
    """
    if batchnorm not in ("reset", "keep"):
        raise ValueError(f"batchnorm must be 'reset' or 'keep', got {batchnorm!r}")
    default = np.linspace(-span, span, points)
    a = default if alphas is None else np.asarray(alphas, dtype=float)
    b = None
    if len(directions.vectors) == 2:
        b = default if betas is None else np.asarray(betas, dtype=float)
    shape = (a.size,) if b is None else (a.size, b.size)
    work = copy.deepcopy(model)
    named = dict(work.named_parameters())
    unknown = [n for d in directions.vectors for n in d if n not in named]
    if unknown:
        raise KeyError(f"directions name parameters the model does not have: {sorted(set(unknown))}")
    base = {n: named[n].detach().clone() for d in directions.vectors for n in d}
    bn_data = data if bn_data is None else bn_data
    loss, correct = np.empty(shape), np.empty(shape)
    labelled = True
    with preserved_rng(), tqdm(total=int(np.prod(shape)), desc=f"{directions.kind} surface", unit="pt",
                               disable=not progress) as bar:
        for idx in np.ndindex(*shape):
            coeffs = [float(a[idx[0]])] + ([] if b is None else [float(b[idx[1]])])
            for n, start in base.items():
                point = start.clone()
                for c, d in zip(coeffs, directions.vectors):
                    if n in d:
                        point.add_(d[n], alpha=c)
                named[n].copy_(point)
            if batchnorm == "reset":
                reset_batchnorm(work, bn_data)
            try:
                ev = evaluate(work, loss_fn, data)
            except FloatingPointError:  # far from θ the loss can overflow: a hole in the surface
                loss[idx], correct[idx] = np.nan, np.nan
            else:
                loss[idx] = ev.loss
                labelled = labelled and ev.accuracy is not None
                correct[idx] = ev.accuracy if labelled else np.nan
            bar.update()
    return LossSurface(alphas=a, betas=b, loss=loss, accuracy=correct if labelled else None,
                       labels=directions.labels, kind=directions.kind, batchnorm=batchnorm,
                       trajectory=directions.trajectory)


def surface_for(model: nn.Module, loss_fn: LossFn, data: Any,
                directions: Literal["filter", "eigen", "pca"] = "filter", *,
                trajectory: Sequence[Endpoint] | None = None, dims: int = 2, points: int = 21,
                span: float | None = None, seed: int = 0, bias_bn: Literal["zero", "filter"] = "zero",
                batchnorm: Literal["reset", "keep"] = "reset", bn_data: Any = None,
                masks: Mapping[str, Tensor] | None = None, progress: bool = True) -> LossSurface:
    """A slice around ``model`` along directions of the named kind: what ``landscape surface`` computes.

    ``"filter"``: :func:`filter_directions` (``seed``, ``bias_bn``, ``masks``), grid [−1, 1] by default;
    ``"eigen"``: :func:`eigen_directions` of the Hessian on ``data``, grid [−1, 1] by default;
    ``"pca"``: :func:`pca_directions` of ``trajectory`` (always 2-D), with a grid covering the
    trajectory and the model plus a 25% margin unless ``span`` is given. ``dims`` is 1 or 2.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    if directions == "filter":
        dirs = filter_directions(model, dims, seed=seed, bias_bn=bias_bn, masks=masks)
    elif directions == "eigen":
        dirs = eigen_directions(model, loss_fn, data, dims, masks=masks)
    elif directions == "pca":
        if trajectory is None:
            raise ValueError("directions='pca' needs the trajectory (a sequence of checkpoints)")
        dirs = pca_directions(model, trajectory)
    else:
        raise ValueError(f"directions must be 'filter', 'eigen' or 'pca', got {directions!r}")
    axes: list[np.ndarray | None] = [None, None]
    if directions == "pca" and span is None:
        for k in range(2):
            lo, hi = min(dirs.trajectory[:, k].min(), 0.0), max(dirs.trajectory[:, k].max(), 0.0)
            margin = 0.25 * (hi - lo)
            axes[k] = np.linspace(lo - margin, hi + margin, points)
    return loss_surface(model, loss_fn, data, dirs, axes[0], axes[1], points=points,
                        span=1.0 if span is None else span, batchnorm=batchnorm, bn_data=bn_data,
                        progress=progress)


def surface_from_checkpoint(checkpoint: str | os.PathLike,
                            directions: Literal["filter", "eigen", "pca"] = "filter", *,
                            dims: int = 2, points: int = 21, span: float | None = None, seed: int = 0,
                            bias_bn: Literal["zero", "filter"] = "zero",
                            batchnorm: Literal["reset", "keep"] = "reset", progress: bool = True) -> LossSurface:
    """``landscape surface CKPT``: :func:`surface_for` around a run's checkpoint (a run directory or a
    checkpoint file, see :func:`landscape.connectivity.interpolation.load_run_checkpoint`) on the run's training split,
    within its pruning masks; ``"pca"`` takes the run's checkpoints up to this one as the trajectory."""
    run = load_run_checkpoint(checkpoint)
    trajectory = run.trajectory() if directions == "pca" else None
    return surface_for(run.model, run.loss_fn, run.data["train"], directions, trajectory=trajectory, dims=dims,
                       points=points, span=span, seed=seed, bias_bn=bias_bn, batchnorm=batchnorm,
                       masks=run.masks, progress=progress)
