"""A Hugging Face ``transformers.Trainer`` callback that runs a tracker's curvature instruments during training.

    from landscape.integrations.huggingface import LandscapeCallback
    callback = LandscapeCallback.for_causal_lm({"input_ids": held_ids}, instruments=("top_eigen", "trace"),
                                               schedule=100)
    Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()

At the start of training (``on_train_begin``) and after every optimizer step (``on_step_end`` at
``state.global_step``), when the step is on the tracker's schedule, the tracker measures the model the
Trainer passes to its callbacks, seen through ``wrap`` (for a causal LM, :class:`landscape.models.language.CausalLM`:
``input_ids -> logits``, with :func:`landscape.models.language.next_token_loss`, the shifted cross-entropy the model
computes itself when called with ``labels``). The model is put in eval mode for the measurement and its modes,
``.grad`` and the random states are restored after, so the training is unchanged. Records go to the
tracker's run, or else to ``metrics.jsonl`` in ``args.output_dir`` (``landscape plot`` reads it), and their
numbers to the Trainer's own log history (``trainer.state.log_history``, saved with its checkpoints), one
entry per record (:func:`landscape.training.sinks.scalar_metrics`). Only the main process measures.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape.foundation.runs import Run
from landscape.integrations.extras import require
from landscape.models.language import CausalLM, lm_batch, next_token_loss
from landscape.training.sinks import scalar_metrics
from landscape.training.tracker import Tracker

transformers = require("transformers", "hf")


class LogHistorySink:
    """A :class:`~landscape.training.sinks.Sink` appending a record's numbers to a ``TrainerState``'s
    ``log_history`` (as ``{"step": step, name: value, ...}``)."""

    def __init__(self, state: Any, prefix: str = "landscape"):
        self.state = state
        self.prefix = prefix

    def log(self, record: Mapping[str, Any]) -> None:
        self.state.log_history.append({"step": int(record["step"]), **scalar_metrics(record, self.prefix)})


class LandscapeCallback(transformers.TrainerCallback):
    """Runs ``tracker`` on its schedule during ``Trainer.train`` (see the module docstring).

    Args:
        tracker: the instruments, held data, loss and schedule, in the ``(inputs, targets)`` convention of
            ``loss_fn(wrap(model)(inputs), targets)``; its ``model`` is ignored.
        wrap: turns the Trainer's model into the module the tracker measures (``None``: the model itself).
        run: where ``metrics.jsonl`` goes when the tracker has no run of its own (default: ``args.output_dir``).
        log_history: also append the numbers to the Trainer's log history.
    """

    def __init__(self, tracker: Tracker, *, wrap: Callable[[nn.Module], nn.Module] | None = None,
                 run: Run | str | Path | None = None, log_history: bool = True):
        self.tracker = tracker
        self.wrap = wrap
        self.run = Run(run) if isinstance(run, (str, Path)) else run
        self.log_history = log_history

    @classmethod
    def for_causal_lm(cls, batches: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]], *,
                      log_history: bool = True, **tracker_kwargs: Any) -> LandscapeCallback:
        """A callback for a causal LM (``*ForCausalLM``): the held data are one dict batch or a list of them
        (``input_ids``, optional ``labels``; unpadded, see :func:`landscape.models.language.lm_batch`), the loss the
        model's next-token cross-entropy; ``tracker_kwargs`` as for :class:`Tracker` (``instruments``,
        ``schedule``, ``settings``, ``dtype``, ``sinks``, ``run``...)."""
        data = lm_batch(batches) if isinstance(batches, Mapping) else [lm_batch(b) for b in batches]
        tracker = Tracker(next_token_loss, data, **tracker_kwargs)
        return cls(tracker, wrap=CausalLM, log_history=log_history)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                       **kwargs: Any) -> None:
        self._measure(args, state, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                    **kwargs: Any) -> None:
        self._measure(args, state, model)

    def _measure(self, args: Any, state: Any, model: nn.Module | None) -> None:
        step = state.global_step
        if not state.is_world_process_zero or not self.tracker.due(step):
            return
        if model is None:
            raise ValueError("the Trainer passed no model to the callback; it needs Trainer(model=...)")
        run = self.run if self.run is not None else Run(args.output_dir)
        records = self.tracker(self.wrap(model) if self.wrap is not None else model, step, run)
        if self.log_history:
            sink = LogHistorySink(state)
            for record in records:
                sink.log(record)
