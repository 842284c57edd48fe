"""How the loss reduces a batch, and so how much each batch weighs in the full-data matrix.

A curvature operator measures the loss over all ``N`` samples reduced the way ``loss_fn`` reduces one
batch. With per-sample losses ``l_i`` (per-element losses for element-wise losses):

* ``"mean"``: ``loss_fn`` on batch ``b`` is ``(1/d_b) sum_{i in b} l_i``, ``d_b`` its normaliser (the number
  of samples, of elements for element-wise losses, of non-ignored targets or their class weights for
  cross-entropy). The full-data loss is ``L = (1/D) sum_i l_i`` with ``D = sum_b d_b``, so
  ``M = sum_b (d_b / D) M_b``: exactly the matrix of the full-data mean, whatever the batch sizes.
* ``"sum"``: ``loss_fn`` on batch ``b`` is ``sum_{i in b} l_i``; ``L = sum_i l_i`` and ``M = sum_b M_b``.
  The loss must be additive over samples (a term added once per batch, such as a weight penalty, would be
  counted once per batch).

Where the reduction comes from: a loss module with a ``reduction`` attribute (``nn.CrossEntropyLoss``,
``nn.MSELoss``, every ``torch.nn`` loss) says it; ``"none"`` is refused (the operators need one scalar
per batch). A ``torch.nn.functional`` loss (``F.cross_entropy``, ...) reduces by its default, the mean.
Any other callable is assumed mean-reduced over its batch's samples (``d_b = n_b``) unless the operator's
``reduction=`` argument says ``"sum"``; a callable that visibly does the other (its loss on a batch equals
the sum, not the mean, of its losses on the batch's two halves) is refused by :func:`check_declared`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Reduction = Literal["mean", "sum"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum")

# losses whose "mean" divides by the number of target elements
ELEMENTWISE_MODULES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss,
                       nn.SoftMarginLoss, nn.PoissonNLLLoss)
ELEMENTWISE_FUNCTIONS = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
                         F.binary_cross_entropy_with_logits, F.soft_margin_loss)
INDEX_FUNCTIONS = (F.cross_entropy, F.nll_loss)   # class-index targets, ignore_index -100, no class weights


class ReductionError(ValueError):
    """The loss's reduction is not one an operator can turn into the exact full-data matrix."""


def loss_reduction(loss_fn: Callable[[Tensor, Tensor], Tensor], reduction: str | None = None) -> Reduction:
    """The reduction of ``loss_fn``: read from a loss module, a functional loss's default (``"mean"``), or
    ``reduction`` for any other callable (``None``: ``"mean"``). Raises :class:`ReductionError` for
    ``"none"``, an unknown value, or a ``reduction`` that contradicts the loss's own; ``TypeError`` for a loss
    class instead of an instance, or anything not callable."""
    if isinstance(loss_fn, type):
        raise TypeError(f"loss_fn is the class {loss_fn.__name__}, not a loss: pass an instance, e.g. "
                        f"{loss_fn.__name__}()")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable loss_fn(outputs, targets) -> scalar, got {type(loss_fn).__name__}")
    if reduction is not None and reduction not in REDUCTIONS:
        raise ReductionError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    own = own_reduction(loss_fn)
    if own is None:
        return reduction or "mean"
    if own == "none":
        raise ReductionError(f"{_name(loss_fn)} has reduction='none' (one loss per sample): curvature operators "
                             "need one scalar loss per batch; build it with reduction='mean' or reduction='sum'")
    resolved = "mean" if own == "batchmean" else own
    if resolved not in REDUCTIONS:
        raise ReductionError(f"{_name(loss_fn)} has reduction={own!r}; supported: 'mean', 'sum' (and "
                             "KLDivLoss's 'batchmean')")
    if reduction is not None and reduction != resolved:
        raise ReductionError(f"reduction={reduction!r} contradicts the loss: {_name(loss_fn)} reduces by "
                             f"{own!r}; drop the reduction= argument or build the loss with "
                             f"reduction={reduction!r}")
    return resolved


def mean_normaliser(loss_fn: Callable[[Tensor, Tensor], Tensor], targets: Tensor) -> float:
    """``d_b``: what a mean-reduced ``loss_fn`` divides batch ``targets``' summed losses by."""
    return float(batch_normaliser(loss_fn, targets))


def batch_normaliser(loss_fn: Callable[[Tensor, Tensor], Tensor], targets: Tensor) -> Tensor | float:
    """:func:`mean_normaliser` without a host synchronisation: a 0-d tensor on the targets' device for the
    class-index targets of cross-entropy or negative log-likelihood, a float otherwise. A loss that divides by
    something else says so with a ``normaliser(targets)`` attribute (e.g. the next-token loss of
    :mod:`landscape.models.language`, over the predicted tokens whose label is kept)."""
    own = getattr(loss_fn, "normaliser", None)
    if callable(own):
        return own(targets)
    weight, ignore = class_weights(loss_fn), ignore_index(loss_fn)
    if ignore is not None and not targets.is_floating_point():   # class indices
        kept = targets != ignore
        if weight is None:
            return kept.sum()
        return (weight.to(targets.device)[targets.where(kept, 0)] * kept).sum()
    if ignore is not None:   # class probabilities: the mean is over samples and extra dimensions
        return float(targets.numel() // targets.shape[1]) if targets.ndim > 1 else 1.0
    if isinstance(loss_fn, ELEMENTWISE_MODULES) or loss_fn in ELEMENTWISE_FUNCTIONS:
        return float(targets.numel())
    return float(targets.shape[0])


def batch_weights(loss_fn: Callable[[Tensor, Tensor], Tensor], targets: Iterable[Tensor],
                  reduction: Reduction) -> list[float]:
    """Each batch's weight in the full-data loss ``L = sum_b w_b loss_fn(batch b)``, from the batches'
    ``targets``: ``w_b = d_b / D`` for a mean-reduced loss, ``1`` for a sum-reduced one."""
    if reduction == "sum":
        return [1.0 for _ in targets]
    normalisers = [mean_normaliser(loss_fn, y) for y in targets]
    return [d / sum(normalisers) for d in normalisers]


def class_weights(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor | None:
    """The class weights of a cross-entropy or negative log-likelihood module (``None`` for any other loss)."""
    return loss_fn.weight if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)) else None


def ignore_index(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> int | None:
    """The ignored class index of a cross-entropy or negative log-likelihood loss (``None`` for others)."""
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
        return loss_fn.ignore_index
    return -100 if loss_fn in INDEX_FUNCTIONS else None


def refuse_weighted_mean(loss_fn: Callable[[Tensor, Tensor], Tensor], reduction: Reduction) -> None:
    """Per-sample quantities (Fisher, per-sample gradients) need a mean over samples: refuse a mean-reduced
    loss with class weights, which divides by the summed weights of the targets instead."""
    if reduction == "mean" and class_weights(loss_fn) is not None:
        raise ReductionError("the Fisher of a mean-reduced loss needs a mean over samples; CrossEntropyLoss with "
                             "class weights divides by the summed weights of the targets instead: build it with "
                             "reduction='sum' (the Fisher is then the sum of per-sample outer products)")


def refuse_ignored_targets(loss_fn: Callable[[Tensor, Tensor], Tensor], reduction: Reduction, targets: Tensor,
                           index: int) -> None:
    """Per-sample quantities need a mean over samples: refuse batch ``index`` of a mean-reduced loss if some
    of its class-index ``targets`` equal the loss's ``ignore_index`` (the mean is then over the kept ones,
    and an ignored sample's own loss is 0/0)."""
    ignore = ignore_index(loss_fn) if reduction == "mean" else None
    if ignore is not None and not targets.is_floating_point() and bool((targets == ignore).any()):
        raise ReductionError(f"batch {index} has targets equal to ignore_index={ignore}: a mean-reduced loss then "
                             "divides by the kept targets, not the samples, and the Fisher has no per-sample form; "
                             "build the loss with reduction='sum'")


def check_declared(loss_of: Callable[[Tensor, Tensor], Tensor], loss_fn: Callable[[Tensor, Tensor], Tensor],
                   inputs: Tensor, targets: Tensor, whole: float, reduction: Reduction) -> None:
    """Refuse a callable that visibly reduces the other way than ``reduction`` says.

    ``loss_of(x, y)`` is the model's loss on a batch, ``whole`` its value ``L`` on ``(inputs, targets)``.
    With the batch cut in halves of losses ``L1``, ``L2`` and normalisers ``d1``, ``d2``, a mean-reduced
    loss has ``L = (d1 L1 + d2 L2) / (d1 + d2)`` and a sum-reduced one ``L = L1 + L2``. Raises
    :class:`ReductionError` when ``L`` matches the other form to ``1e3 eps (|L1| + |L2|)`` (``eps`` of the
    loss's dtype) and not the declared one (a loss that is neither, e.g. with a penalty term, passes).
    Costs two forward passes over the halves, without gradients.
    """
    n = inputs.shape[0]
    if n < 2:
        return
    half = n // 2
    try:
        with torch.no_grad():
            halves = loss_of(inputs[:half], targets[:half]), loss_of(inputs[half:], targets[half:])
    except (RuntimeError, ValueError):   # a model that takes only whole batches: nothing to compare
        return
    first, second = (float(h) for h in halves)
    d1, d2 = mean_normaliser(loss_fn, targets[:half]), mean_normaliser(loss_fn, targets[half:])
    forms = {"sum": first + second,
             "mean": (d1 * first + d2 * second) / (d1 + d2) if d1 + d2 > 0 else float("nan")}
    tolerance = 1e3 * torch.finfo(halves[0].dtype).eps * (abs(first) + abs(second))
    other = "sum" if reduction == "mean" else "mean"
    if abs(whole - forms[other]) <= tolerance < abs(whole - forms[reduction]):
        raise ReductionError(
            f"loss_fn looks {other}-reduced, but the operator assumes reduction={reduction!r}: on the first batch "
            f"its loss {whole:.6g} equals the {other} ({forms[other]:.6g}), not the {reduction} "
            f"({forms[reduction]:.6g}), of its losses on the two halves. Pass reduction={other!r} to the operator "
            f"(or make loss_fn {reduction}-reduced).")


def own_reduction(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> str | None:
    """The reduction ``loss_fn`` states itself (a loss module's attribute, a functional loss's default), or
    ``None`` for a callable that cannot be inspected."""
    if isinstance(loss_fn, nn.Module) and isinstance(getattr(loss_fn, "reduction", None), str):
        return loss_fn.reduction
    if loss_fn in INDEX_FUNCTIONS or loss_fn in ELEMENTWISE_FUNCTIONS or loss_fn is F.kl_div:
        return "mean"
    return None


def _name(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> str:
    return type(loss_fn).__name__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", repr(loss_fn))
