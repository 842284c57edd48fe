"""Tracker records as TensorBoard scalars and spectral-density histograms.

    from landscape.integrations.tensorboard import TensorBoardSink
    tracker = Tracker(loss_fn, (x, y), instruments=("top_eigen", "density"), run="out",
                      sinks=[TensorBoardSink("out/tb")])

Every number of a record becomes a scalar named as in :func:`landscape.training.sinks.scalar_metrics`
(``landscape/top_eigen/eigenvalues_0``, ...) at the record's step. A ``density`` record also becomes a
histogram, ``landscape/density/eigenvalues``: the SLQ density as estimated eigenvalue counts per bin,

    count(bin) = dim * (1/runs) * sum_{r,k: theta_rk in bin} w_rk,

over ``bins`` equal bins between the smallest and largest node (counts sum to the operator's dimension).
The records still go to the tracker's ``metrics.jsonl`` (its ``run``), which ``landscape plot`` reads.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from landscape.integrations.extras import require
from landscape.training.sinks import record_tag, scalar_metrics

SummaryWriter = require("torch.utils.tensorboard", "tensorboard").SummaryWriter


class TensorBoardSink:
    """A :class:`~landscape.training.sinks.Sink` writing to a ``SummaryWriter`` (or a new one on ``log_dir``).

    Args:
        writer: a ``SummaryWriter`` of ``torch.utils.tensorboard`` or ``tensorboardX`` (say the
            ``experiment`` of Lightning's ``TensorBoardLogger``), or a directory for a new one.
        prefix: first part of every tag.
        bins: bins of the density histogram.
    """

    def __init__(self, writer: SummaryWriter | str | Path, *, prefix: str = "landscape", bins: int = 50):
        if bins < 1:
            raise ValueError(f"bins must be positive, got {bins}")
        if isinstance(writer, (str, Path)):
            writer = SummaryWriter(log_dir=str(writer))
        elif not all(hasattr(writer, method) for method in ("add_scalar", "add_histogram_raw", "flush")):
            raise TypeError(f"writer must be a SummaryWriter (torch.utils.tensorboard or tensorboardX) or a "
                            f"directory, got {type(writer).__name__}")
        self.writer = writer
        self.prefix = prefix
        self.bins = bins

    def log(self, record: Mapping[str, Any]) -> None:
        step = int(record["step"])
        for tag, value in scalar_metrics(record, self.prefix).items():
            self.writer.add_scalar(tag, value, global_step=step)
        if "nodes" in record and "weights" in record:
            self._histogram(record, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def _histogram(self, record: Mapping[str, Any], step: int) -> None:
        nodes = np.asarray(record["nodes"], dtype=np.float64)
        weights = np.asarray(record["weights"], dtype=np.float64)
        counts_per_node = record["dim"] * weights / nodes.shape[0]   # estimated eigenvalues at each node
        lo, hi = float(nodes.min()), float(nodes.max())
        if hi <= lo:   # one node: a bin of width 1 around it
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(nodes.ravel(), bins=self.bins, range=(lo, hi), weights=counts_per_node.ravel())
        total = float(counts_per_node.sum())
        self.writer.add_histogram_raw(f"{record_tag(record, self.prefix)}/eigenvalues", min=lo, max=hi, num=total,
                                      sum=float((counts_per_node * nodes).sum()),
                                      sum_squares=float((counts_per_node * nodes ** 2).sum()),
                                      bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(),
                                      global_step=step)
