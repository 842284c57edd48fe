"""Construction-time checks: is the operator one well-defined matrix?

An operator is a fixed matrix only if every pass over the data computes the same function. Three things
break that: modules that sample in train mode (dropout), a data loader that reorders or resamples its
batches, and BatchNorm with batch statistics (the matrix then depends on how samples are grouped into
batches). The first two are found by comparing two passes; the third is refused up front.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from landscape.foundation.devices import widest_float


class DeterminismError(RuntimeError):
    """Two passes over the data gave different losses or gradients."""


@dataclass(frozen=True)
class DataPass:
    """One pass over the data: the full-data loss and gradient, and per-batch fingerprints.

    ``sizes[i]`` is the number of samples in batch ``i``; ``batch_losses[i]`` its loss;
    ``fingerprints[i]`` a few sums of its inputs and targets (to tell a reordering loader from a
    stochastic model); ``normalisers[i]`` what its mean divides by (``d_b``; 1 for a sum-reduced loss);
    ``first_gradient`` the gradient of batch 0's loss alone. A replay for the determinism check evaluates
    only its first batches: ``batch_losses``, ``normalisers``, ``loss`` and ``gradient`` then cover those,
    ``sizes`` and ``fingerprints`` every batch.
    """
    loss: Tensor          # () full-data loss, sum_b (d_b / D) loss_b (mean) or sum_b loss_b (sum)
    gradient: Tensor      # (dim,) its gradient over the selected coordinates
    sizes: tuple[int, ...]
    batch_losses: Tensor  # (batches,)
    fingerprints: Tensor  # (batches, 3)
    normalisers: tuple[float, ...] = ()
    first_gradient: Tensor | None = None   # (dim,) the gradient of batch 0's loss


def fingerprint(x: Tensor, y: Tensor) -> Tensor:
    """``(sum x, sum x^2, sum y)`` in float64 (float32 on devices without it): equal for equal batches,
    different for reordered ones."""
    wide = widest_float(x.device)
    xd, yd = x.detach().to(wide), y.detach().to(wide)
    return torch.stack([xd.sum(), (xd * xd).sum(), yd.sum()])


def batch_statistics_modules(model: nn.Module) -> list[str]:
    """Names of BatchNorm modules that normalise with batch statistics (train mode, or no running stats)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and (m.training or m.running_mean is None)]


def stochastic_modules(model: nn.Module) -> list[str]:
    """Names of dropout modules that are active (train mode, ``p > 0``)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, _DropoutNd) and m.training and m.p > 0]


def refuse_batch_statistics(model: nn.Module) -> None:
    """Raise if a BatchNorm module would use batch statistics, naming it and the two ways out."""
    names = batch_statistics_modules(model)
    if names:
        raise ValueError(
            f"BatchNorm modules {names} normalise with batch statistics (train mode or "
            "track_running_stats=False): the curvature would then depend on how the samples are grouped "
            "into batches, not only on the parameters. Call model.eval() to use the running statistics, "
            "or pass allow_batch_statistics=True to measure the batch-statistics loss as it is batched.")


def compare_passes(first: DataPass, second: DataPass, model: nn.Module, rtol: float) -> None:
    """Raise :class:`DeterminismError` with the cause and the fix if two passes differ beyond ``rtol``: their
    batch sizes and fingerprints over all batches, the losses of the batches ``second`` evaluated (a replay may
    evaluate only the first) and the gradients of batch 0. Dropout changes every batch's loss and gradient,
    so one batch finds it; a reordering loader changes the fingerprints."""
    if first.sizes != second.sizes or not torch.equal(first.fingerprints, second.fingerprints):
        raise DeterminismError(
            "the data changed between two passes (different batches, order or sizes): a shuffling "
            "DataLoader or a random sampler? Curvature operators pass over the data many times and need "
            "the same batches each time: use shuffle=False (or a fixed list of batches).")
    evaluated = first.batch_losses[:len(second.batch_losses)]
    loss_gap = (evaluated - second.batch_losses).abs().max()
    grad_gap = torch.linalg.vector_norm(first.first_gradient - second.first_gradient)
    scale_loss = evaluated.abs().max().clamp_min(torch.finfo(first.loss.dtype).tiny)
    scale_grad = torch.linalg.vector_norm(first.first_gradient).clamp_min(torch.finfo(first.loss.dtype).tiny)
    if loss_gap <= rtol * scale_loss and grad_gap <= rtol * scale_grad:
        return
    culprits = stochastic_modules(model)
    cause = (f"dropout modules {culprits} are active (train mode)" if culprits else
             "the model's forward is random (a module that samples in train mode?)")
    raise DeterminismError(
        f"two passes over the same data gave different results (loss differs by {float(loss_gap):.3g}, "
        f"gradient by {float(grad_gap):.3g}): {cause}. Call model.eval() before building the operator, "
        "or pass check_determinism=False if the randomness is intended.")


def first_nonfinite(values: Iterable[tuple[str, Tensor]]) -> str | None:
    """The name of the first tensor with a NaN or infinite entry, or None."""
    for name, t in values:
        if not bool(torch.isfinite(t).all()):
            return name
    return None
