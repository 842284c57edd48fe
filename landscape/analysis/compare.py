"""Ticket versus dense: accuracy, curvature and connectivity of lottery tickets, their controls and the dense net.

For a dense run and an IMP experiment (:mod:`landscape.pruning.imp`), every trained network (the dense one,
each round's ticket, each trained control) is measured on the same footing:

* test and train loss and accuracy (:func:`landscape.training.evaluation.evaluate`);
* the curvature profile of :mod:`landscape.analysis.curvature` on the first ``samples`` training samples, with the
  Hessian ``H`` and the empirical Fisher restricted to the surviving coordinates (the principal submatrix
  ``P^T H P`` on the weights the mask keeps, biases included), so that a ticket's curvature is that of the
  function it can still change: extreme eigenvalues, trace, spectral density, saddle index, escape dimensions,
  flatness (Frobenius norm, Occam term, effective dimensionality) and the Fisher trace; and the traces per
  surviving weight ``tr(H) / n`` and ``tr(F) / n``, mean curvatures comparable across densities;
* the barrier on the straight path from the dense minimum to the network
  (:func:`landscape.connectivity.interpolation.interpolate`): the test-error barrier of Frankle et al. (2020), ``max_α
  E(α) − ½ (E(0) + E(1))`` (a fraction), and the train-loss barrier by the same definition (nats). The path leaves the
  ticket's subspace (the dense endpoint is dense), so it asks whether the ticket lies in the dense minimum's basin;
* the instability of the network itself (:func:`landscape.connectivity.instability.instability`): two copies from the
  rewind point (the ticket rewound and masked, the dense net at the same step), trained on other data
  orders, and the test-error barrier between them; near zero means stable to SGD noise, which Frankle
  et al. (2020) found necessary for matching tickets;
* stability to pruning (the ticket's distance to the dense network, from the IMP summary).

The results form one row per network (:data:`ROW_KEYS`), written to ``comparison.json`` and a markdown
table ``comparison.md`` in the output directory, with the spectral densities in ``densities/`` and the
figures in ``figures/``. Rows already measured with the same settings are reused when run again.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.analysis.curvature import CURVATURE_KEYS, CurvatureSettings, curvature_batches, measure_curvature
from landscape.connectivity.instability import instability
from landscape.connectivity.interpolation import interpolate, load_run_checkpoint, save_npz
from landscape.foundation.devices import torch_device
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, read_json
from landscape.foundation.settings import setting
from landscape.linalg import SpectralDensity
from landscape.linalg.uncertainty import format_estimate
from landscape.pruning.imp import IMPResult, load_imp
from landscape.pruning.masks import density as density_of
from landscape.training import Hparams, Start
from landscape.training.evaluation import evaluate

ROW_KEYS = ("name", "kind", "round", "density", "test_accuracy", "test_loss", "train_accuracy", "train_loss",
            *CURVATURE_KEYS, "lambda_max", "lambda_min", "trace_per_weight", "fisher_trace_per_weight",
            "barrier_to_dense", "loss_barrier_to_dense", "instability", "instability_std", "stability_distance",
            "stability_relative", "seconds")
CURVATURE_MEASURES = {"lambda_max": "largest Hessian eigenvalue", "lambda_min": "smallest Hessian eigenvalue",
                      "trace_per_weight": "Hessian trace per surviving weight",
                      "saddle_index": "saddle index (fraction below -tol |λ|max)",
                      "fisher_trace_per_weight": "Fisher trace per surviving weight",
                      "effective_dim": "effective dimensionality",
                      "barrier_to_dense": "test-error barrier to dense (points of %)",
                      "instability": "instability (points of % test error)"}
PERCENTAGE_POINTS = {"barrier_to_dense": 100.0, "instability": 100.0}   # fractions drawn as in the table
_FORMAT = 2


@dataclass(frozen=True)
class CompareSettings(CurvatureSettings):
    """How much work each measurement gets (the CLI builds its options from these fields and help strings)."""
    eigenvalues: int = setting(3, "number of largest and of smallest Hessian eigenvalues")
    points: int = setting(11, "alpha values on each interpolation path, endpoints included")
    instability_replicates: int = setting(1, "pairs of copies per instability analysis (0: not measured)")
    controls: bool = setting(True, "measure the trained controls too, not only the tickets")


@dataclass(frozen=True)
class Comparison:
    """The measured rows (one dict per network, keys :data:`ROW_KEYS`), their spectral densities and where
    they were written."""
    dense_dir: Path
    imp: IMPResult
    out_dir: Path
    settings: CompareSettings
    rows: tuple[dict[str, Any], ...]
    densities: dict[str, SpectralDensity]

    def markdown(self) -> str:
        """The table in markdown: accuracies in %, barriers in percentage points of error; the saddle index
        with its total error, marked and explained below the table where unreliable."""
        header = ("| network | weights left | test acc. | λ_max | λ_min | tr(H)/n | saddle index | tr(F)/n "
                  "| barrier to dense | instability | distance to dense |")
        lines = [header, "|" + "---|" * (header.count("|") - 1)]
        for r in self.rows:
            lines.append("| " + " | ".join([
                r["name"], f"{100 * r['density']:.2f}%", _percent(r["test_accuracy"]), _number(r["lambda_max"]),
                _number(r["lambda_min"]), _number(r["trace_per_weight"]),
                format_estimate(r["saddle_index"], r["saddle_index_error"], r["saddle_index_reliable"], reason=None),
                _number(r["fisher_trace_per_weight"]),
                _points(r["barrier_to_dense"]), _points(r["instability"], r["instability_std"]),
                _number(r["stability_distance"])]) + " |")
        lines += ["", "Saddle index ± its total error (95% sampling error across SLQ runs plus the quadrature bound; "
                      "see the README, “What converged, tol and ± mean”)."]
        unreliable = [r for r in self.rows if not r["saddle_index_reliable"]]
        if unreliable:
            lines += ["", *(f"- Saddle index of {r['name']} unreliable: {r['saddle_index_reason']}."
                            for r in unreliable)]
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        """Write comparison.json, comparison.md, densities/*.npz and figures/*.png (atomically)."""
        self._save_rows()
        atomic_write_bytes(self.out_dir / "comparison.md", (
            f"# Ticket versus dense\n\nDense run `{self.dense_dir}`, IMP `{self.imp.path}` (rewind to step "
            f"{self.imp.rewind_step}, {self.imp.pruning.scope} pruning of {100 * self.imp.pruning.fraction:g}% "
            f"per round). Hessian on {self.settings.samples} training samples, restricted to the surviving "
            f"weights; barriers and instability in percentage points of test error.\n\n"
            + self.markdown()).encode())
        for name in self.densities:
            self._save_density(name)
        from landscape.plots.surface import save_figure  # matplotlib: only to draw

        for name, fig in self.figures().items():
            save_figure(fig, self.out_dir / "figures" / f"{name}.png")

    def _save_rows(self) -> None:
        atomic_write_json(self.out_dir / "comparison.json", {
            "format": _FORMAT, "dense": str(self.dense_dir), "imp": str(self.imp.path),
            "settings": dataclasses.asdict(self.settings), "rows": list(self.rows)})

    def _save_density(self, name: str) -> None:
        d = self.densities[name]
        save_npz(self.out_dir / "densities" / f"{name}.npz", {"nodes": d.nodes.numpy(), "weights": d.weights.numpy(),
                                                             "dim": np.array(d.dim), "matvecs": np.array(d.matvecs)})

    def figures(self) -> dict[str, Any]:
        """``{name: Figure}``: accuracy against density, spectral densities, curvature against density."""
        from landscape.plots.pruning import plot_accuracy_vs_density, plot_curvature_vs_density, plot_spectral_densities

        curves = {}
        for kind in ("ticket", *sorted({r["kind"] for r in self.rows} - {"dense", "ticket"})):
            points = sorted((r["density"], r["test_accuracy"]) for r in self.rows if r["kind"] == kind)
            if points:
                curves[kind] = ([p[0] for p in points], [p[1] for p in points])
        supermask = sorted((c.density, c.test.accuracy) for t in self.imp.tickets for n, c in t.controls.items()
                           if n == "supermask")
        if supermask:
            curves["supermask (untrained)"] = ([p[0] for p in supermask], [p[1] for p in supermask])
        dense = [r["test_accuracy"] for r in self.rows if r["kind"] == "dense"]
        spectra = {name: d for name, d in self.densities.items() if name == "dense" or name.startswith("ticket")}
        measures = {k: v for k, v in CURVATURE_MEASURES.items() if any(r.get(k) is not None for r in self.rows)}
        extremes = {r["name"]: r["top_eigenvalues"] + r["bottom_eigenvalues"] for r in self.rows
                    if r["name"] in spectra}
        replicates = self.settings.instability_replicates
        rows = [r | {"lambda_max_error": r["top_residuals"][0], "lambda_min_error": r["bottom_residuals"][0],
                     "trace_per_weight_error": r["trace_stderr"] / r["weights"],
                     "fisher_trace_per_weight_error": r["fisher_trace_stderr"] / r["weights"],
                     "effective_dim_error": r["effective_dim_stderr"], "instability_error": r["instability_std"]}
                for r in self.rows]
        note = ("One network per point (one seed). Bars: eigenvalues ± residual; Hessian trace and effective "
                "dimensionality ± 1 s.e. of the estimator; saddle index ± its total error (95%)"
                + (f"; instability ± s.d. over {replicates} pairs of copies" if replicates > 1 else "") + ".")
        test_samples = next((t.test.samples for t in self.imp.tickets), None)
        return {"accuracy_vs_density": plot_accuracy_vs_density(curves, dense=dense, test_samples=test_samples),
                "spectral_density": plot_spectral_densities(spectra, eigenvalues=extremes),
                "curvature_vs_density": plot_curvature_vs_density(rows, measures, scales=PERCENTAGE_POINTS,
                                                                  note=note)}


def compare(dense_dir: str | Path, imp_dir: str | Path, out_dir: str | Path | None = None, *,
            settings: CompareSettings = CompareSettings(), rounds: Sequence[int] | None = None,
            device: str | torch.device | None = None, progress: bool = True) -> Comparison:
    """Measure the dense run and the IMP experiment's tickets (and controls) and write the comparison.

    Args:
        dense_dir: the dense run directory (its latest checkpoint; often ``imp_dir/round_00``).
        imp_dir: an IMP directory (:func:`landscape.pruning.iterative_magnitude_pruning`).
        out_dir: where to write; ``imp_dir/compare`` by default.
        settings: the measurement budget (:class:`CompareSettings`).
        rounds: the rounds to measure (default: every finished one).
        device: where to compute (default: CUDA when available). progress: progress bars.

    Returns:
        the :class:`Comparison`, already saved.
    """
    dense_dir, imp = Path(dense_dir), load_imp(imp_dir)
    out_dir = Path(out_dir) if out_dir is not None else imp.path / "compare"
    device = torch_device(device)
    cached = _cached_rows(out_dir, settings)
    dense = load_run_checkpoint(dense_dir)
    networks = [("dense", "dense", 0, dense_dir)]
    for t in imp.tickets:
        if rounds is None or t.round in rounds:
            networks.append((f"ticket_r{t.round:02d}", "ticket", t.round, t.run_dir))
            networks += [(f"{c}_r{t.round:02d}", c, t.round, r.run_dir) for c, r in t.controls.items()
                         if settings.controls and r.run_dir is not None]
    rows, densities = [], {}
    for name, kind, n, run_dir in networks:
        if name in cached and (out_dir / "densities" / f"{name}.npz").is_file():
            rows.append(cached[name])
            densities[name] = _load_density(out_dir / "densities" / f"{name}.npz")
            continue
        row, densities[name] = _measure(name, kind, n, run_dir, dense, imp, out_dir, settings, device, progress)
        rows.append(row)
        partial = Comparison(dense_dir, imp, out_dir, settings, tuple(rows), densities)
        partial._save_density(name)   # measured rows survive an interruption
        partial._save_rows()
    result = Comparison(dense_dir, imp, out_dir, settings, tuple(rows), densities)
    result.save()
    return result


def _measure(name: str, kind: str, n: int, run_dir: Path, dense: Any, imp: IMPResult, out_dir: Path,
             settings: CompareSettings, device: torch.device, progress: bool) -> tuple[dict[str, Any], SpectralDensity]:
    """One row: evaluation, restricted curvature, barrier to dense, instability, stability to pruning."""
    began = time.perf_counter()
    net = load_run_checkpoint(run_dir)
    model = net.model.to(device)
    evaluations = {split: evaluate(model, net.loss_fn, batches) for split, batches in net.data.items()}
    row: dict[str, Any] = {key: None for key in ROW_KEYS}
    row |= {"name": name, "kind": kind, "round": n, "density": density_of(net.masks) if net.masks else 1.0,
            "test_accuracy": evaluations["test"].accuracy, "test_loss": evaluations["test"].loss,
            "train_accuracy": evaluations["train"].accuracy, "train_loss": evaluations["train"].loss}
    curvature, spectrum = measure_curvature(model.eval(), net.loss_fn,
                                            curvature_batches(net.data["train"], settings.samples), net.masks,
                                            settings, device)
    weights = curvature["weights"]
    row |= curvature | {"lambda_max": curvature["top_eigenvalues"][0],
                        "lambda_min": curvature["bottom_eigenvalues"][0],
                        "trace_per_weight": curvature["trace"] / weights,
                        "fisher_trace_per_weight": curvature["fisher_trace"] / weights}
    if kind != "dense":
        paths = interpolate(dense.model, model, net.loss_fn, net.data, settings.points,
                            bn_data=net.data["train"])
        row["barrier_to_dense"] = paths["test"].barrier_of("error").height
        row["loss_barrier_to_dense"] = paths["train"].barrier_of("loss").height
    if kind == "ticket":
        stability = imp.rounds[n].stability
        row["stability_distance"] = stability.distance if stability is not None else None
        row["stability_relative"] = stability.relative if stability is not None else None
    if settings.instability_replicates > 0 and kind in ("dense", "ticket"):
        k = imp.rewind_step
        start = None if kind == "dense" else Start.rewind(imp.rounds[0].run_dir, k)
        result = instability(Hparams.from_run(run_dir), [k], out_dir / "instability" / name,
                             replicates=settings.instability_replicates, masks=net.masks, start=start,
                             splits=("train", "test"), points=settings.points, device=device, progress=progress)
        row["instability"] = float(result.mean("test")[0])
        std = float(result.std("test")[0])
        row["instability_std"] = None if math.isnan(std) else std
    row["seconds"] = time.perf_counter() - began
    return row, spectrum


def _cached_rows(out_dir: Path, settings: CompareSettings) -> dict[str, dict[str, Any]]:
    """Rows of an earlier comparison in ``out_dir`` measured with the same settings, by name."""
    path = out_dir / "comparison.json"
    if not path.is_file():
        return {}
    saved = read_json(path, dict, fix="it is not a comparison written by landscape; move it away or write the "
                                      "comparison to another directory")
    if saved.get("format") != _FORMAT or saved.get("settings") != dataclasses.asdict(settings):
        return {}
    return {r["name"]: r for r in saved["rows"] if set(ROW_KEYS) <= set(r)}


def _load_density(path: Path) -> SpectralDensity:
    with np.load(path) as z:
        return SpectralDensity(nodes=torch.from_numpy(z["nodes"]), weights=torch.from_numpy(z["weights"]),
                               dim=int(z["dim"]), matvecs=int(z["matvecs"]))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _points(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _number(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" + ("" if stderr is None or stderr == 0 else f" ± {stderr:.2g}")
