"""The finished instruments of a checkpoint whose analysis is not finished, one file each, so that a kill loses
only the instrument that was running.

:func:`landscape.analysis.analyze.analyze` writes a checkpoint's result to ``analysis.json`` once all its
instruments are done. Until then each finished instrument is saved atomically as
``<out_dir>/unfinished/<checkpoint>/<instrument>-<key>.pt``: ``<checkpoint>`` is the digest of the weights and of
the data, ``<key>`` the digest of the settings that instrument reads and of the keys of the instruments it builds on
(the saddle index on the eigenpairs, say). A re-run with the same settings loads it instead of measuring again; a
changed setting gives another key, so only the instruments it affects are measured again. The files hold plain
tensors, numbers and strings, read with ``weights_only=True``; the directory is removed once the checkpoint's
result is in ``analysis.json``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.foundation.runs import atomic_write_bytes
from landscape.instruments import EscapeDimensions, FisherTrace, Flatness, SaddleIndex
from landscape.linalg import Eigenpairs, SpectralDensity, TraceEstimate

DIRECTORY = "unfinished"


@dataclass(frozen=True)
class Finished:
    """One instrument's result with what it cost: ``value`` (the instrument's own result object), ``matvecs``
    (Hessian-vector products) and ``seconds`` (wall clock) of the call that measured it."""
    value: Any
    matvecs: int
    seconds: float


class InstrumentStore:
    """Finished instruments of one checkpoint, in ``directory`` (see the module docstring); ``None``: measure
    every instrument and save nothing.

    ``write=False`` (the ranks other than 0 of a process group) reads what rank 0 wrote and writes nothing.
    ``seconds`` sums the ``seconds`` of every result :meth:`measure` returned, loaded ones included.
    """

    def __init__(self, directory: str | Path | None, *, write: bool = True):
        self.directory = None if directory is None else Path(directory)
        self.write = write and self.directory is not None
        self.seconds = 0.0

    def key(self, settings: Any, fields: Sequence[str], builds_on: Sequence[str] = ()) -> str:
        """The key of an instrument that reads ``fields`` of ``settings`` and the results keyed ``builds_on``."""
        text = json.dumps({"settings": {f: getattr(settings, f) for f in fields}, "builds_on": list(builds_on)},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def measure(self, name: str, key: str, compute: Callable[[], Any], *, matvecs: Callable[[], int] = lambda: 0,
                device: torch.device | str | None = None) -> tuple[Finished, bool]:
        """``(Finished, reused)``: the saved result of instrument ``name`` under ``key``, or ``compute()``'s, which
        is saved before it is returned. ``matvecs()`` reads the product counter whose increase ``compute`` costs;
        tensors that were on an accelerator are loaded onto ``device``."""
        saved = self._load(name, key, device)
        if saved is not None:
            self.seconds += saved.seconds
            return saved, True
        before, began = matvecs(), time.perf_counter()
        value = compute()
        finished = Finished(value, matvecs() - before, time.perf_counter() - began)
        self.seconds += finished.seconds
        if self.write:
            buffer = io.BytesIO()
            torch.save({"value": _plain(value), "matvecs": finished.matvecs, "seconds": finished.seconds}, buffer)
            atomic_write_bytes(self._path(name, key), buffer.getvalue())
        return finished, False

    def clear(self) -> None:
        """Remove the directory (the checkpoint's result is in ``analysis.json``), and its parent when empty."""
        if not self.write or self.directory is None:
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            self.directory.parent.rmdir()
        except OSError:   # other checkpoints' files, or already gone
            pass

    def _path(self, name: str, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{name.replace(' ', '_')}-{key}.pt"

    def _load(self, name: str, key: str, device: torch.device | str | None) -> Finished | None:
        if self.directory is None:
            return None
        try:
            saved = torch.load(self._path(name, key), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        return Finished(_rebuilt(saved["value"], device), int(saved["matvecs"]), float(saved["seconds"]))


_CLASSES: dict[str, type] = {c.__name__: c for c in (Eigenpairs, TraceEstimate, SpectralDensity, SaddleIndex,
                                                      EscapeDimensions, Flatness, FisherTrace)}   # results it rebuilds


def _plain(value: Any) -> Any:
    """``value`` as tensors, numbers, strings, lists and dicts: a registered dataclass becomes ``{"class": name,
    "fields": ...}`` without its fields left out of comparison (a parameter space, views of other fields), a tensor
    is moved to the CPU with a note of whether it was elsewhere."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _CLASSES.get(name) is not type(value):
            raise TypeError(f"cannot save a {name}: not one of the instrument results it rebuilds")
        return {"class": name, "fields": {f.name: _plain(getattr(value, f.name))
                                          for f in dataclasses.fields(value) if f.compare}}
    if isinstance(value, Tensor):
        return {"tensor": value.detach().cpu(), "accelerator": value.device.type != "cpu"}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {"dict": {k: _plain(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list": [_plain(v) for v in value], "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} as an instrument result")


def _rebuilt(value: Any, device: torch.device | str | None) -> Any:
    """Inverse of :func:`_plain`."""
    if not isinstance(value, dict):
        return value
    if "class" in value:
        fields = {k: _rebuilt(v, device) for k, v in value["fields"].items()}
        return _CLASSES[value["class"]](**fields)
    if "tensor" in value:
        return value["tensor"].to(device) if value["accelerator"] and device is not None else value["tensor"]
    if "dict" in value:
        return {k: _rebuilt(v, device) for k, v in value["dict"].items()}
    items = [_rebuilt(v, device) for v in value["list"]]
    return tuple(items) if value["tuple"] else items
