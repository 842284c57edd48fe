"""Linear mode connectivity: loss and error along the straight line between two networks.

The path between endpoints A and B (two models, state dicts or checkpoint files of the same architecture) is

    θ(α) = θ_A + α (θ_B − θ_A),        α ∈ [0, 1] between them, α < 0 or α > 1 extrapolates,

computed with :func:`torch.lerp`, so that θ(0) = θ_A and θ(1) = θ_B exactly and θ(α) = θ_A at every α
when θ_A = θ_B. With pruning masks ``m``, θ(α) ← m ⊙ θ(α): two subnetworks with the same mask stay in
its subspace.

Two barrier heights are in use (both in the units of the curve: nats for a cross-entropy loss, a
fraction for the error), each taken over the evaluated α in [0, 1] with the α where it peaks:

* Frankle et al. (2020), "Linear Mode Connectivity and the Lottery Ticket Hypothesis": the
  *instability* max_α E(α) − ½ (E(0) + E(1)), on the test error;
* Entezari et al. (2022), "The Role of Permutation Invariance in Linear Mode Connectivity":
  max_α [L(α) − ((1 − α) L(0) + α L(1))], the largest gap above the straight line between the endpoints.

BatchNorm running statistics are not parameters; see :func:`interpolate` for how they are handled.
"""
from __future__ import annotations

import copy
import io
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from landscape.data.batches import as_batches, chunked, to_device
from landscape.foundation.progress import Progress
from landscape.foundation.runs import Run, atomic_write_bytes, load_checkpoint, load_model_state
from landscape.foundation.state import model_mode, preserved_rng
from landscape.training.evaluation import LossFn, evaluate

Endpoint = Union[nn.Module, Mapping[str, Tensor], str, os.PathLike]
Definition = Literal["frankle", "entezari"]
Quantity = Literal["loss", "error"]
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")
EVAL_BATCH = 1024  # samples per forward pass when evaluating a run's data splits


@dataclass(frozen=True)
class Barrier:
    """A barrier height along a path, where it peaks, and what it is measured from.

    ``height`` is the curve at ``alpha`` minus ``baseline``: the mean of the endpoint values for
    ``definition="frankle"``, the straight line between them at ``alpha`` for ``"entezari"``.
    """
    height: float
    alpha: float
    baseline: float
    definition: Definition


def barrier(alphas: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
            definition: Definition = "frankle") -> Barrier:
    """Barrier height of ``values`` sampled at ``alphas`` (which must include 0 and 1).

    ``"frankle"``: max over α in [0, 1] of v(α) − ½ (v(0) + v(1)) (Frankle et al. 2020).
    ``"entezari"``: max over α in [0, 1] of v(α) − (v(0) + α (v(1) − v(0))) (Entezari et al. 2022).
    Points outside [0, 1] (extrapolation) are not on the path and are ignored. Ties peak at the
    smallest α.
    """
    a = np.asarray(alphas, dtype=float)
    v = np.asarray(values, dtype=float)
    if a.shape != v.shape or a.ndim != 1:
        raise ValueError(f"alphas and values must be 1-D of the same length, got {a.shape} and {v.shape}")
    ends = [np.flatnonzero(a == e) for e in (0.0, 1.0)]
    if any(idx.size == 0 for idx in ends):
        raise ValueError("a barrier needs the endpoint values: alphas must include 0 and 1")
    v0, v1 = float(v[ends[0][0]]), float(v[ends[1][0]])
    inside = (a >= 0.0) & (a <= 1.0)
    a, v = a[inside], v[inside]
    if definition == "frankle":
        base = np.full_like(v, 0.5 * (v0 + v1))
    elif definition == "entezari":
        base = v0 + a * (v1 - v0)
    else:
        raise ValueError(f"definition must be 'frankle' or 'entezari', got {definition!r}")
    i = int(np.argmax(v - base))
    return Barrier(height=float(v[i] - base[i]), alpha=float(a[i]), baseline=float(base[i]),
                   definition=definition)


@dataclass(frozen=True)
class InterpolationResult:
    """Loss and error along θ(α) on one data set.

    Attributes:
        alphas: (P,) interpolation coefficients, sorted, always including 0 and 1.
        loss: (P,) mean loss at each α (the loss function's units, e.g. nats).
        error: (P,) classification error 1 − accuracy (a fraction), or ``None`` for non-class targets.
        name: the data set's name (its key when several were given).
        state: what was interpolated (``"full"`` or ``"parameters"``).
        batchnorm: how BatchNorm statistics were set (``"reset"`` or ``"interpolate"``).
    """
    alphas: np.ndarray
    loss: np.ndarray
    error: np.ndarray | None
    name: str = "data"
    state: str = "full"
    batchnorm: str = "reset"

    @property
    def is_classification(self) -> bool:
        return self.error is not None

    def barrier_of(self, quantity: Quantity = "error", definition: Definition = "frankle") -> Barrier:
        """The barrier of the ``"loss"`` or ``"error"`` curve by either definition (see :func:`barrier`)."""
        if quantity == "error":
            if self.error is None:
                raise ValueError("no error curve: the targets are not class labels")
            return barrier(self.alphas, self.error, definition)
        if quantity == "loss":
            return barrier(self.alphas, self.loss, definition)
        raise ValueError(f"quantity must be 'loss' or 'error', got {quantity!r}")

    @property
    def barrier(self) -> float:
        """The error barrier of Frankle et al. (instability) for classification, else the loss barrier."""
        return self.barrier_of("error" if self.is_classification else "loss", "frankle").height

    def save(self, path: str | os.PathLike) -> None:
        """Write the arrays to ``path`` (``.npz``, atomically) so figures can be redrawn without recomputing."""
        arrays = {"alphas": self.alphas, "loss": self.loss, "name": np.array(self.name),
                  "state": np.array(self.state), "batchnorm": np.array(self.batchnorm)}
        if self.error is not None:
            arrays["error"] = self.error
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> InterpolationResult:
        with np.load(path) as z:
            return cls(alphas=z["alphas"], loss=z["loss"], error=z["error"] if "error" in z else None,
                       name=str(z["name"]), state=str(z["state"]), batchnorm=str(z["batchnorm"]))


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` written atomically (:func:`landscape.foundation.runs.atomic_write_bytes`): readers never see half a
    file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def state_of(endpoint: Endpoint) -> dict[str, Tensor]:
    """The state dict of a model (detached tensors, not copies), a state dict itself, or the state dict in a
    checkpoint file (read safely by :func:`landscape.foundation.runs.load_checkpoint`)."""
    if isinstance(endpoint, nn.Module):
        return endpoint.state_dict()
    if isinstance(endpoint, Mapping):
        return dict(endpoint)
    if isinstance(endpoint, (str, os.PathLike)):
        return load_checkpoint(endpoint).model
    raise TypeError(f"an endpoint is an nn.Module, a state dict or a checkpoint file, got {type(endpoint).__name__}")


def interpolated_state(state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor], alpha: float, *,
                       keys: Collection[str] | None = None,
                       masks: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """θ_A + α (θ_B − θ_A) for the floating-point entries named in ``keys`` (all of them by default); every
    other entry is taken from ``state_a``; then each entry with a mask is multiplied by it. New tensors:
    the inputs are not modified."""
    if state_a.keys() != state_b.keys():
        raise KeyError(f"the endpoints have different entries: only in A {sorted(state_a.keys() - state_b.keys())}, "
                       f"only in B {sorted(state_b.keys() - state_a.keys())}")
    out = {}
    for k, a in state_a.items():
        b = state_b[k]
        if a.shape != b.shape:
            raise ValueError(f"entry {k!r} has shape {tuple(a.shape)} in A and {tuple(b.shape)} in B")
        if a.is_floating_point() and (keys is None or k in keys):
            out[k] = torch.lerp(a, b.to(device=a.device, dtype=a.dtype), alpha)
        else:
            out[k] = a
    for k, m in (masks or {}).items():
        if k not in out:
            raise KeyError(f"mask for {k!r}, which is not in the state")
        out[k] = out[k] * m.to(device=out[k].device, dtype=out[k].dtype)
    return out


@torch.no_grad()
def reset_batchnorm(model: nn.Module, data: Any) -> nn.Module:
    """Recompute every BatchNorm layer's running statistics of ``model`` (in place) from ``data``.

    Statistics are reset, then averaged cumulatively (``momentum=None``) over one pass with only the
    BatchNorm layers in training mode (dropout and the like stay in eval mode), as
    ``torch.optim.swa_utils.update_bn``, Garipov et al. (2018) and REPAIR (Jordan et al. 2023) do:
    ``running_mean`` is the mean of the per-batch means (the data mean when batches have equal size)
    and ``running_var`` the mean of the per-batch unbiased variances (the data's unbiased variance when
    ``data`` is one batch). Momenta and train/eval modes are restored. Returns ``model``.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        return model
    momenta = [m.momentum for m in layers]
    p = next(model.parameters())
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
        with model_mode(model, False):
            for m in layers:
                m.train()
            for batch in as_batches(data):
                x, _ = to_device(batch, p.device, p.dtype)
                model(x)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
    return model


def interpolate(model_a: Endpoint, model_b: Endpoint, loss_fn: LossFn, data: Any, points: int = 31, *,
                alphas: Sequence[float] | np.ndarray | None = None,
                state: Literal["full", "parameters"] = "full",
                batchnorm: Literal["reset", "interpolate"] = "reset",
                bn_data: Any = None,
                masks: Mapping[str, Tensor] | None = None,
                model: nn.Module | None = None,
                progress: bool = False) -> InterpolationResult | dict[str, InterpolationResult]:
    """Loss and error of θ(α) = θ_A + α (θ_B − θ_A) (see the module docstring) on ``data``.

    Args:
        model_a, model_b: the endpoints, as models, state dicts or checkpoint files of one architecture.
            Neither is modified (the path is evaluated on a copy), nor are their modes, gradients or the
            RNG states.
        loss_fn: mean-reduced ``loss_fn(outputs, targets)``.
        data: one data argument (a batch or an iterable of batches), or ``{name: data}`` to evaluate several
            (e.g. ``{"train": ..., "test": ...}``) at the same models.
        points: number of equally spaced α in [0, 1], endpoints included (ignored when ``alphas`` is given).
        alphas: custom coefficients; values outside [0, 1] extrapolate. 0 and 1 are always added, since
            the barriers are measured from the endpoint values.
        state: ``"full"`` interpolates every floating-point entry of the state (parameters and buffers);
            ``"parameters"`` only the parameters, with the other buffers taken from A (e.g. fixed
            buffers, or ``torch.nn.utils.prune`` masks that must not be blended). Integer buffers are
            always taken from A. BatchNorm statistics follow ``batchnorm`` in both cases.
        batchnorm: ``"reset"`` (default) recomputes the running statistics at every α from ``bn_data``
            by cumulative averaging (:func:`reset_batchnorm`), as Garipov et al. (2018, "Loss Surfaces,
            Mode Connectivity, and Fast Ensembling of DNNs") and Jordan et al. (2023, "REPAIR") do;
            ``"interpolate"`` blends the endpoints' statistics. Reset is the default because the
            activations of the interpolated network do not have the interpolated statistics (their
            variance shrinks along the path: "variance collapse", Jordan et al.), so ``"interpolate"``
            evaluates a network normalised with the wrong scales and inflates the barrier.
            The price is one extra forward pass over ``bn_data`` per α, and endpoint values that are
            those of A and B with recomputed statistics (they equal A's and B's own values when those
            were computed the same way). Models without BatchNorm are unaffected.
        bn_data: the data for ``"reset"``: training data. Defaults to ``data`` when it is one data set, to
            ``data["train"]`` when it is a dict with that key, and is required otherwise.
        masks: ``{parameter name: 0/1 tensor}`` applied to θ(α) at every α.
        model: the architecture (copied, never modified) when neither endpoint is a model; defaults to
            the first endpoint that is a model.
        progress: show a progress bar over α.

    Returns:
        An :class:`InterpolationResult`, or ``{name: InterpolationResult}`` when ``data`` is a dict.
        Cost: one forward pass over each data set per α, plus one over ``bn_data`` with ``"reset"``.
    """
    if state not in ("full", "parameters"):
        raise ValueError(f"state must be 'full' or 'parameters', got {state!r}")
    if batchnorm not in ("reset", "interpolate"):
        raise ValueError(f"batchnorm must be 'reset' or 'interpolate', got {batchnorm!r}")
    template = model if model is not None else next(
        (m for m in (model_a, model_b) if isinstance(m, nn.Module)), None)
    if template is None:
        raise TypeError("neither endpoint is a model: pass model= (the architecture) to evaluate them")
    work = copy.deepcopy(template)
    state_a, state_b = state_of(model_a), state_of(model_b)
    expected = work.state_dict().keys()
    if state_a.keys() != expected:
        raise KeyError(f"endpoint A does not fit the architecture: missing {sorted(expected - state_a.keys())}, "
                       f"unexpected {sorted(state_a.keys() - expected)}")
    grid = alpha_grid(points, alphas)
    sets = dict(data) if isinstance(data, Mapping) else {"data": data}
    reset = batchnorm == "reset" and _has_batchnorm(work)
    if reset and bn_data is None:
        if len(sets) == 1:
            bn_data = next(iter(sets.values()))
        elif "train" in sets:
            bn_data = sets["train"]
        else:
            raise ValueError("batchnorm='reset' needs training data: pass bn_data=, or name a data set 'train'")
    keys = None if state == "full" else _parameter_and_bn_keys(work, with_bn=batchnorm == "interpolate")

    loss = {name: np.empty(grid.size) for name in sets}
    error: dict[str, np.ndarray | None] = {name: np.empty(grid.size) for name in sets}
    with preserved_rng(), Progress("interpolate", grid.size, unit="α", enabled=progress) as bar:
        for i, alpha in enumerate(grid):
            work.load_state_dict(interpolated_state(state_a, state_b, float(alpha), keys=keys, masks=masks))
            if reset:
                reset_batchnorm(work, bn_data)
            for name, d in sets.items():
                ev = evaluate(work, loss_fn, d)
                loss[name][i] = ev.loss
                if ev.error is None:
                    error[name] = None
                elif error[name] is not None:
                    error[name][i] = ev.error
            bar.update(1)
    results = {name: InterpolationResult(alphas=grid, loss=loss[name], error=error[name], name=name,
                                         state=state, batchnorm=batchnorm) for name in sets}
    return results if isinstance(data, Mapping) else results["data"]


def alpha_grid(points: int, alphas: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """``points`` equally spaced values in [0, 1], or the sorted distinct ``alphas``, with 0 and 1 added."""
    if alphas is None:
        if points < 2:
            raise ValueError(f"points must be at least 2 (the endpoints), got {points}")
        return np.linspace(0.0, 1.0, points)
    grid = np.asarray(alphas, dtype=float).reshape(-1)
    if not np.all(np.isfinite(grid)):
        raise ValueError("alphas must be finite")
    return np.union1d(grid, [0.0, 1.0])


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in model.modules())


def _parameter_and_bn_keys(model: nn.Module, with_bn: bool) -> set[str]:
    """State-dict keys of the parameters, and of the BatchNorm running statistics if ``with_bn``."""
    keys = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    if with_bn:
        keys |= {f"{prefix}.{s}" if prefix else s for prefix, m in model.named_modules()
                 if isinstance(m, _BatchNorm) and m.track_running_stats for s in BN_STATS}
    return keys


@dataclass(frozen=True)
class RunCheckpoint:
    """A training run's model at one checkpoint, with what evaluating it needs.

    Attributes:
        model: the architecture of the run's configuration holding the checkpoint's state, in eval mode.
        data: ``{"train": batches, "test": batches}`` of the run's data set, in chunks of ``EVAL_BATCH``.
        loss_fn: the data set's loss (cross-entropy for classes, MSE for regression).
        masks: the run's pruning masks (``masks.safetensors``), or ``None`` for a dense run.
        run_dir: the run directory; step: the checkpoint's step.
    """
    model: nn.Module
    data: dict[str, list[tuple[Tensor, Tensor]]]
    loss_fn: LossFn
    masks: dict[str, Tensor] | None
    run_dir: Path
    step: int

    def trajectory(self) -> list[dict[str, Tensor]]:
        """The state dicts of the run's checkpoints up to and including this one, in order of step."""
        run = Run(self.run_dir)
        return [run.load_checkpoint(s).model for s in run.checkpoint_steps() if s <= self.step]


def load_run_checkpoint(path: str | os.PathLike) -> RunCheckpoint:
    """Read a run directory (its latest checkpoint) or a checkpoint file ``<run>/checkpoints/step_N.safetensors``
    with the run's model, data and masks, as the trainer (:mod:`landscape.training`) wrote them."""
    from landscape.data.registry import load_dataset  # run-level wiring: imported here, not by the instrument
    from landscape.training import Hparams, init_model

    path = Path(path)
    if path.is_dir():
        run_dir, step = path, Run(path).latest_step()
        if step is None:
            raise FileNotFoundError(f"run {path} has no checkpoints")
        checkpoint = Run(path).load_checkpoint(step)
    else:
        checkpoint, run_dir = load_checkpoint(path), path.parent.parent
        if checkpoint.step is None or not (run_dir / "config.json").is_file():
            raise ValueError(f"{path} is not a checkpoint inside a run directory "
                             f"(<run>/checkpoints/step_N.safetensors)")
        step = checkpoint.step
    hparams = Hparams.from_run(run_dir)
    dataset = load_dataset(hparams.data, **hparams.data_kwargs)
    model = init_model(hparams, dataset)
    load_model_state(model, checkpoint.model, source=str(path))
    masks_file = run_dir / "masks.safetensors"
    masks = {k: v.bool() for k, v in load_checkpoint(masks_file).model.items()} if masks_file.is_file() else None
    data = {"train": chunked(*dataset.train, EVAL_BATCH), "test": chunked(*dataset.test, EVAL_BATCH)}
    return RunCheckpoint(model=model.eval(), data=data, loss_fn=dataset.loss_fn(), masks=masks, run_dir=run_dir,
                         step=step)


def interpolate_checkpoints(a: str | os.PathLike, b: str | os.PathLike, points: int = 31, *,
                            alphas: Sequence[float] | np.ndarray | None = None,
                            state: Literal["full", "parameters"] = "full",
                            batchnorm: Literal["reset", "interpolate"] = "reset",
                            progress: bool = True) -> dict[str, InterpolationResult]:
    """``landscape interpolate A B``: the path between two runs' checkpoints (run directories or checkpoint
    files, see :func:`load_run_checkpoint`) on the train and test splits of A's data set, BatchNorm reset on
    the train split; the runs' masks are applied when both runs have the same ones."""
    ra, rb = load_run_checkpoint(a), load_run_checkpoint(b)
    same_masks = (ra.masks is not None and rb.masks is not None and ra.masks.keys() == rb.masks.keys()
                  and all(torch.equal(ra.masks[k], rb.masks[k]) for k in ra.masks))
    return interpolate(ra.model, rb.model, ra.loss_fn, ra.data, points, alphas=alphas, state=state,
                       batchnorm=batchnorm, masks=ra.masks if same_masks else None, progress=progress)
