"""What :func:`landscape.analysis.analyze.analyze` measures and stores: its settings, the :class:`Analysis` it
returns, and the plain-data form of a spectral density in ``analysis.json``.

A module of its own so that the report (:mod:`landscape.analysis.report`) reads an analysis without importing the
code that measures one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.analysis.curvature import CURVATURE_KEYS, CurvatureSettings
from landscape.connectivity.interpolation import InterpolationResult
from landscape.foundation.settings import setting
from landscape.instruments.blocks import PARTITIONS
from landscape.linalg import SpectralDensity

CHECKPOINT_KEYS = ("key", "label", "path", "run", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                   *CURVATURE_KEYS, "density", "seconds")
PAIR_KEYS = ("key", "a", "b", "alphas", "train_loss", "train_error", "test_loss", "test_error", "barrier",
             "loss_barrier", "frankle_barrier")


@dataclass(frozen=True)
class AnalyzeSettings(CurvatureSettings):
    """How much work each measurement gets (the CLI builds its options from these fields and help strings)."""
    points: int = setting(11, "alpha values on each interpolation path between checkpoints, endpoints included")
    split: str = setting("train", "the split whose first `samples` samples the Hessian and Fisher are measured on: "
                                  "train or test (loss and accuracy are reported on both)", identity=False)
    blocks: str = setting("", "also measure per-block Hessian spectra (Zhang et al. 2024): layer, transformer or "
                              "parameter (empty: none)", identity=False)

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if self.blocks and self.blocks not in PARTITIONS:
            raise ValueError(f"blocks must be one of {', '.join(PARTITIONS)} (or empty), got {self.blocks!r}")


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyze` measured and wrote.

    Attributes:
        checkpoints: one dict per checkpoint (keys :data:`CHECKPOINT_KEYS`), in the order analysed.
        pairs: one dict per pair of consecutive checkpoints (keys :data:`PAIR_KEYS`).
        out_dir: where ``analysis.json``, ``report.md`` and ``figures/`` are. figures: ``{name: PNG path}``.
        computed: how many checkpoint and pair results this call computed (the rest came from the JSON).
        data: what the data are and which split was measured (printed by the CLI, stated in the report).
    """
    checkpoints: tuple[dict[str, Any], ...]
    pairs: tuple[dict[str, Any], ...]
    settings: AnalyzeSettings
    out_dir: Path
    figures: dict[str, Path]
    computed: int
    data: str = ""

    @property
    def json_path(self) -> Path:
        return self.out_dir / "analysis.json"

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    def densities(self) -> dict[str, SpectralDensity]:
        """``{checkpoint label: SpectralDensity}`` rebuilt from the stored nodes and weights."""
        return {c["label"]: density_from_json(c["density"]) for c in self.checkpoints}

    def paths(self) -> dict[str, InterpolationResult]:
        """``{"A → B": InterpolationResult}`` of the consecutive pairs, on the test split (the train split when the
        data have no test split)."""
        results = {}
        for p in self.pairs:
            split = "test" if p["test_loss"] is not None else "train"
            name = f"{p['a']} → {p['b']}"
            results[name] = InterpolationResult(alphas=np.asarray(p["alphas"]), loss=np.asarray(p[f"{split}_loss"]),
                                                error=None if p[f"{split}_error"] is None
                                                else np.asarray(p[f"{split}_error"]), name=name)
        return results


def density_to_json(d: SpectralDensity) -> dict[str, Any]:
    """A spectral density as plain data (nodes and weights are ``runs × steps`` lists)."""
    return {"nodes": d.nodes.tolist(), "weights": d.weights.tolist(), "dim": d.dim, "matvecs": d.matvecs}


def density_from_json(d: Mapping[str, Any]) -> SpectralDensity:
    """Inverse of :func:`density_to_json`."""
    return SpectralDensity(nodes=torch.tensor(d["nodes"], dtype=torch.float64),
                           weights=torch.tensor(d["weights"], dtype=torch.float64), dim=int(d["dim"]),
                           matvecs=int(d["matvecs"]))
