"""Curvature tracking inside other people's training loops: one module per framework, each an optional extra.

* :mod:`~landscape.integrations.lightning`: a PyTorch Lightning ``Callback`` (``pip install "landscape[lightning]"``);
* :mod:`~landscape.integrations.huggingface`: a ``transformers`` ``TrainerCallback`` (``pip install "landscape[hf]"``);
* :mod:`~landscape.integrations.tensorboard`: a TensorBoard sink for any tracker
  (``pip install "landscape[tensorboard]"``).

Each callback holds a :class:`~landscape.training.tracker.Tracker` and calls it on the framework's own hook;
the tracker measures in eval mode and restores the model's modes, ``.grad`` and random states, so the
training is the same with or without it. Nothing here is imported by ``import landscape``; importing a
module whose framework is missing raises an ``ImportError`` that names the extra to install.
"""
