"""Training runs: ``evaluation`` (loss and accuracy over a data set), hyperparameters, the reproducible and resumable
trainer (spawning, rewinding, masks), and the curvature ``tracker`` with its ``sinks``."""
from landscape.training.hparams import Hparams
from landscape.training.trainer import (Callback, Start, TrainResult, at_steps, init_model, load_model,
                                        tensors_digest, train)

__all__ = ["Hparams", "Callback", "Start", "TrainResult", "at_steps", "init_model", "load_model",
           "tensors_digest", "train"]
