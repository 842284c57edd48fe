"""Widening a trained network by neuron splitting, leaving its function exactly unchanged.

Hidden neuron ``j`` of a layer ``h = act(W1 x + b1)`` followed by ``y = W2 h + b2`` is split into two
copies with the same incoming weights ``W1[j], b1[j]`` and outgoing weights ``r * W2[:, j]`` and
``(1 - r) * W2[:, j]``. The network computes the same function for every split ratio ``r``. If the
narrow network was at a critical point of the loss, the widened one is too, on a line of critical
points parameterised by ``r`` (Fukumizu & Amari 2000; Simsek et al. 2021, "Geometry of the loss
landscape in overparameterized neural networks: symmetries and invariances"); parts of that line are
saddles, and their negative-curvature directions are the *escape dimensions* of Martinelli, Brea &
Gerstner along which gradient descent in the wider network leaves a minimum of the narrower one.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus, nn.LeakyReLU, nn.ELU,
                nn.Identity, nn.Dropout, nn.Hardtanh, nn.Mish, nn.CELU, nn.SELU)


def linear_chain(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The model's ``nn.Linear`` layers in order, checking that only element-wise modules (activations,
    dropout, identity, and a leading ``nn.Flatten``) stand between them, so that splitting is exact."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    chain: list[tuple[str, nn.Linear]] = []
    for name, module in leaves:
        if isinstance(module, nn.Linear):
            chain.append((name, module))
        elif isinstance(module, nn.Flatten) and not chain:
            continue
        elif not isinstance(module, _ELEMENTWISE):
            raise TypeError(
                f"widen supports multi-layer perceptrons: module {name!r} ({type(module).__name__}) is "
                "neither nn.Linear nor an element-wise activation")
    if len(chain) < 2:
        raise TypeError("widen needs at least two nn.Linear layers (one hidden layer)")
    return chain


@torch.no_grad()
def widen(model: nn.Module, extra: int | Mapping[int, int], *, ratio: float = 0.5,
          neurons: Mapping[int, list[int]] | None = None, seed: int = 0) -> nn.Module:
    """A wider copy of an MLP computing exactly the same function.

    Args:
        model: an MLP whose ``nn.Linear`` layers are separated by element-wise activations only.
        extra: neurons to add to every hidden layer (int), or ``{hidden layer index: count}`` where
            hidden layer ``i`` is the output of the ``i``-th linear layer (0-based).
        ratio: split ratio ``r``: the original keeps ``r`` of its outgoing weights, the copy ``1 - r``.
        neurons: which neurons to split per hidden layer (repeats allowed); by default drawn uniformly
            without replacement (with replacement if more are asked than exist) with ``seed``.
        seed: seed of that draw (the global RNG is not used).

    Returns a new model (the argument is not modified). Its outputs equal the original's up to
    floating-point rounding of ``r * w + (1 - r) * w``.
    """
    chain = linear_chain(model)
    hidden = range(len(chain) - 1)
    counts = {i: extra for i in hidden} if isinstance(extra, int) else dict(extra)
    bad = [i for i in counts if i not in hidden]
    if bad:
        raise ValueError(f"hidden layers {bad} do not exist; this model has hidden layers {list(hidden)}")
    wide = copy.deepcopy(model)
    wide_chain = dict(linear_chain(wide))
    gen = torch.Generator().manual_seed(seed)
    for i, count in counts.items():
        if count <= 0:
            continue
        name_in, name_out = chain[i][0], chain[i + 1][0]
        layer_in, layer_out = wide_chain[name_in], wide_chain[name_out]
        width = layer_in.out_features
        chosen = list(neurons[i]) if neurons and i in neurons else _draw(width, count, gen)
        if len(chosen) != count or any(not 0 <= j < width for j in chosen):
            raise ValueError(f"hidden layer {i}: need {count} neuron indices in [0, {width}), got {chosen}")
        idx = torch.tensor(chosen, dtype=torch.long, device=layer_in.weight.device)
        new_in = nn.Linear(layer_in.in_features, width + count, bias=layer_in.bias is not None,
                           device=layer_in.weight.device, dtype=layer_in.weight.dtype)
        new_in.weight.copy_(torch.cat([layer_in.weight, layer_in.weight[idx]]))
        if layer_in.bias is not None:
            new_in.bias.copy_(torch.cat([layer_in.bias, layer_in.bias[idx]]))
        w_out = layer_out.weight.clone()
        new_cols = torch.zeros(w_out.shape[0], count, dtype=w_out.dtype, device=w_out.device)
        for c, j in enumerate(chosen):
            share = w_out[:, j].clone()
            w_out[:, j] = ratio * share
            new_cols[:, c] = (1.0 - ratio) * share
        new_out = nn.Linear(width + count, layer_out.out_features, bias=layer_out.bias is not None,
                            device=w_out.device, dtype=w_out.dtype)
        new_out.weight.copy_(torch.cat([w_out, new_cols], dim=1))
        if layer_out.bias is not None:
            new_out.bias.copy_(layer_out.bias)
        _replace(wide, name_in, new_in)
        _replace(wide, name_out, new_out)
        wide_chain[name_in], wide_chain[name_out] = new_in, new_out
    return wide


def _draw(width: int, count: int, gen: torch.Generator) -> list[int]:
    if count <= width:
        return torch.randperm(width, generator=gen)[:count].tolist()
    return torch.randint(width, (count,), generator=gen).tolist()


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)
