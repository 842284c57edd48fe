"""Pruning masks: ``{parameter name: 0/1 tensor}`` over a model's weights.

A mask keeps a coordinate where it is 1. By default only weight matrices and convolution kernels are
prunable (parameters with two or more dimensions); biases and BatchNorm affine parameters are kept
unless asked, as in Frankle & Carbin (2019). Magnitude pruning removes, among the weights a mask still
keeps, the fraction with the smallest absolute value, either over all prunable layers together
(``scope="global"``) or within each layer (``scope="layer"``). Pruning 20% per round leaves a
density of 0.8**n after n rounds (to within one weight per round of rounding); :func:`prune_to_density`
keeps an exact count instead, ``round(N * d)`` of the ``N`` prunable weights (per layer for
``scope="layer"``), which is what iterative magnitude pruning uses with ``d = 0.8**n``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from landscape.foundation.params import Selection, selected_names

Masks = dict[str, Tensor]
Prunable = Selection   # which parameters may be pruned (None: every weight matrix and kernel)


def prunable_names(model: nn.Module, prunable: Prunable = None, exclude_output: bool = False) -> list[str]:
    """Names of the parameters pruning may touch.

    Args:
        prunable: ``None`` for every trainable parameter with ``ndim >= 2`` (weights, kernels); names; or a
            predicate ``(name, parameter) -> bool`` (e.g. ``lambda n, p: True`` to prune biases too).
        exclude_output: leave the last prunable parameter (the output layer's weight) dense.
    """
    named = dict(model.named_parameters())
    names = selected_names(named, prunable, default=lambda n, p: p.requires_grad and p.ndim >= 2)
    if exclude_output and names:
        names = names[:-1]
    if not names:
        raise ValueError("no prunable parameters: the model has no weights with two or more dimensions "
                         "(pass prunable= to choose them)")
    return names


def full_masks(model: nn.Module, prunable: Prunable = None, exclude_output: bool = False) -> Masks:
    """All-ones masks over the prunable parameters (density 1)."""
    named = dict(model.named_parameters())
    return {n: torch.ones_like(named[n], dtype=torch.bool)
            for n in prunable_names(model, prunable, exclude_output)}


def magnitude_masks(model: nn.Module, fraction: float = 0.2, masks: Mapping[str, Tensor] | None = None, *,
                    scope: Literal["global", "layer"] = "global", prunable: Prunable = None,
                    exclude_output: bool = False) -> Masks:
    """Prune ``fraction`` of the weights that ``masks`` still keeps, smallest ``|w|`` first.

    The number kept is ``round(kept * (1 - fraction))`` globally, or per layer for ``scope="layer"``.
    Ties in ``|w|`` are broken by position, so the result is deterministic. Returns new boolean masks;
    the model is not modified (see :func:`apply_masks`).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    return _magnitude(model, masks, scope, prunable, exclude_output,
                      lambda alive, total: int(round(alive * (1.0 - fraction))))


def prune_to_density(model: nn.Module, target: float, masks: Mapping[str, Tensor] | None = None, *,
                     scope: Literal["global", "layer"] = "global", prunable: Prunable = None,
                     exclude_output: bool = False) -> Masks:
    """Keep exactly ``round(N * target)`` of the ``N`` masked coordinates (all prunable weights for
    ``scope="global"``, each layer's for ``scope="layer"``), the largest ``|w|`` among those ``masks``
    still keeps.

    Counting from ``N`` rather than from the survivors of the previous round keeps rounding errors from
    accumulating: round ``n`` of iterative pruning with ``target = 0.8**n`` has density
    ``round(N 0.8**n) / N`` exactly. Ties are broken by position.

    Raises:
        ValueError: ``target`` is not in (0, 1], or it would keep more weights than ``masks`` keeps.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target density must be in (0, 1], got {target}")

    def count(alive: int, total: int) -> int:
        keep = int(round(total * target))
        if keep > alive:
            raise ValueError(f"target density {target} keeps {keep} of {total} weights, but the masks keep only "
                             f"{alive}: pruning cannot revive weights")
        return keep

    return _magnitude(model, masks, scope, prunable, exclude_output, count)


def _magnitude(model: nn.Module, masks: Mapping[str, Tensor] | None, scope: str, prunable: Prunable,
               exclude_output: bool, count: Callable[[int, int], int]) -> Masks:
    """Masks keeping the ``count(alive, total)`` largest ``|w|`` among the alive coordinates, globally or per
    layer (``total``: all coordinates of the group, ``alive``: those ``masks`` keeps)."""
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    named = dict(model.named_parameters())
    current = dict(masks) if masks is not None else full_masks(model, prunable, exclude_output)
    _check_masks(named, current)
    names = list(current)
    scores = {n: torch.where(current[n].bool(), named[n].detach().abs().float(),
                             torch.full_like(named[n], float("inf"), dtype=torch.float)) for n in names}
    if scope == "layer":
        return {n: _keep_largest(scores[n], count(int(current[n].sum()), current[n].numel())) for n in names}
    device = scores[names[0]].device   # ranked where the weights are: no copy to the host
    flat = torch.cat([scores[n].reshape(-1).to(device) for n in names])
    alive = int(sum(current[n].sum().to(device) for n in names))
    return _unflatten(_keep_largest(flat, count(alive, flat.numel())), {n: named[n] for n in names})


def _unflatten(flat: Tensor, like: Mapping[str, Tensor]) -> Masks:
    """``flat`` cut into consecutive pieces shaped and placed like the tensors of ``like``, in its order."""
    out, start = {}, 0
    for n, t in like.items():
        out[n] = flat[start:start + t.numel()].reshape(t.shape).to(t.device)
        start += t.numel()
    return out


def _keep_largest(scores: Tensor, keep: int) -> Tensor:
    """Boolean mask keeping the ``keep`` largest finite scores (pruned ones are inf and are never kept)."""
    flat = scores.reshape(-1)
    finite = torch.where(torch.isinf(flat), torch.full_like(flat, -1.0), flat)
    order = torch.sort(finite, descending=True, stable=True).indices
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.reshape(scores.shape)


Allocation = Literal["global", "layerwise"]
ALLOCATIONS = ("global", "layerwise")


@torch.no_grad()
def masks_from_scores(scores: Mapping[str, Tensor], density: float, allocation: Allocation = "global",
                      alive: Mapping[str, Tensor] | None = None) -> Masks:
    """Keep the highest-scoring coordinates: ``round(N * density)`` of the ``N`` scored coordinates over all
    layers together (``allocation="global"``), or ``round(N_l * density)`` of each layer's ``N_l``
    (``"layerwise"``). Ties are broken by position; coordinates that ``alive`` prunes are never kept.

    Ranked on the scores' device (no copy to the host). Returns boolean masks shaped like the scores.

    Raises:
        ValueError: ``density`` not in (0, 1], an unknown allocation, a non-finite score, or more weights asked
            for than ``alive`` keeps.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    names = list(scores)
    if not names:
        raise ValueError("no scores to rank")
    if alive is not None and set(alive) != set(names):
        raise ValueError(f"alive masks cover {sorted(alive)}, scores cover {sorted(names)}")
    if not all(bool(torch.isfinite(scores[n]).all()) for n in names):
        raise ValueError("scores contain NaN or infinite values; rescale the model or use float64")

    def ranked(group: list[str]) -> Masks:
        device = scores[group[0]].device
        flat = torch.cat([scores[n].detach().reshape(-1).to(device=device, dtype=torch.float64) for n in group])
        keep = int(round(flat.numel() * density))
        if alive is not None:
            live = torch.cat([alive[n].reshape(-1).to(device=device, dtype=torch.bool) for n in group])
            available = int(live.sum())
            if keep > available:
                raise ValueError(f"density {density} keeps {keep} of {flat.numel()} weights, but the masks keep only "
                                 f"{available}: pruning cannot revive weights")
            flat = torch.where(live, flat, torch.full_like(flat, -math.inf))
        kept = torch.zeros(flat.numel(), dtype=torch.bool, device=device)
        kept[torch.sort(flat, descending=True, stable=True).indices[:keep]] = True
        return _unflatten(kept, {n: scores[n] for n in group})

    if allocation == "layerwise":
        return {n: m for name in names for n, m in ranked([name]).items()}
    return ranked(names)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Zero the pruned weights of ``model`` in place (its purpose is to write into the parameters)."""
    named = dict(model.named_parameters())
    _check_masks(named, masks)
    for n, m in masks.items():
        named[n].mul_(m.to(device=named[n].device, dtype=named[n].dtype))
    return model


def density(masks: Mapping[str, Tensor]) -> float:
    """Fraction of the masked coordinates that are kept."""
    total = sum(m.numel() for m in masks.values())
    return float(sum(int(m.sum()) for m in masks.values())) / total


def layer_densities(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Per-parameter fraction kept."""
    return {n: float(m.sum()) / m.numel() for n, m in masks.items()}


def _check_masks(named: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    for n, m in masks.items():
        if n not in named:
            raise KeyError(f"mask for unknown parameter {n!r}")
        if m.shape != named[n].shape:
            raise ValueError(f"mask for {n!r} has shape {tuple(m.shape)}, parameter has {tuple(named[n].shape)}")
