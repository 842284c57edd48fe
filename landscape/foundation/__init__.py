"""What every layer stands on: parameter spaces, run directories and checkpoints on disk, settings, registries.

Nothing here imports another part of ``landscape``: ``params`` (the flat parameter space of a model), ``state``
(leaving a model's mode and the RNGs as found), ``devices``, ``settings`` (frozen option dataclasses with help
strings), ``registry`` (named factories), ``runs`` (run directories, checkpoints, atomic writes), ``locking``
(one writer per output directory) and ``progress`` (phase titles and progress bars, a few lines in a log).
"""
