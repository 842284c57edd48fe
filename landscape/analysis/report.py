"""The figures and ``report.md`` of a checkpoint analysis (:mod:`landscape.analysis.analyze`).

``report.md`` states the settings, gives one table row per checkpoint (accuracy, extreme eigenvalues with
residuals, trace ± standard error, saddle index, escape dimensions, Fisher trace, flatness), one per pair of
consecutive checkpoints (barriers), and shows the figures inline by relative links, so the report renders
wherever the output directory is copied.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from landscape.analysis.results import Analysis
from landscape.foundation.runs import atomic_write_bytes
from landscape.instruments.blocks import BlockSpectra
from landscape.linalg.uncertainty import format_estimate

CAPTIONS = {
    "spectral_density": "Hessian spectral densities (SLQ, Gaussian-smoothed with the σ on the axis, log density "
                        "axis); bands ± one standard error across the SLQ runs; ticks at the foot: the extreme "
                        "eigenvalues from the eigen solves.",
    "eigenvalues": "Largest and smallest Hessian eigenvalues; error bars are the Lanczos residuals.",
    "measures": "Hessian trace, empirical-Fisher trace and effective dimensionality, ± one standard error; saddle "
                "index ± its total error (95% sampling error plus the quadrature bound), hollow where that error "
                "exceeds half the value (unreliable).",
    "block_spectra": "Per-block Hessian spectral densities of the last checkpoint (SLQ, or exact for small blocks; "
                     "red: the block's top eigenvalues), the measurement of Zhang et al. (2024).",
    "block_spectra_first": "The same for the first checkpoint.",
    "interpolation": "Test loss and error (train, for data without a test split) along the straight paths between "
                     "consecutive checkpoints.",
}


def draw_figures(analysis: Analysis) -> dict[str, Path]:
    """Write the analysis figures to ``out_dir/figures/*.png``; ``{name: path}``."""
    from landscape.plots.analysis import measure_series, plot_eigenvalues, plot_measures  # matplotlib: only to draw
    from landscape.plots.blocks import plot_block_spectra
    from landscape.plots.pruning import plot_spectral_densities
    from landscape.plots.surface import plot_interpolation, save_figure

    cps = analysis.checkpoints
    labels, steps = [c["label"] for c in cps], [c["step"] for c in cps]
    figures = {
        "spectral_density": plot_spectral_densities(
            analysis.densities(), reference=False,
            eigenvalues={c["label"]: c["top_eigenvalues"] + c["bottom_eigenvalues"] for c in cps}),
        "eigenvalues": plot_eigenvalues(labels, steps, [c["top_eigenvalues"] for c in cps],
                                        [c["top_residuals"] for c in cps], [c["bottom_eigenvalues"] for c in cps],
                                        [c["bottom_residuals"] for c in cps]),
        "measures": plot_measures(labels, steps, {"Hessian trace": measure_series(cps, "trace"),
                                                  "saddle index (fraction)": measure_series(cps, "saddle_index",
                                                                                            error="error"),
                                                  "empirical Fisher trace": measure_series(cps, "fisher_trace"),
                                                  "effective dimensionality": measure_series(cps, "effective_dim")},
                                  note="One network. Bars: Hessian trace and effective dimensionality ± 1 s.e. "
                                       "of the estimator; saddle index ± its total error (95%); hollow: "
                                       "unreliable. The Fisher trace is exact."),
    }
    with_blocks = [c for c in cps if c.get("blocks")]
    if with_blocks:
        figures["block_spectra"] = plot_block_spectra(BlockSpectra.from_dict(with_blocks[-1]["blocks"]["blocks"]),
                                                      title=f"Per-block Hessian spectra, {with_blocks[-1]['label']}")
    if len(with_blocks) > 1:
        figures["block_spectra_first"] = plot_block_spectra(
            BlockSpectra.from_dict(with_blocks[0]["blocks"]["blocks"]),
            title=f"Per-block Hessian spectra, {with_blocks[0]['label']}")
    if analysis.pairs:
        figures["interpolation"] = plot_interpolation(analysis.paths())
    return {name: save_figure(fig, analysis.out_dir / "figures" / f"{name}.png") for name, fig in figures.items()}


def render(analysis: Analysis, relative_to: str | Path | None = None, heading: str = "#") -> str:
    """The report's markdown; figure links are relative to ``relative_to`` (default the output directory)."""
    base = Path(relative_to) if relative_to is not None else analysis.out_dir
    s = analysis.settings
    lines = [f"{heading} Landscape analysis", "",
             f"Hessian of the mean loss on the first {s.samples} samples of the {s.split} split (restricted to the "
             f"weights a run's pruning mask keeps). Eigenvalues: {s.eigenvalues} at each end, relative tolerance "
             f"{s.eig_tol:g}; traces: XTrace with {s.trace_matvecs} products; density: SLQ, {s.density_runs} runs "
             f"of {s.density_steps} steps; saddle index: fraction of eigenvalues below −{s.saddle_tol:g}·|λ|max; "
             f"barriers: {s.points} points per path, height above the chord between the endpoints (Entezari "
             f"et al. 2022) of the test error (percentage points) and train loss (nats), and Frankle et al.'s "
             f"height above the endpoints' mean. Fisher: empirical, exact. Flatness: Occam term with δ = "
             f"{s.flatness_delta:g}, effective dimensionality with z = {s.flatness_z:g}.", "",
             "| checkpoint | test acc. | λ_max (± resid.) | λ_min (± resid.) | tr H | saddle index | escape dims "
             "| tr F | ‖H‖_F | Occam term | eff. dim. |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in analysis.checkpoints:
        lines.append("| " + " | ".join([
            c["label"], _percent(c["test_accuracy"]),
            f"{c['top_eigenvalues'][0]:.4g} ± {c['top_residuals'][0]:.1g}",
            f"{c['bottom_eigenvalues'][0]:.4g} ± {c['bottom_residuals'][0]:.1g}",
            f"{c['trace']:.4g} ± {c['trace_stderr']:.2g}",
            format_estimate(c["saddle_index"], c["saddle_index_error"], c["saddle_index_reliable"], reason=None),
            f"{c['escape_dimensions']}{'' if c['escape_complete'] else '+'}",
            f"{c['fisher_trace']:.4g}", *(f"{c[k]:.4g} ± {c[k + '_stderr']:.2g}"
                                          for k in ("frobenius", "occam", "effective_dim"))]) + " |")
    lines += ["", "Saddle index ± its total error: the 95% Student-t sampling error across SLQ runs plus the "
              "bound on the quadrature's own error (see the README, “What converged, tol and ± mean”). Escape "
              "dimensions: eigenvalues below −tol·|λ|max among the smallest computed; “+”: there may be more (all "
              "computed ones were below)."]
    unreliable = [c for c in analysis.checkpoints if not c["saddle_index_reliable"]]
    if unreliable:
        lines += ["", *(f"- Saddle index at {c['label']} unreliable: {c['saddle_index_reason']}." for c in unreliable)]
    if analysis.data:
        lines[2:2] = [f"Data: {analysis.data}", ""]
    lines += _block_table(analysis)
    if analysis.pairs:
        lines += ["", "| path | test-error barrier above the chord | Frankle barrier | train-loss barrier above "
                      "the chord |", "|---|---|---|---|"]
        lines += [f"| {p['a']} → {p['b']} | {_barrier(p, 'barrier')} | {_barrier(p, 'frankle_barrier')} "
                  f"| {p['loss_barrier']:.4g} |" for p in analysis.pairs]
        if any(_loss_only(p) for p in analysis.pairs):
            lines += ["", "Without class labels (regression, language models) the first two barriers are of the "
                          "test loss, in nats, not of the error."]
    for name, link in zip(analysis.figures, figure_links(analysis.figures, base)):
        lines += ["", link, "", CAPTIONS[name]]
    return "\n".join(lines) + "\n"


def write_report(analysis: Analysis) -> Analysis:
    """Draw the figures and write ``report.md``; the analysis with its figure paths."""
    analysis = dataclasses.replace(analysis, figures=draw_figures(analysis))
    atomic_write_bytes(analysis.report_path, render(analysis).encode())
    return analysis


def _block_table(analysis: Analysis) -> list[str]:
    """Per block, the largest eigenvalue and trace ± standard error at the first and last checkpoint measured."""
    with_blocks = [c for c in analysis.checkpoints if c.get("blocks")]
    if not with_blocks:
        return []
    shown = with_blocks if len(with_blocks) <= 2 else [with_blocks[0], with_blocks[-1]]
    partition = shown[-1]["blocks"]["partition"]
    lines = ["", f"Per-block Hessian spectra ({partition} blocks; the diagonal blocks H_bb, Zhang et al. 2024): "
             "largest eigenvalue and trace ± standard error (exact for blocks solved densely).", "",
             "| block | size | " + " | ".join(f"λ_max, {c['label']} | tr, {c['label']}" for c in shown) + " |",
             "|---|---|" + "---|---|" * len(shown)]
    by_name = [{b["name"]: b for b in c["blocks"]["blocks"]} for c in shown]
    for b in shown[-1]["blocks"]["blocks"]:
        cells = []
        for blocks in by_name:
            own = blocks.get(b["name"])
            if own is None:
                cells += ["–", "–"]
                continue
            converged = "" if own["converged"] else " (not converged)"
            error = "exact" if own["exact"] else f"± {own['trace_stderr']:.2g}"
            cells += [f"{own['eigenvalues'][0]:.4g}{converged}", f"{own['trace']:.4g} {error}"]
        lines.append(f"| {b['name']} | {b['dim']} | " + " | ".join(cells) + " |")
    return lines


def _loss_only(pair: Mapping[str, Any]) -> bool:
    """The pair's barriers are of the loss: its data have no error curve (no class labels)."""
    return pair["test_error"] is None and pair["train_error"] is None


def _barrier(pair: Mapping[str, Any], key: str) -> str:
    """An error barrier in percentage points, or a loss barrier in nats (:func:`_loss_only`)."""
    return f"{pair[key]:.4g} nats" if _loss_only(pair) else f"{100 * pair[key]:.2f} pp"


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def figure_links(figures: Mapping[str, Path], base: Path) -> list[str]:
    """Markdown image lines for ``figures``, linked relative to ``base``."""
    return [f"![{name}]({Path(os.path.relpath(path, base)).as_posix()})" for name, path in figures.items()]
