"""Supermasks: masks chosen from an initial/final pair of weights, and masks learned on frozen random weights.

**Zhou et al. (2019), "Deconstructing lottery tickets: zeros, signs, and the supermask"** rank each weight
from its initial value ``w_i`` and its value after training ``w_f`` and keep the highest scores
(:func:`zhou_masks`):

* ``large_final``: ``S = |w_f|`` (the lottery-ticket criterion);
* ``large_final_same_sign``: ``S = max(0, w_i w_f / |w_i|)``, i.e. ``|w_f|`` if training kept the sign of
  ``w_i``, else 0 (their best supermask criterion);
* ``magnitude_increase``: ``S = |w_f| − |w_i|``.

The mask applied to the *initial* weights, untrained, is their supermask
(:func:`~landscape.pruning.controls.supermask`).

**Edge-popup** (Ramanujan et al. 2020, "What's hidden in a randomly weighted neural network?",
:func:`edge_popup`): the weights ``w`` stay frozen at their random values; each prunable weight gets a score
``s`` and the forward pass uses ``w ⊙ m(|s|)``, ``m`` keeping the ``round(N d)`` largest ``|s|`` (per layer
by default, as in the paper). The scores are trained by SGD with the straight-through estimator through the
top-k, ``∂L/∂s = sign(s) ⊙ ∂L/∂(w ⊙ m) ⊙ w``. Initial scores: ``U(−1/√fan_in, 1/√fan_in)`` (Kaiming
uniform, as the paper's code), seeded.

Allocation defaults follow the papers: layerwise for both (Frankle & Carbin's per-layer pruning in Zhou
et al.; the per-layer ``k`` of edge-popup); ``"global"`` is available.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from landscape.pruning.masks import Allocation, Masks, Prunable, apply_masks, masks_from_scores, prunable_names
from landscape.pruning.reparametrized import fit

ZHOU_CRITERIA = ("large_final", "large_final_same_sign", "magnitude_increase")
Criterion = Literal["large_final", "large_final_same_sign", "magnitude_increase"]


def zhou_scores(initial: nn.Module, final: nn.Module, criterion: Criterion, prunable: Prunable = None,
                exclude_output: bool = False) -> dict[str, Tensor]:
    """Zhou et al.'s score of each prunable weight from ``initial`` (``w_i``) and ``final`` (``w_f``), on the
    final weights' device (see the module docstring for the formulas)."""
    if criterion not in ZHOU_CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {ZHOU_CRITERIA}")
    start, end = dict(initial.named_parameters()), dict(final.named_parameters())
    names = prunable_names(final, prunable, exclude_output)
    missing = [n for n in names if n not in start or start[n].shape != end[n].shape]
    if missing:
        raise ValueError(f"initial and final networks differ in {missing}: pass two states of the same architecture")
    scores = {}
    for n in names:
        w_f = end[n].detach()
        w_i = start[n].detach().to(device=w_f.device, dtype=w_f.dtype)
        if criterion == "large_final":
            scores[n] = w_f.abs()
        elif criterion == "large_final_same_sign":
            scores[n] = torch.where(torch.sign(w_i) * torch.sign(w_f) > 0, w_f.abs(), torch.zeros_like(w_f))
        else:
            scores[n] = w_f.abs() - w_i.abs()
    return scores


def zhou_masks(initial: nn.Module, final: nn.Module, density: float, criterion: Criterion = "large_final", *,
               allocation: Allocation = "layerwise", prunable: Prunable = None, exclude_output: bool = False) -> Masks:
    """Keep exactly ``round(N d)`` weights (per layer by default) with the highest ``criterion`` score."""
    return masks_from_scores(zhou_scores(initial, final, criterion, prunable, exclude_output), density, allocation)


@dataclass(frozen=True)
class EdgePopupResult:
    """A learned supermask: the boolean ``masks`` (largest ``|scores|``), the trained ``scores``, the training
    loss of every step (device tensor), and ``model``: the copy it was trained on with the masks applied (its
    kept weights bit-identical to the original's; its buffers, e.g. BatchNorm statistics, those of the
    training), in training mode."""
    masks: Masks
    scores: dict[str, Tensor]
    losses: Tensor
    model: nn.Module


def edge_popup(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
               batches: Sequence[tuple[Tensor, Tensor]], density: float, *, steps: int, lr: float = 0.1,
               momentum: float = 0.9, weight_decay: float = 5e-4, allocation: Allocation = "layerwise",
               seed: int = 0, prunable: Prunable = None, exclude_output: bool = False) -> EdgePopupResult:
    """Learn a supermask of ``model``'s frozen weights by edge-popup (module docstring).

    Trains on a copy; ``model`` is not modified. ``steps`` SGD updates of the scores over ``batches`` in turn.
    Evaluate ``result.model`` (the copy, masked, with the buffers the training left), or apply ``result.masks``
    to a model of your own.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    names = prunable_names(model, prunable, exclude_output)
    scratch = copy.deepcopy(model)
    trainable = [p.requires_grad for p in scratch.parameters()]
    for p in scratch.parameters():
        p.requires_grad_(False)
    named = dict(scratch.named_parameters())
    gen = torch.Generator(device=named[names[0]].device).manual_seed(seed)
    initial = {}
    for n in names:
        w = named[n]
        bound = (w[0].numel() if w.ndim > 1 else 1) ** -0.5
        initial[n] = (torch.rand(w.shape, generator=gen, device=w.device, dtype=w.dtype) * 2 - 1) * bound

    def masked_weights(scores: Mapping[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            hard = masks_from_scores({n: s.abs() for n, s in scores.items()}, density, allocation)
        return {n: named[n] * (hard[n].to(s.dtype) + s.abs() - s.abs().detach()) for n, s in scores.items()}

    result = fit(scratch, loss_fn, batches, initial, masked_weights, steps=steps, lr=lr, momentum=momentum,
                 weight_decay=weight_decay)
    masks = masks_from_scores({n: s.abs() for n, s in result.trainable.items()}, density, allocation)
    for p, flag in zip(scratch.parameters(), trainable):
        p.requires_grad_(flag)
    return EdgePopupResult(masks=masks, scores=result.trainable, losses=result.losses,
                           model=apply_masks(scratch, masks))
