"""Devices: the one a computation runs on, checked before anything is moved there, and what it supports."""
from __future__ import annotations

import torch


def torch_device(spec: str | torch.device | None = None) -> torch.device:
    """``spec`` as a ``torch.device`` that exists on this machine; ``None`` means CUDA when available, else CPU.

    Raises:
        ValueError: ``spec`` is not a device name (e.g. ``bogus``), or names a CUDA or MPS device this
            machine does not have (e.g. ``cuda:7`` with two GPUs); the message lists the devices there are.
    """
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {spec!r} is not a torch device name ({e}); use e.g. cpu, cuda or cuda:0") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {spec!r}: CUDA is not available on this machine (torch {torch.__version__}); "
                             f"use cpu")
        if device.index is not None and not 0 <= device.index < count:
            raise ValueError(f"device {spec!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {spec!r}: MPS is not available on this machine; use cpu")
    return device


def widest_float(device: torch.device) -> torch.dtype:
    """The widest floating-point type ``device`` computes in: float64, except on MPS (float32 only)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64
