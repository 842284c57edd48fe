"""Parameter spaces: which coordinates of a model a curvature operator acts on.

A :class:`ParamSpace` selects trainable parameters of a model (all by default, or a subset by names or
a predicate) and optionally restricts them by 0/1 pruning masks. Its dimension ``dim`` is the number of
surviving coordinates; a flat vector ``v`` of shape ``(..., dim)`` maps to a dictionary of full-shaped
tensors ``(..., *param.shape)`` with zeros on pruned coordinates, and back.

Solvers see flat vectors only; parameter dictionaries are for the edges (users, models).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Union

import torch
from torch import Tensor, nn

Selection = Union[None, Iterable[str], Callable[[str, nn.Parameter], bool]]


def selected_names(named: Mapping[str, Tensor], selection: Selection,
                   default: Callable[[str, Tensor], bool]) -> list[str]:
    """The names of ``named`` that ``selection`` picks: ``default(name, parameter)`` when it is ``None``, a
    predicate ``(name, parameter) -> bool``, or an iterable of names (each checked to exist)."""
    if selection is None:
        selection = default
    if callable(selection):
        return [n for n, p in named.items() if selection(n, p)]
    names = list(selection)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise KeyError(f"unknown parameter names {unknown}; the model has {list(named)}")
    return names


class ParamSpace:
    """The selected, unpruned coordinates of a model's parameters.

    Args:
        model: the module whose named parameters are selected.
        params: ``None`` for every parameter with ``requires_grad``; an iterable of parameter names;
            or a predicate ``(name, parameter) -> bool``.
        masks: optional ``{name: 0/1 tensor}`` with each mask the shape of its parameter; coordinates
            where the mask is 0 are excluded (the operator acts on the surviving ones only).
    """

    def __init__(self, model: nn.Module, params: Selection = None,
                 masks: Mapping[str, Tensor] | None = None):
        named = dict(model.named_parameters())
        if isinstance(params, str):
            raise TypeError(f"params must be a list of parameter names or a predicate, got the string {params!r}: "
                            f"write params=[{params!r}]")
        names = selected_names(named, params, default=lambda n, p: p.requires_grad)
        if not names:
            raise ValueError("no trainable parameters selected: the model has none with requires_grad=True, "
                             "or the selection matched none")
        masks = dict(masks or {})
        not_tensors = [n for n, m in masks.items() if not isinstance(m, Tensor)]
        if not_tensors:
            raise TypeError(f"masks must be torch tensors; those for {not_tensors} are not: convert them with "
                            "torch.as_tensor")
        stray = [n for n in masks if n not in names]
        if stray:
            raise KeyError(f"masks given for parameters that are not selected: {stray}")
        self.names: tuple[str, ...] = tuple(names)
        self.shapes: tuple[torch.Size, ...] = tuple(named[n].shape for n in names)
        self._index: dict[str, Tensor | None] = {}
        sizes = []
        for n in names:
            p = named[n]
            m = masks.get(n)
            if m is None:
                self._index[n] = None
                sizes.append(p.numel())
                continue
            if m.shape != p.shape:
                raise ValueError(f"mask for {n!r} has shape {tuple(m.shape)}, parameter has {tuple(p.shape)}")
            if not bool(((m == 0) | (m == 1)).all()):
                raise ValueError(f"mask for {n!r} has values other than 0 and 1 (a soft mask?): a mask says which "
                                 "coordinates survive; pass (mask != 0).float() to keep every nonzero one")
            idx = torch.nonzero(m.reshape(-1).to(p.device) != 0).reshape(-1)
            self._index[n] = idx
            sizes.append(int(idx.numel()))
        self.sizes: tuple[int, ...] = tuple(sizes)
        self.dim: int = sum(sizes)
        if self.dim == 0:
            raise ValueError("the parameter space is empty: every selected coordinate is masked out")
        self.masks: dict[str, Tensor] = {n: masks[n] for n in names if n in masks}

    def __repr__(self) -> str:
        return f"ParamSpace(dim={self.dim}, params={len(self.names)}, masked={len(self.masks)})"

    def parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The live selected parameters of ``model`` (which must have the same names and shapes)."""
        named = dict(model.named_parameters())
        missing = [n for n in self.names if n not in named]
        if missing:
            raise KeyError(f"model has no parameters {missing}")
        for n, s in zip(self.names, self.shapes):
            if named[n].shape != s:
                raise ValueError(f"parameter {n!r} has shape {tuple(named[n].shape)}, expected {tuple(s)}")
        return {n: named[n] for n in self.names}

    def to_flat(self, tensors: Mapping[str, Tensor] | Iterable[Tensor]) -> Tensor:
        """Gather the surviving coordinates: ``{name: (..., *shape)}`` (or a sequence in ``names`` order)
        to one tensor ``(..., dim)``. Missing names (parameters not in the loss) count as zeros."""
        if not isinstance(tensors, Mapping):
            tensors = dict(zip(self.names, tensors))
        parts, batch_shape, ref = [], None, None
        for n, s in zip(self.names, self.shapes):
            t = tensors.get(n)
            if t is not None:
                batch_shape = t.shape[: t.ndim - len(s)]
                ref = t
                break
        if ref is None:
            raise ValueError("to_flat: no tensor for any selected parameter")
        for n, s, size in zip(self.names, self.shapes, self.sizes):
            t = tensors.get(n)
            if t is None:
                parts.append(ref.new_zeros(*batch_shape, size))
                continue
            flat = t.reshape(*batch_shape, -1)
            idx = self._index[n]
            parts.append(flat if idx is None else flat.index_select(-1, idx.to(flat.device)))
        return torch.cat(parts, dim=-1)

    def to_dict(self, vec: Tensor) -> dict[str, Tensor]:
        """Scatter a flat ``(..., dim)`` tensor to ``{name: (..., *shape)}``, zeros on pruned coordinates."""
        if vec.shape[-1] != self.dim:
            raise ValueError(f"flat vector has length {vec.shape[-1]}, the parameter space has dim {self.dim}")
        batch_shape = vec.shape[:-1]
        out = {}
        for n, s, piece in zip(self.names, self.shapes, vec.split(self.sizes, dim=-1)):
            idx = self._index[n]
            if idx is None:
                out[n] = piece.reshape(*batch_shape, *s)
            else:
                full = piece.new_zeros(*batch_shape, s.numel())
                full.index_copy_(-1, idx.to(piece.device), piece)
                out[n] = full.reshape(*batch_shape, *s)
        return out

    def values(self, model: nn.Module) -> Tensor:
        """The model's current values of the selected coordinates as one flat (detached) vector."""
        return self.to_flat({n: p.detach() for n, p in self.parameters(model).items()})

    def name_of(self, index: int) -> str:
        """The parameter that flat coordinate ``index`` belongs to."""
        for n, end in zip(self.names, torch.tensor(self.sizes).cumsum(0).tolist()):
            if index < end:
                return n
        raise IndexError(f"coordinate {index} out of range for dim {self.dim}")
