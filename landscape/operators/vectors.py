"""Checks on the vectors a product is asked for: a named error instead of a traceback or a silent cast.

An operator multiplies real ``(dim, b)`` blocks of a torch tensor. A block on the ``meta`` device has no
values, a complex one would lose its imaginary part in the cast to the operator's dtype, a sparse one
has no dense rows, and a vector with NaN or infinite entries makes every product coordinate non-finite
(blamed on the vector, not on the operator).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def checked_block(V: Any, dim: int, what: str) -> Tensor:
    """``V`` if it is a real, dense, materialised ``(dim, b)`` tensor; otherwise raise naming what is wrong
    and the fix. Integer and boolean blocks are accepted (their cast to a floating dtype is exact)."""
    if not isinstance(V, Tensor):
        raise TypeError(f"{what} expects a torch.Tensor of shape ({dim}, b), got {type(V).__name__}: "
                        "convert it with torch.as_tensor")
    if V.device.type == "meta":
        raise ValueError(f"{what} got a vector on the meta device, which holds no values: create it on a real "
                         "device (e.g. torch.randn(dim, device='cpu'))")
    if V.layout != torch.strided:
        raise TypeError(f"{what} expects a dense tensor, got layout {V.layout}: call .to_dense() first")
    if V.is_complex():
        raise TypeError(f"{what} expects a real vector, got dtype {V.dtype}: curvature operators are real "
                        "symmetric; multiply V.real and V.imag separately")
    if V.ndim != 2 or V.shape[0] != dim:
        raise ValueError(f"{what} expects shape ({dim}, b), got {tuple(V.shape)}")
    return V


def check_device(device: torch.device) -> None:
    """Raise naming ``device`` if this process cannot allocate on it (no CUDA build, no such GPU, meta)."""
    if device.type == "meta":
        raise ValueError("device='meta' holds no values: curvature products need a real device")
    try:
        torch.empty(0, device=device)
    except (AssertionError, RuntimeError) as error:   # torch raises AssertionError without a CUDA build
        raise ValueError(f"device {str(device)!r} is not available in this process ({error}): pass a device "
                         "it has, e.g. device='cpu'") from error


def nonfinite_input(V: Tensor, name_of: Callable[[int], str]) -> None:
    """Raise if the ``(dim, b)`` block ``V`` has a NaN or infinite entry, naming the vector, the coordinate
    and its parameter (``name_of(coordinate)``); return otherwise."""
    bad = ~torch.isfinite(V)
    if not bool(bad.any()):
        return
    coordinate, column = (int(i) for i in bad.nonzero()[0])
    raise ValueError(f"the input vector {column} is {float(V[coordinate, column])} at coordinate {coordinate} "
                     f"(parameter {name_of(coordinate)!r}): a product with a non-finite vector is not finite; "
                     "check what produced the vector")
