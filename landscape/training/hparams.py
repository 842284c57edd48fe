"""Hyperparameters of a training run: one typed, frozen dataclass with a help string per field.

The fields that change the trained weights form the run's identity: :attr:`Hparams.key` (canonical
JSON), :attr:`Hparams.digest` (its short hash) and :attr:`Hparams.name` (``model_data_digest``, the default
run-directory name). Bookkeeping fields (checkpoint and evaluation schedules) are marked
``identity=False`` in their metadata and may change between the calls that resume a run.

The CLI builds its ``landscape train`` options from these fields and their help strings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from landscape.foundation.runs import Run, RunConfigError
from landscape.foundation.settings import Settings, setting

_LENGTH = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")
OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Hparams(Settings):
    """Everything that determines a training run (the defaults train ``cnn1d`` on MNIST-1D to about 94% test
    accuracy in 3000 SGD steps)."""

    model: str = setting("cnn1d", "architecture from the model registry (see `landscape list`)")
    model_kwargs: dict[str, Any] = setting({}, "keyword arguments of the model factory, e.g. batchnorm=true "
                                   "widths=[64,64] on the command line")
    data: str = setting("mnist1d", "data set from the data registry (see `landscape list`)")
    data_kwargs: dict[str, Any] = setting({}, "keyword arguments of the data set factory, e.g. noise=0.1")
    batch_size: int = setting(100, "samples per training step; an epoch is floor(train size / batch size) steps")
    steps: str = setting("3000it", "training length: iterations as '3000it' or epochs as '10ep'")
    optimizer: str = setting("sgd", "'sgd' (heavy-ball momentum) or 'adam' (torch.optim.Adam, L2 weight decay)")
    lr: float = setting(0.05, "peak learning rate")
    momentum: float = setting(0.9, "SGD momentum; for adam, beta1 (beta2 is 0.999)")
    weight_decay: float = setting(5e-4, "L2 penalty coefficient, applied to every parameter")
    warmup_steps: int = setting(0, "linear learning-rate warm-up: update s < warmup uses lr * (s + 1) / warmup")
    milestones: tuple[int, ...] = setting((), "steps at which the learning rate is multiplied by gamma")
    gamma: float = setting(0.1, "learning-rate factor applied at each milestone")
    init_seed: int = setting(0, "seed of the weight initialisation (nothing else)")
    data_order_seed: int = setting(0, "seed of the order of training batches and of training-time randomness "
                                     "(e.g. dropout); independent of init_seed")
    dtype: str = setting("float32", "floating-point type of the model and data: float32 or float64")
    checkpoint_steps: tuple[int, ...] = setting((0,), "steps to checkpoint (the first and the last step always are)",
                                               identity=False)
    checkpoint_every: int = setting(1000, "also checkpoint every this many steps, for resuming (0: never)",
                                   identity=False)
    eval_every: int = setting(100, "log train and test loss and accuracy every this many steps (0: first and last "
                                  "step only)", identity=False)

    def __post_init__(self) -> None:
        self.check_types()
        for name in ("model_kwargs", "data_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"{name} must be a dict with string keys, got {value!r}")
            try:
                json.dumps(value)
            except TypeError as e:
                raise TypeError(f"{name} must be JSON-serialisable (numbers, strings, lists, dicts): {e}") from e
            object.__setattr__(self, name, dict(value))
        for name in ("milestones", "checkpoint_steps"):
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))
        self.length()  # validates the format
        problems = [msg for bad, msg in (
            (self.optimizer not in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.dtype not in DTYPES, f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}"),
            (self.batch_size < 1, f"batch_size must be positive, got {self.batch_size}"),
            (not self.lr > 0, f"lr must be positive, got {self.lr}"),
            (not 0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay < 0, f"weight_decay must be non-negative, got {self.weight_decay}"),
            (self.warmup_steps < 0, f"warmup_steps must be non-negative, got {self.warmup_steps}"),
            (list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones),
             f"milestones must be increasing positive steps, got {self.milestones}"),
            (not self.gamma > 0, f"gamma must be positive, got {self.gamma}"),
            (self.init_seed < 0 or self.data_order_seed < 0, "seeds must be non-negative"),
            (any(s < 0 for s in self.checkpoint_steps), f"checkpoint_steps must be >= 0, got {self.checkpoint_steps}"),
            (self.checkpoint_every < 0 or self.eval_every < 0, "checkpoint_every and eval_every must be >= 0"),
        ) if bad]
        if problems:
            raise ValueError("invalid hyperparameters: " + "; ".join(problems))

    def __hash__(self) -> int:
        return hash(self.key)

    def length(self) -> tuple[int, str]:
        """The training length as ``(count, unit)``, unit ``"it"`` (iterations) or ``"ep"`` (epochs)."""
        match = _LENGTH.match(self.steps)
        if match is None:
            raise ValueError(f"steps must look like '3000it' or '10ep', got {self.steps!r}")
        return int(match.group(1)), match.group(2)

    def total_steps(self, batches_per_epoch: int) -> int:
        """The number of optimizer updates of the run, given the batches in one epoch."""
        count, unit = self.length()
        return count if unit == "it" else count * batches_per_epoch

    def lr_at(self, step: int) -> float:
        """Learning rate of the update that takes step ``step`` to ``step + 1`` (warm-up, then milestones)."""
        factor = (step + 1) / self.warmup_steps if step < self.warmup_steps else 1.0
        return self.lr * factor * self.gamma ** sum(step >= m for m in self.milestones)

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype``."""
        return DTYPES[self.dtype]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hparams:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take their defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown hyperparameters {unknown}; known: {names}")
        return cls(**values)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Hparams:
        """The hyperparameters recorded in a run directory's config.json.

        Raises:
            FileNotFoundError: ``run_dir`` has no config.json.
            RunConfigError: config.json is unreadable (not UTF-8, not JSON, not an object) or its ``hparams``
                are missing or invalid; the message names the file.
        """
        run = Run(run_dir)
        config = run.read_config()
        if config is None:
            raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
        return cls.from_config(config, run.config_path)

    @classmethod
    def from_config(cls, config: dict[str, Any], path: str | Path) -> Hparams:
        """The hyperparameters under ``"hparams"`` in a run's configuration ``config``, read from ``path``.

        Raises:
            RunConfigError: they are missing, not an object, or invalid (naming ``path`` and the problem).
        """
        values = config.get("hparams")
        fix = "it is not the config.json of a landscape training run; repair it, or delete the run directory"
        if not isinstance(values, dict):
            raise RunConfigError(f"{path} has no 'hparams' object (it holds {values!r}): {fix}")
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as e:
            raise RunConfigError(f"{path}: {e}; {fix}") from None

    @property
    def key(self) -> str:
        """Canonical JSON of :meth:`identity`: equal keys, equal runs."""
        return json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """A stable 10-hex-digit hash of :attr:`key`."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:10]

    @property
    def name(self) -> str:
        """A short run name, ``<model>_<data>_<digest>``."""
        return f"{self.model}_{self.data}_{self.digest}"
