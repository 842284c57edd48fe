"""Reproducible, resumable training runs with checkpoints, callbacks, spawning, rewinding and masks.

One function, :func:`train`, runs :class:`~landscape.training.hparams.Hparams` in a run directory
(see :mod:`landscape.foundation.runs`). Step ``s`` means "after ``s`` optimizer updates"; step 0 is the
initialisation. At every step from the first to the last, in this order:

1. at evaluation steps, the loss and accuracy on the whole train and test splits (eval mode) are
   appended to metrics.jsonl as ``{"step", "instrument": "train" | "test", "loss", "accuracy", ...}``;
2. every callback is called as ``callback(model, step, run)``;
3. at checkpoint steps, the model, optimizer, RNG and loader state are saved;

then, unless it is the last step, one update is taken on the next batch.

Guarantees:

* **Reproducible**: the same hyperparameters give bit-identical weights on the same device, torch build
  and number of intra-op threads (``torch.get_num_threads()``, e.g. ``OMP_NUM_THREADS``; config.json
  records it and the device, and resuming with others warns). The initialisation depends on
  ``init_seed`` only; the batch order (and any training-time randomness such as dropout) on
  ``data_order_seed`` only. The caller's global RNG states are restored when ``train`` returns.
* **Resumable**: calling ``train`` again on a run directory that holds checkpoints continues from the
  latest one and ends bit-identical to a run that never stopped; metrics logged after that checkpoint
  are dropped first, so nothing is logged twice or lost, and callbacks are not called again for steps
  at or before it. Asking for ``checkpoint_steps`` the run lacks (say, new spawn points of a finished
  trunk) replays it, bit-identically, from the last checkpoint before the first missing one. A different
  configuration in the directory is an error (:class:`RunConfigError`).
* **Spawning** (instability analysis, Frankle et al. 2020): ``start=Start.spawn(parent_dir, k)``
  continues another run's model and optimizer from its step-``k`` checkpoint, with this run's
  ``data_order_seed`` for steps ``k`` to the end (the learning-rate schedule continues from ``k``).
* **Rewinding** (iterative magnitude pruning): ``start=Start.rewind(source, k)`` starts from a model
  state at step ``k`` (BatchNorm buffers included) with a fresh optimizer; the schedule and the batch
  stream continue from ``k``.
* **Masks**: with ``masks={name: 0/1 tensor}`` the masked weights are zeroed at the start, their
  gradients are zeroed before and the weights re-zeroed after every update, so they stay exactly zero
  and the optimizer state for them stays zero (SGD momentum and weight decay, Adam).

* **Byte for byte**: the same call writes the same bytes (config.json, checkpoints and their training
  state, and metrics.jsonl unless a callback logs wall times, as a tracker's ``seconds`` do), whether or not
  the run was interrupted and resumed (:mod:`landscape.foundation.runs`).
* **One writer**: ``train`` holds the run directory's lock (:mod:`landscape.foundation.locking`) while it writes; a
  second process training into the same directory is refused at once, naming the holder's process id.

Callbacks see the model in training mode holding the last step's gradients. A callback that must not
change the run (a measurement) should leave parameters, buffers, gradients and RNG states as it found
them, e.g. by working inside :func:`landscape.foundation.state.untouched`. A callback with ``state_dict()`` and
``load_state_dict(state)`` (a :class:`~landscape.training.tracker.Tracker`: its warm-start eigenvectors)
has that state saved with every checkpoint, under its ``state_key`` (else its place in ``callbacks``), and
restored when the run resumes, so that it continues exactly as it would have without the interruption.
"""
from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.data.batches import chunked
from landscape.data.loaders import BatchLoader
from landscape.data.registry import Dataset, load_dataset
from landscape.foundation.devices import torch_device
from landscape.foundation.locking import locked_directory
from landscape.foundation.progress import Progress, phase
from landscape.foundation.runs import (CheckpointError, Run, RunConfigError, load_model_state, save_checkpoint,
                                       sidecar_path)
from landscape.foundation.state import preserved_rng
from landscape.models.registry import build_model
from landscape.training.evaluation import Evaluation, evaluate
from landscape.training.hparams import Hparams

Callback = Callable[[nn.Module, int, Run], None]
_EVAL_BATCH = 1024
_SYNC_EVERY = 50   # steps between reads of the training loss on the host (divergence check, progress bar)
_CONFIG_FORMAT = 1


def at_steps(steps: int | Iterable[int], callback: Callback) -> Callback:
    """``callback`` restricted to chosen steps: every ``steps`` steps (0 included) if an int, else the listed steps."""
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"a callback period must be positive, got {steps}")
        period = steps
        return lambda model, step, run: callback(model, step, run) if step % period == 0 else None
    chosen = frozenset(int(s) for s in steps)
    return lambda model, step, run: callback(model, step, run) if step in chosen else None


@dataclass(frozen=True)
class Start:
    """Where a run begins when it does not begin from its own initialisation at step 0.

    Attributes:
        step: the step the run continues from (its learning-rate schedule and batch stream resume there).
        model_state: the model's state dict at that step (parameters and buffers).
        optimizer_state: an optimizer state dict to continue (spawning), or ``None`` for a fresh
            optimizer (rewinding).
        source: a human-readable origin, recorded in config.json.
    """
    step: int
    model_state: Mapping[str, Tensor]
    optimizer_state: Mapping[str, Any] | None = None
    source: str = "a model state"

    def __post_init__(self) -> None:
        if self.step < 0:
            raise ValueError(f"start step must be non-negative, got {self.step}")

    @classmethod
    def spawn(cls, run_dir: str | Path, step: int) -> Start:
        """Continue run ``run_dir`` from its checkpoint at ``step``: model and optimizer state."""
        checkpoint = Run(run_dir).load_checkpoint(step)
        if "optimizer" not in checkpoint.state:
            raise ValueError(f"the step-{step} checkpoint of {run_dir} has no optimizer state to spawn from; "
                             f"use Start.rewind for a fresh optimizer")
        return cls(step, checkpoint.model, checkpoint.state["optimizer"], source=f"spawn {run_dir}@{step}")

    @classmethod
    def rewind(cls, source: str | Path | nn.Module | Mapping[str, Tensor], step: int) -> Start:
        """Start at ``step`` from the model state of run directory ``source`` at that step, or from a
        model or state dict given directly; the optimizer starts fresh."""
        if isinstance(source, (str, Path)):
            state = Run(source).load_checkpoint(step).model
            origin = f"rewind {source}@{step}"
        else:
            state = source.state_dict() if isinstance(source, nn.Module) else source
            state = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
            origin = f"rewind to a given state at step {step}"
        return cls(step, state, None, source=origin)

    def identity(self) -> dict[str, Any]:
        """What distinguishes this start in config.json: step, optimizer or not, digest of the model state."""
        return {"step": self.step, "optimizer": self.optimizer_state is not None,
                "model_digest": tensors_digest(self.model_state), "source": self.source}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run: the run directory.
        model: the trained model (on the training device, in training mode).
        hparams: the hyperparameters.
        steps: the run's total number of steps.
        first_step: the step this call started from (0, the start step, or the checkpoint it resumed).
        resumed: whether this call continued from one of the run's checkpoints (interrupted, finished or replayed).
        train: loss and accuracy on the whole training split at the end.
        test: the same on the test split.
        seconds: wall time of this call.
    """
    run: Run
    model: nn.Module
    hparams: Hparams
    steps: int
    first_step: int
    resumed: bool
    train: Evaluation
    test: Evaluation
    seconds: float


def init_model(hparams: Hparams, dataset: Dataset | None = None) -> nn.Module:
    """The run's model at step 0, on the CPU in ``hparams.dtype``: built from the registry with the CPU RNG
    seeded by ``init_seed`` (the caller's RNG state is left untouched)."""
    dataset = dataset or load_dataset(hparams.data, **hparams.data_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(hparams.init_seed)
        model = build_model(hparams.model, dataset.input_shape, dataset.output_dim, **hparams.model_kwargs)
    return model.to(hparams.torch_dtype)


def load_model(run_dir: str | Path, step: int | None = None, *,
               device: str | torch.device = "cpu") -> nn.Module:
    """The model of run ``run_dir`` at checkpoint ``step`` (the latest if ``None``), in eval mode."""
    hparams = Hparams.from_run(run_dir)
    model = init_model(hparams)
    Run(run_dir).load_checkpoint(step, model)
    return model.to(device).eval()


def tensors_digest(tensors: Mapping[str, Tensor]) -> str:
    """A 16-hex-digit SHA-256 of names, dtypes, shapes and values of a tensor dictionary."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def train(hparams: Hparams, run_dir: str | Path, *, callbacks: Sequence[Callback] = (),
          masks: Mapping[str, Tensor] | None = None, start: Start | None = None,
          device: str | torch.device | None = None, progress: bool = True) -> TrainResult:
    """Train ``hparams`` in ``run_dir``, resuming from the run's latest checkpoint if it has one.

    Args:
        hparams: the hyperparameters (model, data, optimizer, schedule, length, seeds, checkpoints).
        run_dir: the run directory; created if needed.
        callbacks: ``fn(model, step, run)`` called at every step (restrict with :func:`at_steps`).
        masks: ``{parameter name: 0/1 tensor}``; masked weights stay exactly zero.
        start: begin from another state (:meth:`Start.spawn`, :meth:`Start.rewind`) instead of step 0.
        device: where to train; default CUDA when available, else CPU.
        progress: show a progress bar with the recent batch loss and accuracy and the last test loss and accuracy
            (:mod:`landscape.foundation.progress`), and at the end each callback's ``cost_summary()`` (a tracker's).

    Returns:
        a :class:`TrainResult` with the trained model and its final train and test evaluation.

    Raises:
        RunConfigError: ``run_dir`` holds a run with other hyperparameters, start or masks, or an unreadable
            config.json.
        landscape.foundation.runs.CheckpointError: a checkpoint is corrupt or does not fit the model, or the training
            state of the checkpoint to resume from is missing.
        landscape.foundation.locking.DirectoryLockedError: another process is writing ``run_dir``.
        NotADirectoryError: ``run_dir`` is a file or lies under one.
        ValueError: ``device`` is no device name or is absent from this machine.
        FloatingPointError: the training loss became NaN or infinite.
    """
    began = time.perf_counter()
    device = torch_device(device)
    session = _Session.build(hparams, Run(run_dir), masks, device)
    first = start.step if start is not None else 0
    if first > session.total:
        raise ValueError(f"start step {first} is beyond the run's {session.total} steps")
    late = [s for s in hparams.checkpoint_steps if s > session.total]
    if late:
        raise ValueError(f"checkpoint_steps {late} are beyond the run's {session.total} steps")

    with locked_directory(run_dir), preserved_rng():
        _claim(session.run, hparams, _config(hparams, session.total, start, session.masks, device))
        resumed_at = session.resume((s for s in hparams.checkpoint_steps if s >= first), callbacks)
        step = began_at = resumed_at if resumed_at is not None else session.begin(start)
        bar = Progress(f"training {session.run.path.name}", session.total, initial=step, enabled=progress)
        while True:
            if step != resumed_at:  # the resumed checkpoint's step has had its hooks
                edge = step in (first, session.total)
                session.hooks(step, callbacks, log_evaluation=edge, checkpoint=edge or step in hparams.checkpoint_steps)
            if step == session.total:
                break
            session.update(step)
            step += 1
            bar.update(1)
            if step % _SYNC_EVERY == 0 or step == session.total:   # the last step's hooks synchronise anyway
                session.check_finite()
                bar.set_postfix(session.progress)
        bar.set_postfix(session.progress)   # the last step's values, its test evaluation included
        bar.close()
    for callback in callbacks:   # a tracker says what its instruments cost
        summary = getattr(callback, "cost_summary", None)
        line = summary() if callable(summary) else None
        if line:
            phase(line, enabled=progress)
    final = {split: evaluate(session.model, session.loss_fn, data) for split, data in session.evaluation.items()}
    return TrainResult(run=session.run, model=session.model, hparams=hparams, steps=session.total,
                       first_step=began_at, resumed=resumed_at is not None, train=final["train"],
                       test=final["test"], seconds=time.perf_counter() - began)


@dataclass
class _Session:
    """The live objects of one training call and the three things done with them: set up the first step,
    run the hooks of a step, take an update."""
    hparams: Hparams
    run: Run
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: BatchLoader
    loss_fn: nn.Module
    masks: dict[str, Tensor]
    device: torch.device
    evaluation: dict[str, list[tuple[Tensor, Tensor]]]
    total: int
    shown: dict[str, float | Tensor] = field(default_factory=dict)
    nonfinite_step: Tensor | None = None   # first step with a non-finite training loss (-1: none), on the device
    nonfinite_loss: Tensor | None = None   # that loss

    @property
    def progress(self) -> dict[str, str]:
        """The progress bar's postfix: smoothed batch loss and accuracy, last test loss and accuracy."""
        order = ("loss", "acc", "test_loss", "test_acc")
        return {k: f"{float(self.shown[k]):.3f}" for k in order if k in self.shown}

    def check_finite(self) -> None:
        """Raise if a training loss since the last check was NaN or infinite, naming the first such step
        (one host synchronisation)."""
        step = -1 if self.nonfinite_step is None else int(self.nonfinite_step)
        if step >= 0:
            raise FloatingPointError(f"training loss is {float(self.nonfinite_loss)} at step {step} (lr "
                                     f"{self.hparams.lr_at(step):g}): lower the learning rate or add warm-up")

    @classmethod
    def build(cls, hparams: Hparams, run: Run, masks: Mapping[str, Tensor] | None, device: torch.device) -> _Session:
        dataset = load_dataset(hparams.data, **hparams.data_kwargs)
        train_split, test_split = (_to(split, device, hparams.torch_dtype) for split in (dataset.train, dataset.test))
        loader = BatchLoader(*train_split, hparams.batch_size, hparams.data_order_seed)
        model = init_model(hparams, dataset).to(device)
        return cls(hparams=hparams, run=run, model=model, optimizer=_optimizer(hparams, model), loader=loader,
                   loss_fn=dataset.loss_fn(), masks=_checked_masks(model, masks), device=device,
                   evaluation={"train": chunked(*train_split, _EVAL_BATCH), "test": chunked(*test_split, _EVAL_BATCH)},
                   total=hparams.total_steps(loader.batches_per_epoch))

    def resume(self, wanted: Iterable[int], callbacks: Sequence[Callback] = ()) -> int | None:
        """Restore model, optimizer, loader, RNG and the callbacks' states from the run's latest checkpoint, or
        from the last one before the first of the ``wanted`` checkpoint steps that is missing; its step, or
        ``None`` for none.

        Raises:
            CheckpointError: that checkpoint's training-state file is missing or incomplete (naming it and the
                fix).
        """
        saved = self.run.checkpoint_steps()
        missing = sorted(set(wanted) - set(saved))
        usable = [s for s in saved if not missing or s <= missing[0]]
        if not usable:
            return None
        step = usable[-1]
        checkpoint = self.run.load_checkpoint(step, self.model, map_location=self.device)
        lacking = [key for key in ("optimizer", "loader", "rng") if key not in checkpoint.state]
        if lacking:
            weights = self.run.checkpoint_path(step)
            earlier = f"from step {usable[-2]}" if len(usable) > 1 else "from step 0"
            raise CheckpointError(f"cannot resume {self.run.path} from step {step}: its training-state file "
                                  f"{sidecar_path(weights)} is missing or lacks {', '.join(lacking)}; restore it, or "
                                  f"delete {weights} to resume {earlier}")
        self.optimizer.load_state_dict(checkpoint.state["optimizer"])
        _configure(self.optimizer, self.hparams)
        self.loader.load_state_dict(checkpoint.state["loader"])
        _set_rng(checkpoint.state["rng"], self.device)
        states = checkpoint.state.get("callbacks", {})
        for key, callback in _stateful(callbacks).items():
            if key in states:
                callback.load_state_dict(states[key])
        self.run.truncate_metrics(after_step=step)
        return step

    def begin(self, start: Start | None) -> int:
        """Set up the first step of a new run (``start``'s state, masks, batch stream, RNG); that step."""
        self.run.truncate_metrics(after_step=-1)
        first = 0
        if start is not None:
            first = start.step
            load_model_state(self.model, start.model_state, source=start.source)
            if start.optimizer_state is not None:  # copied: loading aliases the tensors, training mutates them
                self.optimizer.load_state_dict(copy.deepcopy(dict(start.optimizer_state)))
                _configure(self.optimizer, self.hparams)
        if self.masks:
            _apply(self.model, self.masks)
            save_checkpoint(self.run.path / "masks.safetensors", {k: v.to(torch.uint8) for k, v in self.masks.items()})
        self.loader.position = first
        torch.manual_seed(int(np.random.SeedSequence([self.hparams.data_order_seed, first]).generate_state(1)[0]))
        return first

    def hooks(self, step: int, callbacks: Sequence[Callback], *, log_evaluation: bool, checkpoint: bool) -> None:
        """At ``step``: log the evaluation if asked or due, call the callbacks, save the checkpoint if asked or
        due (``eval_every``, ``checkpoint_every``)."""
        hp = self.hparams
        if log_evaluation or (hp.eval_every and step % hp.eval_every == 0):
            self.check_finite()
            for split, data in self.evaluation.items():
                result = evaluate(self.model, self.loss_fn, data)
                self.run.log({"step": step, "instrument": split, "loss": result.loss, "accuracy": result.accuracy,
                              "samples": result.samples})
                if split == "test":
                    self.shown["test_loss"] = result.loss
                    if result.accuracy is not None:
                        self.shown["test_acc"] = result.accuracy
        for callback in callbacks:
            callback(self.model, step, self.run)
        stateful = _stateful(callbacks)
        if checkpoint or (hp.checkpoint_every and step % hp.checkpoint_every == 0):
            self.check_finite()
            self.run.save_checkpoint(step, self.model.state_dict(), {
                "optimizer": self.optimizer.state_dict(), "loader": self.loader.state_dict(),
                "rng": _get_rng(self.device), "lr": hp.lr_at(step),
                **({"callbacks": {key: c.state_dict() for key, c in stateful.items()}} if stateful else {})})

    def update(self, step: int) -> None:
        """One optimizer update from ``step`` to ``step + 1``, masks kept at zero."""
        x, y = next(self.loader)
        lr = self.hparams.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(x)
        loss = self.loss_fn(out, y)
        self._watch(step, loss.detach())
        loss.backward()
        named = dict(self.model.named_parameters())
        for name, mask in self.masks.items():
            if named[name].grad is not None:
                named[name].grad.mul_(mask)
        self.optimizer.step()
        if self.masks:
            _apply(self.model, self.masks)
        self._smooth("loss", loss.detach())
        if out.ndim == 2 and y.ndim == 1:
            self._smooth("acc", (out.argmax(1) == y).to(loss.dtype).mean())

    def _watch(self, step: int, loss: Tensor) -> None:
        """Remember, on the device, the first step whose loss is not finite (:meth:`check_finite` reads it)."""
        if self.nonfinite_step is None:
            self.nonfinite_step = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self.nonfinite_loss = torch.zeros_like(loss)
        first = (self.nonfinite_step < 0) & ~torch.isfinite(loss)
        self.nonfinite_step = torch.where(first, step, self.nonfinite_step)
        self.nonfinite_loss = torch.where(first, loss, self.nonfinite_loss)

    def _smooth(self, name: str, value: Tensor) -> None:
        """Exponential moving average (over about 20 steps) shown in the progress bar, kept on the device."""
        self.shown[name] = value if name not in self.shown else 0.95 * self.shown[name] + 0.05 * value


def _stateful(callbacks: Sequence[Callback]) -> dict[str, Any]:
    """The callbacks with a ``state_dict()`` and ``load_state_dict(state)``, by the key their state is saved
    under: their ``state_key`` attribute if they have one (a tracker's name), else their place in the list."""
    keyed: dict[str, Any] = {}
    for index, callback in enumerate(callbacks):
        if callable(getattr(callback, "state_dict", None)) and callable(getattr(callback, "load_state_dict", None)):
            key = str(getattr(callback, "state_key", None) or index)
            keyed[key if key not in keyed else f"{key}#{index}"] = callback
    return keyed


def _optimizer(hparams: Hparams, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if hparams.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=hparams.lr)
    else:
        optimizer = torch.optim.Adam(params, lr=hparams.lr)
    _configure(optimizer, hparams)
    return optimizer


def _configure(optimizer: torch.optim.Optimizer, hparams: Hparams) -> None:
    """Set momentum and weight decay from ``hparams`` (a loaded optimizer state brings its own)."""
    for group in optimizer.param_groups:
        group["weight_decay"] = hparams.weight_decay
        if hparams.optimizer == "sgd":
            group["momentum"] = hparams.momentum
        else:
            group["betas"] = (hparams.momentum, 0.999)


def _checked_masks(model: nn.Module, masks: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
    named = dict(model.named_parameters())
    checked = {}
    for name, mask in (masks or {}).items():
        if name not in named:
            raise KeyError(f"mask for unknown parameter {name!r}; the model has {list(named)}")
        if tuple(mask.shape) != tuple(named[name].shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the parameter has "
                             f"{tuple(named[name].shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask for {name!r} has values other than 0 and 1")
        checked[name] = mask.detach().to(device=named[name].device, dtype=named[name].dtype)
    return checked


@torch.no_grad()
def _apply(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    named = dict(model.named_parameters())
    for name, mask in masks.items():
        named[name].mul_(mask)


def _to(split: tuple[Tensor, Tensor], device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return tuple(t.to(device, dtype if t.is_floating_point() else None) for t in split)  # type: ignore[return-value]




def _config(hparams: Hparams, total: int, start: Start | None, masks: Mapping[str, Tensor],
            device: torch.device) -> dict[str, Any]:
    return {"format": _CONFIG_FORMAT, "name": hparams.name, "hparams": hparams.to_dict(), "total_steps": total,
            "start": start.identity() if start is not None else None,
            "masks": ({"digest": tensors_digest({k: v.bool() for k, v in masks.items()}),
                       "density": float(sum(m.sum() for m in masks.values()) / sum(m.numel() for m in masks.values()))}
                      if masks else None),
            "device": str(device), "threads": torch.get_num_threads()}


def _claim(run: Run, hparams: Hparams, config: dict[str, Any]) -> None:
    """Write config.json for a new run, or check that an existing run is the same run."""
    existing = run.read_config()
    if existing is None:
        if run.checkpoint_steps():
            raise RunConfigError(f"{run.path} has checkpoints but no config.json; refusing to guess what it holds")
        run.write_config(config)
        return
    theirs = Hparams.from_config(existing, run.config_path).identity()
    mine = hparams.identity()
    differences = [f"{k}: {theirs.get(k)!r} in the run, {mine[k]!r} asked" for k in mine if theirs.get(k) != mine[k]]
    for key, fields in (("start", ("step", "optimizer", "model_digest")), ("masks", ("digest",))):
        a, b = existing.get(key) or {}, config.get(key) or {}
        if any(a.get(f) != b.get(f) for f in fields):
            differences.append(f"{key}: {existing.get(key)} in the run, {config.get(key)} asked")
    if differences:
        raise RunConfigError(f"{run.path} holds a different run ({'; '.join(differences)}); use another run "
                             f"directory, or delete this one to start over")
    changed = [f"{k} {existing.get(k)} -> {config[k]}" for k in ("device", "threads") if existing.get(k) != config[k]]
    if changed and run.checkpoint_steps():
        warnings.warn(f"continuing {run.path} with another {', '.join(changed)}: floating-point results depend on "
                      f"them, so the run will not be bit-identical to one that never stopped", stacklevel=3)


def _get_rng(device: torch.device) -> dict[str, Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng(state: Mapping[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
