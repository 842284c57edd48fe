"""A PyTorch Lightning callback that runs a tracker's curvature instruments during training.

    from landscape.integrations.lightning import LandscapeCallback
    tracker = Tracker(nn.functional.cross_entropy, (x_held, y_held), instruments=("top_eigen", "trace"),
                      schedule=100)
    trainer = L.Trainer(max_steps=1000, callbacks=[LandscapeCallback(tracker)])

At the start of training and after every optimizer step (``on_train_batch_end`` at ``trainer.global_step``;
with gradient accumulation the step advances once per accumulated batch, and a step is measured once), the
tracker measures the LightningModule itself, ``loss_fn(pl_module(inputs), targets)`` on its held batches,
when the step is on its schedule. The tracker puts the module in eval mode for the measurement and restores
its modes, ``.grad`` and the random states after, so the training is unchanged. Records go to the tracker's
run, or else to ``metrics.jsonl`` in ``trainer.log_dir`` (the logger's version directory; ``landscape plot``
reads it), and their numbers to every logger of the trainer through ``logger.log_metrics`` at the step
(:func:`landscape.training.sinks.scalar_metrics`). Only the global-zero process measures. The held data
follow the module to its device (CPU or GPU alike).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landscape.foundation.runs import Run
from landscape.integrations.extras import require
from landscape.training.sinks import scalar_metrics
from landscape.training.tracker import Tracker

pl = require("lightning.pytorch", "lightning")


class LoggerSink:
    """A :class:`~landscape.training.sinks.Sink` sending a record's numbers to Lightning loggers."""

    def __init__(self, loggers: Sequence[Any], prefix: str = "landscape"):
        self.loggers = list(loggers)
        self.prefix = prefix

    def log(self, record: Mapping[str, Any]) -> None:
        metrics = scalar_metrics(record, self.prefix)
        for logger in self.loggers:
            logger.log_metrics(metrics, step=int(record["step"]))


class LandscapeCallback(pl.Callback):
    """Runs ``tracker`` on its schedule during ``Trainer.fit`` (see the module docstring).

    Args:
        tracker: the instruments, held data, loss and schedule; its ``model`` is ignored (the LightningModule
            is measured).
        run: where ``metrics.jsonl`` goes when the tracker has no run of its own (default: ``trainer.log_dir``).
        log_metrics: also send the numbers to the trainer's loggers.
    """

    def __init__(self, tracker: Tracker, *, run: Run | str | Path | None = None, log_metrics: bool = True):
        super().__init__()
        self.tracker = tracker
        self.run = Run(run) if isinstance(run, (str, Path)) else run
        self.log_metrics = log_metrics
        self._last_step: int | None = None   # with gradient accumulation several batches end at one step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_step = None
        self._measure(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._measure(trainer, pl_module)

    def _measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.is_global_zero or not self.tracker.due(step):
            return
        self._last_step = step
        run = self.run if self.run is not None else Run(trainer.log_dir or trainer.default_root_dir)
        records = self.tracker(pl_module, step, run)
        if self.log_metrics and trainer.loggers:
            sink = LoggerSink(trainer.loggers)
            for record in records:
                sink.log(record)
