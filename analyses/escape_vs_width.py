"""Escape dimensions and width: widening opens descent directions, and wider students find bad minima less often.

Martinelli, Brea & Gerstner ("The Puzzling Success of Overparameterization: Lottery Tickets or Escape
Dimensions?") and Simsek et al. (2021, "Geometry of the loss landscape in overparameterized neural networks:
symmetries and invariances") argue that over-parameterisation helps because a minimum of a narrow network,
embedded in a wider one by splitting a neuron, becomes a saddle with negative-curvature "escape" directions,
and that the share of training runs ending in a bad (non-global) minimum falls as the student grows. On the
teacher-student regression data of :func:`landscape.data.load_dataset` ("teacher_student", a tanh teacher,
mean squared error, no label noise, 200 training samples; a teacher of 4 units on 4 inputs for (a), of 3 units on
2 inputs for (b)) we measure, with tanh students of one hidden layer:

(a) **escape dimensions**: a student narrower than the teacher is driven to a minimum (full-batch L-BFGS,
    :func:`landscape.instruments.minimize`), widened by ``m`` split neurons
    (:func:`landscape.instruments.widen`, function-preserving, split ratio 1/2), and
    :func:`landscape.instruments.escape_experiment` counts the Hessian eigenvalues below
    ``-tol * max|λ|`` of the narrow and the wide network and runs gradient descent from the wide point nudged
    along its escape directions (control: the narrow minimum nudged in a random direction); the loss along the
    most negative eigenvector is sliced (:func:`landscape.connectivity.surface.loss_surface`) against ``L + λ s² / 2``;
(b) **bad minima against width**: students of several widths from many random initialisations, each trained
    by full-batch L-BFGS on the training loss (to a gradient test or an iteration cap), then refined by
    Levenberg-Marquardt on ``∇L = 0`` with the exact dense float64 Hessian
    (:func:`critical_points.seek_critical_point`) and *certified* at the refined point: a minimum if
    ``‖∇L‖ ≤ gradient_tol`` and ``λ_min ≥ −eig_tol · max|λ|``, a saddle if critical with a more negative
    eigenvalue, uncertified otherwise. A run ends in a bad minimum if it is a certified minimum with loss above
    ``threshold * Var(targets)``; a student at least as wide as the teacher can reach loss 0 (the teacher
    itself), so such runs are stuck above the global minimum. Runs that reach the same function on the
    training inputs (outputs within ``dedup_tol · std(targets)`` RMS, whatever the permutation of units) reached
    the same minimum: the report gives the number of distinct bad minima beside the share of runs. Shares get
    binomial standard errors ``sqrt(p (1 - p) / n)``; the counts are repeated for thresholds from 1e-6 to 1e-2
    times the target variance.

Deviation from the papers: they follow gradient flow; full-batch gradient descent and Adam converge too slowly
here for many seeds on one shared CPU thread (on the 4-unit teacher, full-batch Adam at width 4 stalled near loss
1e-3 over 5000 steps where L-BFGS reaches 1e-15), so (b) trains with L-BFGS, a different algorithm with its own
basins.

Writes ``figures/escape_vs_width_bad_minima.png``, ``figures/escape_vs_width_escape.png``,
``figures/escape_vs_width.md`` and ``figures/escape_vs_width.json``. Resumable: every finished student and every
widening experiment is stored under ``--out`` and reused.

    python analyses/escape_vs_width.py            # full: 4.7 CPU-minutes on one thread (measured)
    python analyses/escape_vs_width.py --quick    # smoke test, seconds; writes under --out only
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.ticker import FuncFormatter
from torch import nn

from landscape.connectivity.surface import Directions, loss_surface
from landscape.data import Dataset, load_dataset
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, cached_json
from landscape.instruments import escape_dimensions, escape_experiment, minimize, widen
from landscape.models import build_model
from landscape.operators import Hessian
from landscape.plots.style import bounded_errors, new_figure, plain_ticks
from landscape.plots.surface import save_figure
from critical_points import FlatLoss, distinct, seek_critical_point
from reproduction import Progress, invocation


@dataclass(frozen=True)
class Setting:
    """Teacher data and student widths and seeds of (b), optimisation budgets, and the escape experiments of (a)
    with their own teacher data (a larger teacher, so that the narrow minima have clearly positive loss)."""
    data_kwargs: dict
    escape_data_kwargs: dict
    widths: tuple[int, ...]
    seeds: int
    max_iter: int
    threshold: float
    narrow_width: int
    narrow_seeds: int
    added: tuple[int, ...]
    escape_steps: int
    tol: float = 1e-3
    radius: float = 1e-2
    gradient_tol: float = 1e-6
    refine_tol: float = 1e-9
    eig_tol: float = 1e-6
    refine_iter: int = 100
    dedup_tol: float = 1e-4
    thresholds: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    gradient_bars: tuple[float, ...] = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9)


DATA = {"num_classes": None, "teacher_width": 3, "input_dim": 2, "train_size": 200, "test_size": 200,
        "activation": "tanh", "noise": 0.0}
ESCAPE_DATA = {**DATA, "teacher_width": 4, "input_dim": 4}
FULL = Setting(data_kwargs=DATA, escape_data_kwargs=ESCAPE_DATA, widths=(3, 4, 6, 12), seeds=30, max_iter=1000,
               threshold=1e-4, narrow_width=2, narrow_seeds=6, added=(1, 2, 3, 4, 6), escape_steps=1000)
QUICK = Setting(data_kwargs=DATA, escape_data_kwargs=ESCAPE_DATA, widths=(3, 6), seeds=3, max_iter=60,
                threshold=1e-4, narrow_width=2, narrow_seeds=1, added=(1, 2), escape_steps=30)
CLAIMS = """\
## What the papers found (their settings, not ours)

* Simsek et al. (2021), "Geometry of the loss landscape in overparameterized neural networks: symmetries and
  invariances" (ICML): every critical point of a narrow network embeds, by neuron splitting, into a wider one as
  a manifold of critical points; on it, most points are saddles (Fukumizu & Amari 2000), and the number of
  such symmetry-induced critical manifolds shrinks relative to the global-minimum manifold as the width grows.
* Martinelli, Brea & Gerstner, "The Puzzling Success of Overparameterization: Lottery Tickets or Escape
  Dimensions?": in teacher-student regression, students with as many hidden neurons as the teacher often end
  in non-global minima, and the probability of reaching zero loss rises with the width; minima of narrow
  networks turn into saddles with escape directions when neurons are added, which is what lets the wider
  network descend further (escape dimensions rather than lucky initial subnetworks).
"""


def student(width: int, seed: int, dataset: Dataset) -> nn.Module:
    """A tanh student with one hidden layer of ``width`` units, initialised by the registry's default (PyTorch
    uniform) initialisation with ``torch.manual_seed(seed)`` (the caller's RNG state is kept), float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("mlp", dataset.input_shape, dataset.output_dim, widths=[width], activation="tanh")
    return model.double()


def train_student(setting: Setting, dataset: Dataset, width: int, seed: int) -> dict[str, Any]:
    """One student of part (b): trained by L-BFGS from its initialisation, then its end point refined by
    Levenberg-Marquardt on ``∇L = 0`` with the exact dense Hessian (:func:`critical_points.seek_critical_point`)
    (certified by :func:`certify`). The outputs on the training inputs are kept to recognise the same minimum
    reached from several seeds."""
    trained = minimize(student(width, seed, dataset), dataset.loss_fn(), dataset.train, max_iter=setting.max_iter)
    flat = FlatLoss(trained.model, dataset.loss_fn(), dataset.train)
    start = flat.theta()
    refined = seek_critical_point(flat, start, gradient_tol=setting.refine_tol, max_iter=setting.refine_iter)
    return {"width": width, "seed": seed, "lbfgs_loss": trained.loss, "lbfgs_gradient_norm": trained.gradient_norm,
            "iterations": trained.iterations, "loss": refined.loss, "gradient_norm": refined.gradient_norm,
            "refine_iterations": refined.iterations, "refine_distance": float((refined.theta - start).norm()),
            "lambda_min": float(refined.eigenvalues[0]), "lambda_max": float(refined.eigenvalues[-1]),
            "outputs": flat.outputs(refined.theta).detach().reshape(-1).tolist()}


def bad_minima(setting: Setting, dataset: Dataset, out: Path) -> list[dict[str, Any]]:
    """Every (width, seed) student of part (b), certified."""
    return [certify(cached_json(out / "students" / f"w{width}_s{seed}_certified.json",
                                lambda: train_student(setting, dataset, width, seed)), setting)
            for width in setting.widths for seed in range(setting.seeds)]


def certify(run: dict[str, Any], setting: Setting) -> dict[str, Any]:
    """``run`` with ``critical`` (``‖∇L‖ ≤ gradient_tol``) and ``minimum`` (critical and ``λ_min ≥ −eig_tol ·
    max|λ|``) at its refined point."""
    critical = run["gradient_norm"] <= setting.gradient_tol
    scale = max(abs(run["lambda_min"]), abs(run["lambda_max"]))
    return {**run, "critical": critical, "minimum": critical and run["lambda_min"] >= -setting.eig_tol * scale}


def outcome(run: dict[str, Any], cutoff: float) -> str:
    """``"global"``: loss at most ``cutoff`` after refinement; above it, ``"bad"``: a certified minimum (gradient
    norm and smallest eigenvalue within tolerance), ``"saddle"``: critical with a negative eigenvalue,
    ``"uncertified"``: not critical within the refinement budget."""
    if run["loss"] <= cutoff:
        return "global"
    return "bad" if run["minimum"] else "saddle" if run["critical"] else "uncertified"


def share_bad(runs: list[dict[str, Any]], setting: Setting, cutoff: float, dataset: Dataset) -> dict[str, list]:
    """Per width: share of runs in a certified bad minimum with its binomial standard error
    ``sqrt(p (1 - p) / n)`` (0 when p is 0 or 1; then the rule-of-three bound 3/n is the useful one), the number
    of distinct bad minima among them, and the counts of the other outcomes."""
    tol = setting.dedup_tol * float(dataset.train[1].std())
    table: dict[str, list] = {"widths": list(setting.widths), "share": [], "stderr": [], "runs": [], "distinct": [],
                              "saddle": [], "uncertified": [], "global": []}
    for width in setting.widths:
        mine = [r for r in runs if r["width"] == width]
        outcomes = [outcome(r, cutoff) for r in mine]
        bad = [torch.tensor(r["outputs"]) for r, o in zip(mine, outcomes) if o == "bad"]
        p = outcomes.count("bad") / len(outcomes)
        table["share"].append(p)
        table["stderr"].append(math.sqrt(p * (1 - p) / len(outcomes)))
        table["runs"].append(len(outcomes))
        table["distinct"].append(len(set(distinct(bad, tol))))
        for name in ("saddle", "uncertified", "global"):
            table[name].append(outcomes.count(name))
    return table


def escape_runs(setting: Setting, dataset: Dataset, out: Path) -> list[dict[str, Any]]:
    """Part (a): for each narrow seed, its minimum widened by each ``added`` count of split neurons."""
    loss_fn = dataset.loss_fn()
    rows = []
    for seed in range(setting.narrow_seeds):
        narrow = None
        for extra in setting.added:
            path = out / "escape" / f"s{seed}_m{extra}.json"
            if narrow is None and not path.is_file():
                narrow = minimize(student(setting.narrow_width, seed, dataset), loss_fn, dataset.train).model
            rows.append(cached_json(path, lambda: escape_row(setting, narrow, dataset, extra, seed)))
    return rows


def escape_row(setting: Setting, narrow: nn.Module, dataset: Dataset, extra: int, seed: int) -> dict[str, Any]:
    """One widening experiment, reduced to numbers: eigenvalue counts, losses, the descent curves."""
    n_wide = sum(p.numel() for p in widen(narrow, extra, seed=seed).parameters())
    k = min(n_wide - 1, 5 * extra + 5)   # room for d_in + 1 escape directions per split neuron, and more
    e = escape_experiment(narrow, dataset.loss_fn(), dataset.train, extra=extra, tol=setting.tol, k=k,
                          radius=setting.radius, steps=setting.escape_steps, polish=False, seed=seed)
    return {"seed": seed, "added": extra, "dim": n_wide, "narrow_loss": e.narrow_loss,
            "narrow_gradient_norm": e.narrow_gradient_norm, "wide_loss": e.wide_loss,
            "wide_gradient_norm": e.wide_gradient_norm, "narrow_negative": e.narrow.count,
            "wide_negative": e.wide.count, "opened": e.opened, "complete": e.wide.complete,
            "wide_eigenvalues": e.wide.eigenvalues.tolist(), "scale": e.wide.scale, "escaped": e.escaped,
            "final_loss": float(e.losses[-1]), "control_final_loss": float(e.control_losses[-1]),
            "losses": e.losses.tolist(), "control_losses": e.control_losses.tolist(), "lr": e.lr}


def escape_slice(setting: Setting, dataset: Dataset, extra: int, seed: int, span: float) -> dict[str, Any]:
    """Loss along the most negative Hessian eigenvector of the widened narrow minimum, with the quadratic
    prediction ``L(θ) + λ s² / 2`` (s in parameter-space distance)."""
    loss_fn = dataset.loss_fn()
    narrow = minimize(student(setting.narrow_width, seed, dataset), loss_fn, dataset.train).model
    wide = widen(narrow, extra, seed=seed)
    dims = escape_dimensions(Hessian(wide, loss_fn, dataset.train, dtype=torch.float64, method="reverse"),
                             setting.tol, k=min(10, sum(p.numel() for p in wide.parameters()) - 1), seed=seed)
    if not dims.count:
        return {"alphas": [], "loss": [], "eigenvalue": None, "center": None}
    surface = loss_surface(wide, loss_fn, dataset.train,
                           Directions(vectors=(dims.directions[0],), labels=("s",), kind="eigen"),
                           points=41, span=span, progress=False)
    center = float(surface.loss[len(surface.alphas) // 2])
    return {"alphas": surface.alphas.tolist(), "loss": surface.loss.tolist(),
            "eigenvalue": float(dims.eigenvalues[0]), "center": center}


def plot_bad_minima(runs: list[dict[str, Any]], shares: dict[str, list], setting: Setting, cutoff: float):
    """Left: share of runs in a certified bad minimum against student width with binomial error bars, the
    number of distinct bad minima written beside each point, and the share left uncertified. Right: every
    run's loss after refinement against width (log scale), coloured by outcome, the threshold dashed."""
    teacher = setting.data_kwargs["teacher_width"]
    colors = {"global": "C0", "bad": "C3", "saddle": "C1", "uncertified": "0.5"}
    fig = new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.errorbar(shares["widths"], shares["share"], yerr=bounded_errors(shares["share"], shares["stderr"]),
                  marker="o", capsize=3, color=colors["bad"], label="certified bad minimum (± binomial s.e.)")
    for width, share, count in zip(shares["widths"], shares["share"], shares["distinct"]):
        left.annotate(f"{count} distinct", (width, share), textcoords="offset points", xytext=(0, 12), fontsize=7,
                      ha="center")
    left.plot(shares["widths"], [u / n for u, n in zip(shares["uncertified"], shares["runs"])], marker="x", ls=":",
              color=colors["uncertified"], label="uncertified (not critical after refinement)")
    left.axvline(teacher, color="0.8", ls="-.", zorder=0, label=f"teacher width {teacher}")
    left.set_xscale("log", base=2)
    left.set_xticks(shares["widths"], [str(w) for w in shares["widths"]])
    left.set_xlim(shares["widths"][0] / 1.25, shares["widths"][-1] * 1.25)
    left.set_ylim(-0.05, 1.05)
    left.set_xlabel("student hidden units")
    left.set_ylabel(f"share of runs (loss > {setting.threshold:g}·Var)")
    left.set_title(f"{shares['runs'][0]} seeds per width", fontsize=10)
    left.legend(fontsize=8)
    rng = np.random.default_rng(0)
    for r in runs:
        right.scatter(r["width"] * (1 + 0.06 * rng.standard_normal()), max(r["loss"], 1e-30), s=12,
                      color=colors[outcome(r, cutoff)], alpha=0.7)
    labels = {"global": "below threshold", "bad": "certified bad minimum", "saddle": "certified saddle",
              "uncertified": "uncertified"}
    for name, color in colors.items():
        right.scatter([], [], s=12, color=color, label=labels[name])
    right.axhline(cutoff, color="k", ls="--", lw=0.8, label="bad-minimum threshold")
    right.set_xscale("log", base=2)
    right.set_xticks(shares["widths"], [str(w) for w in shares["widths"]])
    right.set_yscale("log")
    right.set_xlabel("student hidden units")
    right.set_ylabel("training loss after refinement (mean squared error)")
    right.legend(fontsize=8)
    plain_ticks(left, "y")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-")))
    return fig


def plot_escape(rows: list[dict[str, Any]], added: tuple[int, ...], cut: dict[str, Any], narrow_width: int):
    """Left: negative eigenvalues opened against split neurons (mean ± standard error over narrow minima).
    Middle: loss along the most negative eigenvector and its quadratic prediction. Right: gradient descent
    from the widened minimum nudged along its escape directions, against the narrow-minimum control."""
    fig = new_figure(14, 4)
    left, middle, right = fig.subplots(1, 3)
    opened = np.array([[r["opened"] for r in rows if r["added"] == m] for m in added], dtype=float)
    sem = opened.std(axis=1, ddof=1) / np.sqrt(opened.shape[1]) if opened.shape[1] > 1 else np.zeros(len(added))
    left.errorbar(added, opened.mean(axis=1), yerr=sem, marker="o", capsize=3, label="mean ± s.e. over minima")
    for i, m in enumerate(added):
        left.scatter(np.full(opened.shape[1], m) + 0.08 * np.arange(opened.shape[1]) - 0.04 * opened.shape[1],
                     opened[i], s=10, color="0.5")
    left.set_xlabel("neurons added by splitting")
    left.set_ylabel("negative Hessian eigenvalues opened")
    left.set_title(f"width-{narrow_width} minima widened (split ratio 1/2)", fontsize=10)
    left.legend(fontsize=8)
    if cut["eigenvalue"] is not None:
        s = np.asarray(cut["alphas"])
        middle.plot(s, np.asarray(cut["loss"]) - cut["center"], marker=".", label="L(θ + s v) − L(θ)")
        middle.plot(s, 0.5 * cut["eigenvalue"] * s ** 2, ls="--", label=f"λ s²/2, λ = {cut['eigenvalue']:.2e}")
        middle.legend(fontsize=8)
    middle.set_xlabel("distance s along the most negative eigenvector v")
    middle.set_ylabel("loss change (mean squared error)")
    middle.set_title("loss along an escape direction (1 split neuron)", fontsize=10)
    for r in [r for r in rows if r["added"] == added[0]]:
        steps = np.arange(len(r["losses"]))
        right.plot(steps, r["losses"], color="C1", lw=0.8)
        right.plot(steps, r["control_losses"], color="C0", lw=0.8, ls="--")
    right.plot([], [], color="C1", label="widened, nudged along escape directions")
    right.plot([], [], color="C0", ls="--", label="narrow minimum, nudged at random")
    right.set_xlabel("gradient-descent step (lr = 1/λ_max)")
    right.set_ylabel("training loss (mean squared error)")
    right.set_title(f"{added[0]} split neuron, every narrow minimum", fontsize=10)
    right.legend(fontsize=8)
    for ax in (left, middle, right):
        plain_ticks(ax)
    return fig


def report(setting: Setting, dataset: Dataset, escape_dataset: Dataset, runs: list[dict[str, Any]],
           shares: dict[str, list], cutoff: float, rows: list[dict[str, Any]], cut: dict[str, Any],
           seconds: float, command: str) -> str:
    """The markdown report: set-up, both parts' numbers, verdicts, the papers' claims."""
    teacher = setting.data_kwargs["teacher_width"]
    lines = [
        "# Escape dimensions and width (Martinelli, Brea & Gerstner; Simsek et al. 2021)", "",
        f"Data of (b): {dataset.description} Loss: mean squared error (target variance "
        f"{float(dataset.train[1].var()):.4f}). Students: tanh MLPs with one hidden layer, float64, PyTorch's "
        f"default initialisation. Produced by `{command}` ({seconds / 60:.1f} minutes for this invocation; stored "
        f"results are reused).", "",
        "## (b) Bad minima against width", "",
        f"{setting.seeds} initialisations per width, each trained by full-batch L-BFGS (strong Wolfe, "
        f"`landscape.instruments.minimize`, at most {setting.max_iter} iterations), then refined by "
        f"Levenberg-Marquardt on ∇L = 0 with the exact dense Hessian (until ‖∇L‖ ≤ {setting.refine_tol:g}, at most "
        f"{setting.refine_iter} Hessians) and "
        f"certified: a **minimum** if ‖∇L‖ ≤ {setting.gradient_tol:g} and λ_min ≥ −{setting.eig_tol:g}·max|λ|; a "
        f"saddle if critical with a more negative eigenvalue; uncertified if ‖∇L‖ stays above "
        f"{setting.gradient_tol:g}. Bad minimum: a certified minimum with loss above {setting.threshold:g} × "
        f"Var(targets) = {cutoff:.2e} (the global minimum is 0 for width ≥ {teacher}). Minima with outputs on "
        f"the training inputs within {setting.dedup_tol:g}·std(targets) RMS are the same minimum (whatever the "
        f"permutation of units); *distinct* counts them.", "",
        "![bad minima](escape_vs_width_bad_minima.png)", "",
        "| student width | runs | in a certified bad minimum | distinct bad minima | saddles | uncertified | "
        "below threshold | median ‖∇L‖ after L-BFGS | median after refinement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, width in enumerate(shares["widths"]):
        mine = [r for r in runs if r["width"] == width]
        lines.append(f"| {width} | {shares['runs'][i]} | {shares['share'][i]:.2f} ± {shares['stderr'][i]:.2f} | "
                     f"{shares['distinct'][i]} | {shares['saddle'][i]} | {shares['uncertified'][i]} | "
                     f"{shares['global'][i]} | {np.median([r['lbfgs_gradient_norm'] for r in mine]):.1e} | "
                     f"{np.median([r['gradient_norm'] for r in mine]):.1e} |")
    stalls = [r for r in runs if r["lbfgs_loss"] > cutoff and r["loss"] <= cutoff]
    lines += ["", f"Refinement moved {len(stalls)} runs that L-BFGS had left above the threshold to below it "
                  f"(L-BFGS stalls, not minima).", "",
              "Threshold sensitivity: runs in a certified bad minimum (distinct minima in brackets) when the "
              "threshold is put at each multiple of Var(targets), and, at the main threshold, when the gradient "
              "bar of the certification is moved.", "",
              sensitivity_table(sensitivity(runs, setting, dataset)), "",
              bad_minima_verdict(shares, teacher, runs, cutoff, float(dataset.train[1].var())), "",
              "## (a) Escape dimensions opened by widening", "",
              f"Data of (a): {escape_dataset.description} {setting.narrow_seeds} minima of "
              f"width-{setting.narrow_width} students (L-BFGS from {setting.narrow_seeds} initialisations; narrower "
              f"than the teacher, so their minima have positive loss), each widened by splitting randomly drawn "
              f"hidden neurons (ratio 1/2). Negative eigenvalues: below −{setting.tol:g}·max|λ| of the float64 "
              f"Hessian over the "
              f"training set (Lanczos, `escape_dimensions`). Escape test: {setting.escape_steps} steps of full-batch "
              f"gradient descent (lr 1/λ_max) from the widened point moved {setting.radius:g} along a random "
              f"combination of its escape directions; escaped = final loss more than 1% below the narrow minimum's.",
              "", "![escape](escape_vs_width_escape.png)", "",
              "| neurons added | negative eigenvalues, narrow | opened by widening | all found (solver complete) | "
              "escaped | final loss / narrow loss | control final / narrow |", "|---|---|---|---|---|---|---|"]
    for m in setting.added:
        mine = [r for r in rows if r["added"] == m]
        lines.append(
            f"| {m} | {_mean_se([r['narrow_negative'] for r in mine])} | {_mean_se([r['opened'] for r in mine])} | "
            f"{sum(r['complete'] for r in mine)}/{len(mine)} | {sum(r['escaped'] for r in mine)}/{len(mine)} | "
            f"{_mean_se([r['final_loss'] / r['narrow_loss'] for r in mine])} | "
            f"{_mean_se([r['control_final_loss'] / r['narrow_loss'] for r in mine])} |")
    lines += ["", escape_verdict(rows, setting.added, cut), "", CLAIMS]
    return "\n".join(lines)


def sensitivity(runs: list[dict[str, Any]], setting: Setting, dataset: Dataset) -> dict[str, Any]:
    """For each threshold factor in ``thresholds``: per width, runs in a certified bad minimum (loss above
    ``factor * Var(targets)``), the distinct minima among them, and the runs above it that are uncertified."""
    variance = float(dataset.train[1].var())
    rows = []
    for factor in setting.thresholds:
        cutoff = factor * variance
        rows.append({"factor": factor, "cutoff": cutoff,
                     "bad": [sum(outcome(r, cutoff) == "bad" for r in runs if r["width"] == w) for w in setting.widths],
                     "distinct": share_bad(runs, setting, cutoff, dataset)["distinct"],
                     "uncertified": [sum(outcome(r, cutoff) == "uncertified" for r in runs if r["width"] == w)
                                     for w in setting.widths]})
    cutoff = setting.threshold * variance
    bars = []
    for bar in setting.gradient_bars:
        strict = replace(setting, gradient_tol=bar)
        recertified = [certify(r, strict) for r in runs]
        bars.append({"gradient_tol": bar,
                     "bad": [sum(outcome(r, cutoff) == "bad" for r in recertified if r["width"] == w)
                             for w in setting.widths],
                     "distinct": share_bad(recertified, setting, cutoff, dataset)["distinct"],
                     "uncertified": [sum(outcome(r, cutoff) == "uncertified" for r in recertified
                                         if r["width"] == w) for w in setting.widths]})
    return {"widths": list(setting.widths), "runs": setting.seeds, "rows": rows, "gradient_bars": bars}


def sensitivity_table(table: dict[str, Any]) -> str:
    """The sensitivity as markdown tables, ``bad/runs (distinct)`` per width: one row per loss threshold, then
    one row per gradient bar of the certification at the main threshold."""
    widths = " | ".join(f"width {w}" for w in table["widths"])
    lines = [f"| threshold (× Var) | loss cutoff | {widths} | uncertified above it |",
             "|---" * (len(table["widths"]) + 3) + "|"]
    for row in table["rows"]:
        lines.append(f"| {row['factor']:g} | {row['cutoff']:.1e} | "
                     + " | ".join(f"{b}/{table['runs']} ({d})" for b, d in zip(row["bad"], row["distinct"]))
                     + f" | {sum(row['uncertified'])} |")
    lines += ["", f"| gradient bar of a certified minimum | {widths} | uncertified above the threshold |",
              "|---" * (len(table["widths"]) + 2) + "|"]
    for row in table["gradient_bars"]:
        lines.append(f"| ‖∇L‖ ≤ {row['gradient_tol']:g} | "
                     + " | ".join(f"{b}/{table['runs']} ({d})" for b, d in zip(row["bad"], row["distinct"]))
                     + f" | {sum(row['uncertified'])} |")
    return "\n".join(lines)


def bad_minima_verdict(shares: dict[str, list], teacher: int, runs: list[dict[str, Any]], cutoff: float,
                       variance: float) -> str:
    """Whether the share of runs in certified bad minima falls with width, read off the table, with how many
    distinct minima carry it and how bad the worst of them is."""
    first, last = shares["share"][0], shares["share"][-1]
    err = math.hypot(shares["stderr"][0], shares["stderr"][-1])
    falls = first - last > 2 * err and first > last
    n = shares["runs"][0]
    text = (f"Reading: runs in a certified bad minimum: {first:.2f} ± {shares['stderr'][0]:.2f} "
            f"({round(first * n)}/{n} runs, {shares['distinct'][0]} distinct minima) at width {shares['widths'][0]} "
            f"against {last:.2f} ± {shares['stderr'][-1]:.2f} ({round(last * n)}/{shares['runs'][-1]}, "
            f"{shares['distinct'][-1]} distinct) at width {shares['widths'][-1]} (teacher width {teacher}): ")
    text += ("the share of runs falls by more than two binomial standard errors, as the papers claim."
             if falls else "no fall by more than two binomial standard errors: this part does not reproduce here.")
    bad = [r["loss"] for r in runs if outcome(r, cutoff) == "bad"]
    if bad:
        text += (f" These are few minima ({sum(shares['distinct'])} distinct over all widths), and shallow ones: the "
                 f"worst has loss {max(bad):.2e} = {max(bad) / variance:.1e} × Var(targets), so with the threshold "
                 f"put above that no run at any width ends in a bad minimum (table above).")
    return text


def escape_verdict(rows: list[dict[str, Any]], added: tuple[int, ...], cut: dict[str, Any]) -> str:
    """Whether widening opened escape directions and the loss descended along them."""
    opened = [r for r in rows if r["opened"] > 0]
    escaped = [r for r in rows if r["escaped"]]
    narrow_minima = sum(r["narrow_negative"] == 0 for r in rows)
    control = min(r["control_final_loss"] / r["narrow_loss"] for r in rows)
    text = (f"Reading: the narrow points had no negative eigenvalue in {narrow_minima}/{len(rows)} experiments "
            f"(they are minima); widening opened at least one in {len(opened)}/{len(rows)}, and gradient descent "
            f"from the widened point escaped below the narrow minimum in {len(escaped)}/{len(rows)}; the "
            f"randomly nudged control ended at least at {control:.6f} times the narrow minimum's loss.")
    if cut["eigenvalue"] is not None:
        s, loss = np.asarray(cut["alphas"]), np.asarray(cut["loss"]) - cut["center"]
        small = np.abs(s) <= 0.25 * np.abs(s).max()
        fit = float(np.sum(loss[small] * s[small] ** 2) / np.sum(s[small] ** 4)) * 2
        text += (f" Along the most negative eigenvector (1 split neuron, λ = {cut['eigenvalue']:.3e}) the loss falls "
                 f"as a parabola: the least-squares curvature of the central quarter is {fit:.3e}.")
    return text


def _mean_se(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return f"{values.mean():.3g}"
    return f"{values.mean():.3g} ± {values.std(ddof=1) / math.sqrt(values.size):.2g}"


def main() -> None:
    run = invocation("escape_vs_width", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    dataset = load_dataset("teacher_student", **setting.data_kwargs)
    cutoff = setting.threshold * float(dataset.train[1].var())
    runs = bad_minima(setting, dataset, out)
    progress.done(f"(b) {len(runs)} students")
    escape_dataset = load_dataset("teacher_student", **setting.escape_data_kwargs)
    rows = escape_runs(setting, escape_dataset, out)
    cut = cached_json(out / "escape" / "slice.json",
                 lambda: escape_slice(setting, escape_dataset, setting.added[0], 0, 0.15))
    progress.done(f"(a) {len(rows)} widening experiments")
    shares = share_bad(runs, setting, cutoff, dataset)
    seconds = progress.seconds
    save_figure(plot_bad_minima(runs, shares, setting, cutoff), figures / "escape_vs_width_bad_minima.png")
    save_figure(plot_escape(rows, setting.added, cut, setting.narrow_width), figures / "escape_vs_width_escape.png")
    command = "python analyses/escape_vs_width.py" + (" --quick" if run.quick else "")
    text = report(setting, dataset, escape_dataset, runs, shares, cutoff, rows, cut, seconds, command)
    atomic_write_bytes(figures / "escape_vs_width.md", text.encode())
    atomic_write_json(figures / "escape_vs_width.json", {
        "setting": asdict(setting), "cutoff": cutoff, "bad_minima": shares,
        "students": [{k: v for k, v in r.items() if k != "outputs"} for r in runs],
        "sensitivity": sensitivity(runs, setting, dataset),
        "escape": [{k: v for k, v in r.items() if k not in ("losses", "control_losses")} for r in rows],
        "slice": cut, "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
