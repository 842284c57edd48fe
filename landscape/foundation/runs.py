"""Run directories, atomic writes and safe checkpoint loading.

A run directory holds::

    config.json                          what identifies the run (written once, checked on resume)
    checkpoints/step_000100.safetensors  model state (parameters and buffers) at step 100
    checkpoints/step_000100.state.safetensors  optimizer, RNG, loader and callback state (tensors and plain data)
    metrics.jsonl                        one JSON object per line: {"step", "instrument", ...values}

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half of one (a killed
writer's temporary files are removed by the next writer, :mod:`landscape.foundation.locking`); every file gets the
permissions the user's umask gives a new file (0644 under the usual 022). The sidecar is written before
the weights, so a weights file marks a complete checkpoint.

Checkpoints are byte-for-byte reproducible: the same tensors and state give the same bytes in any process.
The safetensors header's metadata is written in sorted key order, and the training state is not pickled
but stored as a safetensors file whose tensors are named in a fixed traversal order and whose structure is
key-sorted JSON in the metadata (:func:`encode_state`). Runs written before this format have a
``step_N.state.pt`` sidecar (``torch.save``), which is still read, with ``weights_only=True``.

Loading never unpickles code: weights come from safetensors, or from ``torch.load(weights_only=True)``
for ``.pt``/``.pth`` files, and a state that does not fit a model fails naming the missing, unexpected
and mis-shaped keys.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or corrupt, or its state does not fit the model."""


class RunConfigError(ValueError):
    """A run directory holds a run with a different configuration than the one asked for, or an unreadable one."""


class FileFormatError(ValueError):
    """A file that landscape reads back is not UTF-8 text, not JSON, or not the JSON it should hold."""


def new_file_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file: ``0o666`` less the process's umask."""
    try:   # Linux: read without changing it (os.umask can only be read by setting it)
        status = Path("/proc/self/status").read_text()
        umask = int(re.search(r"^Umask:\s*([0-7]+)", status, re.M).group(1), 8)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, fsync, ``os.replace``),
    with the permissions of :func:`new_file_mode`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())   # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path, expect: type | tuple[type, ...] = object, *,
              fix: str = "move it away or delete it") -> Any:
    """The JSON value in ``path``, checked to be an instance of ``expect`` (e.g. ``dict``).

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: the file is not UTF-8, not JSON, or holds another kind of value; the message names
            the file, the problem and ``fix``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{path} is not UTF-8 text (byte {e.start}): {fix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path} is not valid JSON ({e}): {fix}") from None
    if not isinstance(value, expect):
        kinds = expect if isinstance(expect, tuple) else (expect,)
        raise FileFormatError(f"{path} holds a JSON {_json_kind(value)} where a JSON "
                              f"{' or '.join(_json_kind(k()) for k in kinds)} was expected: {fix}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def cached_json(path: str | Path, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON-serialisable result, written atomically to ``path`` the first time and read back
    from it on later calls: a measurement an interrupted script made is not made again."""
    path = Path(path)
    if path.is_file():
        return read_json(path, fix="delete it to measure again")
    result = compute()
    atomic_write_json(path, result)
    return result


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the model's state dict (parameters and buffers), on the CPU unless ``map_location`` said otherwise.
        state: the sidecar's training state (``{}`` if there is none), e.g. ``optimizer``, ``rng``, ``loader``.
        step: the training step it was saved at, when known.
        path: the weights file.
    """
    model: dict[str, Tensor]
    state: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    path: Path | None = None


def sidecar_path(path: str | Path) -> Path:
    """The training-state file that goes with the weights file ``path``
    (``x.safetensors`` -> ``x.state.safetensors``)."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + ".state.safetensors")


def legacy_sidecar_path(path: str | Path) -> Path:
    """The ``torch.save`` training-state file of runs written before :func:`sidecar_path`'s format
    (``x.safetensors`` -> ``x.state.pt``), read with ``weights_only=True`` when the new one is absent."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + ".state.pt")


def deterministic_safetensors(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """``safetensors.torch.save(tensors, metadata)`` with the metadata in sorted key order, so that equal
    inputs give equal bytes in every process (the library writes the metadata in hash order, which varies
    from one process to the next). Tensor entries keep the library's order (by alignment, then name); the
    header is padded with spaces to a multiple of 8 bytes, as the library does."""
    blob = safetensors_bytes(dict(tensors), metadata=dict(metadata))
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + length])
    header.pop("__metadata__", None)
    text = json.dumps({"__metadata__": dict(sorted(metadata.items())), **header}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + length:]


_TAGS = ("__tensor__", "__tuple__", "__pairs__")


def encode_state(state: Any) -> tuple[Any, dict[str, Tensor]]:
    """A training state (nested dicts, lists and tuples of tensors, numbers, strings, booleans and ``None``,
    e.g. an optimizer's ``state_dict()``) as a JSON-ready skeleton and the tensors it refers to.

    Dicts with string keys become JSON objects; tensors ``{"__tensor__": name}`` (``name`` numbers them in
    the order of a traversal with sorted keys); tuples ``{"__tuple__": [...]}``; dicts with other keys (an
    optimizer's parameter indices) ``{"__pairs__": [[key, value], ...]}`` sorted by key. Floats are written
    by ``repr`` and read back exactly (``NaN`` and ``Infinity`` included). :func:`decode_state` inverts it.
    """
    tensors: dict[str, Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = value.detach().to("cpu", copy=True).contiguous()
            return {"__tensor__": name}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            keys = list(value)
            if all(isinstance(k, str) for k in keys) and not any(k in _TAGS for k in keys):
                return {k: encode(value[k], f"{where}.{k}") for k in sorted(keys)}
            if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys):
                raise TypeError(f"cannot save the training state: {where} has keys other than strings and integers")
            order = sorted(keys, key=lambda k: (isinstance(k, str), k))
            return {"__pairs__": [[k, encode(value[k], f"{where}[{k!r}]")] for k in order]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot save the training state: {where} is a {type(value).__name__}; only tensors, "
                        f"numbers, strings, booleans, None, lists, tuples and dicts can be saved")

    return encode(state, "state"), tensors


def decode_state(skeleton: Any, tensors: Mapping[str, Tensor]) -> Any:
    """The state that :func:`encode_state` encoded as ``skeleton`` and ``tensors``."""
    if isinstance(skeleton, list):
        return [decode_state(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__tensor__"}:
            return tensors[skeleton["__tensor__"]]
        if set(skeleton) == {"__tuple__"}:
            return tuple(decode_state(v, tensors) for v in skeleton["__tuple__"])
        if set(skeleton) == {"__pairs__"}:
            return {k: decode_state(v, tensors) for k, v in skeleton["__pairs__"]}
        return {k: decode_state(v, tensors) for k, v in skeleton.items()}
    return skeleton


def save_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a training state (see :func:`encode_state`) to ``path`` atomically as safetensors: the tensors,
    and the structure as key-sorted JSON in the metadata under ``"state"``; byte-for-byte reproducible."""
    skeleton, tensors = encode_state(dict(state))
    metadata = {"format": "landscape-state-1", "state": json.dumps(skeleton, sort_keys=True, separators=(",", ":"))}
    atomic_write_bytes(path, deterministic_safetensors(tensors, metadata))
    return Path(path)


def load_state(path: str | Path) -> dict[str, Any]:
    """The training state that :func:`save_state` wrote to ``path``, its tensors on the CPU.

    Raises:
        CheckpointError: the file is corrupt or not a training-state file.
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = decode_state(json.loads(metadata["state"]), tensors)
    except Exception as e:  # safetensors' own errors, a missing or malformed "state", an unknown tensor name
        raise CheckpointError(f"training-state file {path} is corrupt or not a landscape training state: "
                              f"{type(e).__name__}: {e}; delete it and its weights file to resume from an earlier "
                              f"checkpoint") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"training-state file {path} does not hold a dictionary")
    return state


def save_checkpoint(path: str | Path, model_state: Mapping[str, Tensor], state: Mapping[str, Any] | None = None,
                    *, step: int | None = None) -> Path:
    """Save a model state dict as safetensors at ``path`` and, if given, ``state`` (optimizer, RNG, loader,
    callbacks: see :func:`encode_state`) beside it (:func:`sidecar_path`); both atomically, the sidecar
    first, both byte-for-byte reproducible."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model_state.items()}
    if state is not None:
        save_state(sidecar_path(path), {"step": step, **state})
    metadata = {"format": "landscape-checkpoint-1"} | ({} if step is None else {"step": str(step)})
    atomic_write_bytes(path, deterministic_safetensors(tensors, metadata))
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None, *,
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint without unpickling code, and load it into ``model`` if one is given.

    ``path`` is a ``.safetensors`` file (with its training-state sidecar if present, :func:`sidecar_path`, or
    the ``.state.pt`` of older runs) or a ``.pt``/``.pth`` file holding a state dict (or a dict with the state
    dict under ``state_dict``, ``model_state_dict`` or ``model``), read with ``torch.load(weights_only=True)``.
    The weights go to ``map_location``; the training state stays on the CPU (an optimizer's
    ``load_state_dict`` moves it to its parameters' device, and RNG states must be CPU tensors). The step is
    the one saved with the checkpoint (safetensors metadata or sidecar, or an int ``"step"`` beside the state
    dict of a ``.pt`` file, ``{"model": ..., "step": 300}``), else the number in the file name
    (:func:`step_in_name`, ``step_300.pt``), else ``None``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt or not a checkpoint, or the state does not fit ``model``
            (the missing, unexpected and mis-shaped keys are named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    step = None
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device=str(map_location)) as f:
                weights = {k: f.get_tensor(k) for k in f.keys()}
                step_text = (f.metadata() or {}).get("step")
        except Exception as e:  # safetensors raises its own error types for corrupt headers and data
            raise CheckpointError(f"checkpoint {path} is corrupt or not a safetensors file: {e}") from e
        step = None if step_text is None else int(step_text)
    else:
        loaded = _torch_load(path, map_location)
        weights, step = _state_dict_in(loaded, path), _saved_step(loaded)
    state: dict[str, Any] = {}
    side, legacy = sidecar_path(path), legacy_sidecar_path(path)
    if path.suffix == ".safetensors" and side.is_file():
        state = load_state(side)
    elif path.suffix == ".safetensors" and legacy.is_file():
        state = _torch_load(legacy, "cpu")
        if not isinstance(state, dict):
            raise CheckpointError(f"training-state file {legacy} does not hold a dictionary")
    step = state.pop("step", step)
    if step is None:
        step = step_in_name(path)
    if model is not None:
        load_model_state(model, weights, source=str(path))
    return Checkpoint(model=weights, state=state, step=step, path=path)


def step_in_name(path: str | Path) -> int | None:
    """The step a checkpoint's file name gives: the number after the last ``step`` in its stem (``step_300.pt``,
    ``ckpt-step300.pth``, ``step_000300.safetensors``), or ``None``."""
    found = re.findall(r"step[_-]?(\d+)", Path(path).stem, flags=re.IGNORECASE)
    return int(found[-1]) if found else None


def checkpoint_step(path: str | Path) -> int | None:
    """The step of the checkpoint at ``path`` as :func:`load_checkpoint` reads it (the safetensors metadata, a
    ``"step"`` saved beside the state dict of a ``.pt`` file, else the file name), without reading the weights
    of a safetensors file; ``None`` when unknown."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                step_text = (f.metadata() or {}).get("step")
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"checkpoint {path} is corrupt or not a safetensors file: {e}") from e
        step = None if step_text is None else int(step_text)
    elif path.is_file():
        try:
            step = _saved_step(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
        except Exception:   # not a zip-format file (mmap needs one): read it as load_checkpoint does
            step = _saved_step(_torch_load(path, "cpu"))
    else:
        raise FileNotFoundError(f"no checkpoint file {path}")
    return step if step is not None else step_in_name(path)


def _saved_step(obj: Any) -> int | None:
    """``obj["step"]`` of a dict that wraps a state dict (``{"model": ..., "step": 300}``), as an int, or ``None``."""
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), dict) for k in ("state_dict", "model_state_dict",
                                                                                    "model")):
        return None
    step = obj.get("step")
    if isinstance(step, Tensor) and step.numel() == 1 and not step.is_floating_point():
        step = int(step)
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def load_model_state(model: nn.Module, state: Mapping[str, Tensor], *, source: str = "the state dict") -> None:
    """``model.load_state_dict(state)`` after checking that the keys and shapes match exactly.

    Raises:
        CheckpointError: naming every missing, unexpected and mis-shaped key.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} (saved {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
                 for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or misshaped:
        parts = [f"{label}: {', '.join(keys)}" for label, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)) if keys]
        raise CheckpointError(f"{source} does not fit the {type(model).__name__} model; " + "; ".join(parts))
    model.load_state_dict(dict(state))


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        raise CheckpointError(f"cannot load {path} safely (weights_only=True): the file is corrupt, truncated, "
                              f"or holds pickled objects other than tensors and plain data: {e}") from e


def _state_dict_in(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return dict(obj)
    raise CheckpointError(f"{path} holds no state dict (a dictionary from names to tensors)")


class Run:
    """A run directory (see the module docstring): config, checkpoints and the metrics log.

    Creating a ``Run`` touches nothing on disk; files and folders appear when first written.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def read_config(self) -> dict[str, Any] | None:
        """The run's configuration, or ``None`` when none has been written.

        Raises:
            RunConfigError: config.json is not UTF-8, not JSON, or not a JSON object.
        """
        if not self.config_path.is_file():
            return None
        try:
            return read_json(self.config_path, dict, fix="it is not a landscape run's config.json; repair it, or "
                                                      "delete the run directory to start over")
        except FileFormatError as e:
            raise RunConfigError(str(e)) from None

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.json`` atomically."""
        atomic_write_json(self.config_path, dict(config))

    def checkpoint_path(self, step: int) -> Path:
        """The weights file of the checkpoint at ``step``."""
        return self.checkpoints_dir / f"step_{step:06d}.safetensors"

    def checkpoint_steps(self) -> list[int]:
        """Steps with a saved checkpoint, ascending."""
        if not self.checkpoints_dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.checkpoints_dir.iterdir() if (m := _STEP_FILE.match(p.name)))

    def latest_step(self) -> int | None:
        """The last step with a checkpoint, or ``None``."""
        steps = self.checkpoint_steps()
        return steps[-1] if steps else None

    def save_checkpoint(self, step: int, model_state: Mapping[str, Tensor],
                        state: Mapping[str, Any] | None = None) -> Path:
        """Save the checkpoint of ``step`` (see :func:`save_checkpoint`)."""
        return save_checkpoint(self.checkpoint_path(step), model_state, state, step=step)

    def load_checkpoint(self, step: int | None = None, model: nn.Module | None = None, *,
                        map_location: str | torch.device = "cpu") -> Checkpoint:
        """Load the checkpoint of ``step`` (the latest if ``None``), into ``model`` if given."""
        steps = self.checkpoint_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"run {self.path} has no checkpoints")
            step = steps[-1]
        if step not in steps:
            raise FileNotFoundError(f"run {self.path} has no checkpoint at step {step}; it has steps {steps}")
        return load_checkpoint(self.checkpoint_path(step), model, map_location=map_location)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON object, normally with ``step`` and ``instrument``) to metrics.jsonl."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(dict(record)) + "\n")
            f.flush()

    def metrics(self, instrument: str | None = None) -> list[dict[str, Any]]:
        """The records of metrics.jsonl in order (only those of ``instrument`` if given).

        A last line cut short by a crash is skipped; a malformed line elsewhere is an error.

        Raises:
            FileFormatError: the file is not UTF-8, or a line holds JSON other than an object. ValueError: a
                line before the last is not JSON.
        """
        if not self.metrics_path.is_file():
            return []
        try:
            lines = self.metrics_path.read_bytes().decode("utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise FileFormatError(f"{self.metrics_path} is not UTF-8 text (byte {e.start}): it was not written by "
                                  f"landscape; move it away") from None
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                if number == len(lines):
                    break
                raise ValueError(f"{self.metrics_path}, line {number}, is not valid JSON: {e}") from e
            if not isinstance(record, dict):
                raise FileFormatError(f"{self.metrics_path}, line {number}, holds a JSON {_json_kind(record)}, not "
                                      f"a record (a JSON object): it was not written by landscape; move it away")
            records.append(record)
        return [r for r in records if instrument is None or r.get("instrument") == instrument]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop the records with ``step > after_step`` (atomically): on resuming from the checkpoint of
        ``after_step``, what was logged after it is recomputed, so nothing is logged twice or lost."""
        if not self.metrics_path.is_file():
            return
        kept = [r for r in self.metrics() if not (isinstance(r.get("step"), int) and r["step"] > after_step)]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())
