"""Pruning at initialisation: SNIP, GraSP, SynFlow, magnitude and random scores, and the sanity checks.

Each method scores every prunable weight ``θ`` of the untrained network; :func:`prune_at_init` keeps the
highest scores (:func:`~landscape.pruning.masks.masks_from_scores`). With ``L`` the loss averaged over the
scoring data, ``g = ∇L`` and ``H = ∇²L``:

* **SNIP** (Lee et al. 2019, "SNIP: single-shot network pruning based on connection sensitivity"):
  ``S = |θ ⊙ g|`` (the paper normalises by the sum, which does not change the ranking);
* **GraSP** (Wang et al. 2020, "Picking winning tickets before training by preserving gradient flow"):
  ``S = −θ ⊙ (H g)``; the paper removes the *largest* scores (their removal reduces the gradient norm the
  least), so the weights kept are those with the smallest ``S`` (the paper's logit temperature is not used);
* **SynFlow** (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving
  synaptic flow"): with every parameter replaced by its absolute value, the masks applied and the input all
  ones, ``R = 1ᵀ f(1)`` and ``S = |θ ⊙ ∂R/∂θ|`` (for a chain of linear layers, the sum over the input-output
  paths through a weight of the product of the absolute weights on the path). Data-free; iterative: ``n``
  rounds of scoring and pruning to densities ``d^(k/n)``, ``k = 1 … n``, which avoids layer collapse;
* **magnitude at init**: ``S = |θ|``; **random**: ``S ~ U(0, 1)`` from a seeded generator.

Allocation: ``"global"`` (one ranking over all prunable layers, as SNIP, GraSP and SynFlow do: the default
here) or ``"layerwise"`` (the same density in every layer, as Frankle & Carbin prune).

Sanity checks (Frankle et al. 2021, "Pruning neural networks at initialization: why are we missing the
mark?"): :func:`shuffle_masks` permutes each layer's mask at random (same per-layer density, other
positions) and :func:`~landscape.pruning.controls.reinitialize` draws fresh weights under the same mask; they
found that neither hurts these methods, i.e. they pick per-layer densities, not weights.

Scores are computed on a copy of the model on its own device (the user's model, its modes, ``.grad``,
buffers and RNG states are left as they were); nothing is copied to the host.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from landscape.data.batches import as_batches
from landscape.foundation.devices import widest_float
from landscape.foundation.state import preserved_rng
from landscape.pruning.controls import random_masks
from landscape.pruning.masks import Allocation, Masks, Prunable, masks_from_scores, prunable_names

AT_INIT_METHODS = ("snip", "grasp", "synflow", "magnitude_init", "random")
Method = Literal["snip", "grasp", "synflow", "magnitude_init", "random"]
LossFn = Callable[[Tensor, Tensor], Tensor]


def snip_scores(model: nn.Module, loss_fn: LossFn, data: Any, prunable: Prunable = None,
                exclude_output: bool = False) -> dict[str, Tensor]:
    """SNIP connection sensitivity ``|θ ⊙ ∇L|`` of each prunable weight (``L``: mean loss over ``data``, the
    model in training mode on a copy)."""
    scratch, names = _scratch(model, prunable, exclude_output, training=True)
    params = [dict(scratch.named_parameters())[n] for n in names]
    grads = torch.autograd.grad(_mean_loss(scratch, loss_fn, data), params)
    return {n: (p.detach() * g).abs() for n, p, g in zip(names, params, grads)}


def grasp_scores(model: nn.Module, loss_fn: LossFn, data: Any, prunable: Prunable = None,
                 exclude_output: bool = False) -> dict[str, Tensor]:
    """GraSP scores ``−θ ⊙ (H g)`` of each prunable weight, ``g = ∇L`` and ``H = ∇²L`` of the mean loss over
    ``data`` with respect to the prunable weights (a Hessian-vector product by double backpropagation, the
    model in training mode on a copy). Keep the *smallest* (:func:`prune_at_init` does)."""
    scratch, names = _scratch(model, prunable, exclude_output, training=True)
    params = [dict(scratch.named_parameters())[n] for n in names]
    g = [t.detach() for t in torch.autograd.grad(_mean_loss(scratch, loss_fn, data), params)]
    grads = torch.autograd.grad(_mean_loss(scratch, loss_fn, data), params, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(grads, g)), params)
    return {n: -p.detach() * h for n, p, h in zip(names, params, hg)}


def synflow_scores(model: nn.Module, input_shape: Sequence[int], masks: Mapping[str, Tensor] | None = None,
                   prunable: Prunable = None, exclude_output: bool = False) -> dict[str, Tensor]:
    """SynFlow scores ``|θ ⊙ ∂R/∂θ|``, ``R = 1ᵀ f_|θ|⊙m(1)``: the network with every parameter and floating
    buffer replaced by its absolute value and ``masks`` applied, in eval mode and in float64 (float32 on
    MPS), on an all-ones input of shape ``(1, *input_shape)``. Data-free."""
    scratch, names = _scratch(model, prunable, exclude_output, training=False)
    scratch.to(widest_float(next(scratch.parameters()).device))
    named = dict(scratch.named_parameters())
    with torch.no_grad():
        for tensor in (*scratch.parameters(), *scratch.buffers()):
            if tensor.is_floating_point():
                tensor.abs_()
        for n, m in (masks or {}).items():
            named[n].mul_(m.to(named[n].device, named[n].dtype))
    params = [named[n] for n in names]
    first = params[0]
    flow = scratch(torch.ones((1, *input_shape), dtype=first.dtype, device=first.device)).sum()
    grads = torch.autograd.grad(flow, params, allow_unused=True)
    return {n: (p.detach() * (torch.zeros_like(p) if g is None else g)).abs() for n, p, g in zip(names, params, grads)}


def magnitude_scores(model: nn.Module, prunable: Prunable = None, exclude_output: bool = False) -> dict[str, Tensor]:
    """``|θ|`` of each prunable weight (magnitude pruning at initialisation)."""
    named = dict(model.named_parameters())
    return {n: named[n].detach().abs() for n in prunable_names(model, prunable, exclude_output)}


def random_scores(model: nn.Module, seed: int = 0, prunable: Prunable = None,
                  exclude_output: bool = False) -> dict[str, Tensor]:
    """Independent ``U(0, 1)`` scores drawn on the model's device from a generator seeded with ``seed``."""
    named = dict(model.named_parameters())
    names = prunable_names(model, prunable, exclude_output)
    gen = torch.Generator(device=named[names[0]].device).manual_seed(seed)
    return {n: torch.rand(named[n].shape, generator=gen, device=named[n].device, dtype=torch.float64) for n in names}


def prune_at_init(model: nn.Module, method: Method, density: float, *, loss_fn: LossFn | None = None,
                  data: Any = None, input_shape: Sequence[int] | None = None, allocation: Allocation = "global",
                  iterations: int = 100, seed: int = 0, prunable: Prunable = None,
                  exclude_output: bool = False) -> Masks:
    """Masks keeping a fraction ``density`` of the prunable weights of the untrained ``model`` by ``method``.

    Args:
        method: ``"snip"`` and ``"grasp"`` (need ``loss_fn`` and ``data``), ``"synflow"`` (needs
            ``input_shape``; ``iterations`` rounds to densities ``density^(k/iterations)``),
            ``"magnitude_init"``, ``"random"`` (``seed``).
        density: fraction kept: exactly ``round(N * density)`` weights (per layer for ``"layerwise"``).
        allocation: ``"global"`` (default) or ``"layerwise"``.

    Returns:
        boolean masks ``{name: tensor}`` on the parameters' devices; ``model`` is not modified.
    """
    if method not in AT_INIT_METHODS:
        raise ValueError(f"unknown pruning-at-init method {method!r}; known: {AT_INIT_METHODS}")
    if method in ("snip", "grasp") and (loss_fn is None or data is None):
        raise ValueError(f"{method} scores the weights by the loss gradient: pass loss_fn and data")
    if method == "synflow":
        if input_shape is None:
            raise ValueError("synflow needs input_shape, the shape of one input without the batch dimension")
        if iterations < 1:
            raise ValueError(f"synflow iterations must be positive, got {iterations}")
        masks = None
        for k in range(1, iterations + 1):
            scores = synflow_scores(model, input_shape, masks, prunable, exclude_output)
            masks = masks_from_scores(scores, density ** (k / iterations), allocation, alive=masks)
        return masks  # type: ignore[return-value]
    if method == "snip":
        scores = snip_scores(model, loss_fn, data, prunable, exclude_output)  # type: ignore[arg-type]
    elif method == "grasp":
        grasp = grasp_scores(model, loss_fn, data, prunable, exclude_output)  # type: ignore[arg-type]
        scores = {n: -s for n, s in grasp.items()}   # keep the smallest GraSP scores
    elif method == "magnitude_init":
        scores = magnitude_scores(model, prunable, exclude_output)
    else:
        scores = random_scores(model, seed, prunable, exclude_output)
    return masks_from_scores(scores, density, allocation)


def shuffle_masks(masks: Mapping[str, Tensor], seed: int = 0) -> Masks:
    """Frankle et al. (2021)'s layer-wise shuffle: each layer's mask permuted uniformly at random, keeping its
    count. (A uniformly permuted mask is a uniformly random mask with that count:
    :func:`~landscape.pruning.controls.random_masks`.)"""
    return random_masks(masks, seed)


def _scratch(model: nn.Module, prunable: Prunable, exclude_output: bool, training: bool) -> tuple[nn.Module, list[str]]:
    """A deep copy of ``model`` (same device) in the given mode with gradients off except for the prunable
    weights, and their names."""
    names = prunable_names(model, prunable, exclude_output)
    scratch = copy.deepcopy(model).train(training)
    for n, p in scratch.named_parameters():
        p.grad = None
        p.requires_grad_(n in names)
    return scratch, names


def _mean_loss(model: nn.Module, loss_fn: LossFn, data: Any) -> Tensor:
    """The mean loss over all of ``data``: batch means weighted by their sizes (RNG states restored)."""
    batches = as_batches(data)
    parameter = next(model.parameters())
    total, count = torch.zeros((), dtype=parameter.dtype, device=parameter.device), 0
    with preserved_rng():
        for x, y in batches:
            x = x.to(parameter.device, parameter.dtype if x.is_floating_point() else None)
            y = y.to(parameter.device, parameter.dtype if y.is_floating_point() else None)
            total = total + loss_fn(model(x), y) * x.shape[0]
            count += int(x.shape[0])
    return total / count
