"""Controls for lottery-ticket experiments (Frankle & Carbin 2019; Zhou et al. 2019).

Each control answers whether a ticket's success comes from its mask alone, its initial values, or
their signs:

- :func:`random_masks`: random pruning with the same per-layer sparsity as a given mask;
- :func:`reinitialize`: the same architecture with fresh random weights (to be masked and trained);
- :func:`signs_only`: each kept weight rewound to a constant magnitude per layer (the standard deviation
  of that layer's initial weights) with its initial sign ("Deconstructing Lottery Tickets");
- :func:`supermask`: the trained network's mask applied to the initial weights, evaluated untrained.

All return new objects; the models passed in are not modified.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from landscape.pruning.masks import Masks, apply_masks


def random_masks(masks: Mapping[str, Tensor], seed: int = 0) -> Masks:
    """Random masks with exactly the per-layer kept counts of ``masks``."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n, m in masks.items():
        keep = int(m.sum())
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=gen)[:keep]] = True
        out[n] = flat.reshape(m.shape).to(m.device)
    return out


def reinitialize(model: nn.Module, seed: int, masks: Mapping[str, Tensor] | None = None) -> nn.Module:
    """A copy of ``model`` re-initialised by each submodule's ``reset_parameters`` under ``seed`` (the
    global RNG is left as it was), with ``masks`` applied when given."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return apply_masks(fresh, masks) if masks is not None else fresh


@torch.no_grad()
def signs_only(initial: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """A copy of ``initial`` whose masked parameters are ``sign(w0) * std(w0)`` per layer, pruned ones zero."""
    out = copy.deepcopy(initial)
    named = dict(out.named_parameters())
    for n, m in masks.items():
        w0 = named[n]
        named[n].copy_(torch.sign(w0) * w0.std())
    return apply_masks(out, masks)


def supermask(initial: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """A copy of ``initial`` with ``masks`` (typically from the trained network) applied, not trained."""
    return apply_masks(copy.deepcopy(initial), masks)
