"""The trace of the Fisher information through training on MNIST-1D: does it rise early and then fall?

Achille, Rovere & Soatto (2019, "Critical Learning Periods in Deep Networks") found that the trace of the Fisher
information of the weights rises steeply in the first epochs and then decreases for the rest of training, the
peak coinciding with the critical period in which a deficit in the data does lasting damage. For each seed
(``init_seed = data_order_seed = seed``) we train the MNIST-1D CNN (``cnn1d``) and measure, at log-spaced steps
(:func:`landscape.training.tracker.log_steps`), on a fixed batch of the first ``fisher_samples`` training
examples (eval mode, the training itself untouched: :class:`landscape.Tracker` as a trainer callback):

* the empirical Fisher trace ``tr F_emp = (1/N) sum_i ||grad l(x_i, y_i)||^2`` with the data's labels (exact);
* the true Fisher trace ``tr F = (1/N) sum_i E_{y ~ p(y|x_i)} ||grad l(x_i, y)||^2`` by Monte Carlo with
  ``true_draws`` labels per input, with its standard error over the draws (:func:`landscape.fisher_trace`),

both in loss per parameter^2, and the loss and accuracy on the whole train and test splits at the same steps.
Per seed and kind we read off the step of the peak and the ratios peak / initial (step 0) and peak / final (last
step); the shape counts as rise-then-fall in a seed when the peak is at an interior step and exceeds both ends
by more than ``fold`` times and by more than three combined standard errors.

Writes ``figures/critical_periods.png``, ``figures/critical_periods.md`` and ``figures/critical_periods.json``.
The training runs (with their measurements) live under ``--out``; re-running reuses finished ones.

    python analyses/critical_periods.py            # full: about 6 minutes on one shared CPU thread
    python analyses/critical_periods.py --quick    # smoke test: ~10 s of CPU, writes under --out only
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn

from landscape import Tracker, TrackerSettings, evaluate, load_dataset
from landscape.foundation.runs import Run, atomic_write_bytes, atomic_write_json
from landscape.foundation.state import untouched
from landscape.plots.surface import save_figure
from landscape.training import Hparams, train
from landscape.training.tracker import log_steps
from landscape.training.trainer import Callback, at_steps
from reproduction import Progress, invocation

KINDS = ("empirical", "true")
TRUE_RECORDS = "fisher_true.jsonl"   # the true-Fisher tracker's file inside each run directory


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model, schedule, seeds and the measurement budget."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    milestones: tuple[int, ...]
    gamma: float
    seeds: tuple[int, ...]
    points: int            # about this many log-spaced measurement steps (plus step 0)
    fisher_samples: int    # first training examples the Fisher trace is measured on
    true_draws: int        # labels drawn per input for the true Fisher
    fold: float            # the rise and the fall must each exceed this factor


FULL = Setting(model="cnn1d", model_kwargs={}, steps=3000, lr=0.05, milestones=(2000,), gamma=0.1,
               seeds=(0, 1, 2, 3), points=25, fisher_samples=1000, true_draws=2, fold=2.0)
QUICK = Setting(model="mlp", model_kwargs={"widths": [24]}, steps=60, lr=0.05, milestones=(40,), gamma=0.1,
                seeds=(0, 1), points=8, fisher_samples=200, true_draws=2, fold=2.0)
CLAIMS = """\
## What the paper found (its setting, not ours)

Achille, Rovere & Soatto (2019), ICLR, "Critical Learning Periods in Deep Networks" (All-CNN and ResNet-18 on
CIFAR-10, SGD with an exponentially decaying learning rate and weight decay): the trace of the Fisher information
rises steeply during the first epochs, while the network memorises, and then decreases for the rest of training
even though test accuracy keeps improving ("forgetting" or compression); the peak coincides with the critical
period, the early window in which a deficit (e.g. blurred images) causes a permanent loss of accuracy. They
estimate the trace of the true Fisher (labels sampled from the model).
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """One seed's training hyperparameters: SGD with momentum 0.9, weight decay 5e-4, batch 100, the learning
    rate multiplied by ``gamma`` at each milestone."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d",
                   steps=f"{setting.steps}it", lr=setting.lr, milestones=setting.milestones, gamma=setting.gamma,
                   batch_size=100, init_seed=seed, data_order_seed=seed, eval_every=0, checkpoint_every=0)


def evaluation_callback(steps: Sequence[int]) -> Callback:
    """A trainer callback logging ``{"instrument": "evaluation", "train_loss", "train_accuracy", "test_loss",
    "test_accuracy"}`` over the whole splits at ``steps`` into the run's metrics (the model left untouched)."""
    dataset = load_dataset("mnist1d")

    def log(model: nn.Module, step: int, run: Run) -> None:
        with untouched(model, training=False):
            record: dict[str, Any] = {"step": step, "instrument": "evaluation"}
            for split, data in (("train", dataset.train), ("test", dataset.test)):
                result = evaluate(model, dataset.loss_fn(), data)
                record |= {f"{split}_loss": result.loss, f"{split}_accuracy": result.accuracy}
        run.log(record)

    return at_steps(steps, log)


def run_seed(setting: Setting, seed: int, out: Path) -> dict[str, Any]:
    """Train one seed with the two Fisher trackers and the evaluations, or read the series an earlier invocation
    saved: ``{"steps", "empirical", "true", "true_stderr", "train_loss", "train_accuracy", "test_loss",
    "test_accuracy"}``, each a list over the measured steps, and ``"seconds"``, the wall time it took."""
    hp = hparams(setting, seed)
    run_dir = out / f"seed{seed}"
    saved = run_dir / "series.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    began = time.perf_counter()
    steps = log_steps(setting.steps, setting.points)
    trackers = [Tracker.for_hparams(hp, samples=setting.fisher_samples, instruments=("fisher_trace",),
                                    schedule=steps, settings=TrackerSettings(fisher_kind=kind,
                                                                             fisher_samples=draws, seed=seed),
                                    run=run_dir / TRUE_RECORDS if kind == "true" else None)
                for kind, draws in (("empirical", 1), ("true", setting.true_draws))]
    result = train(hp, run_dir, callbacks=[*trackers, evaluation_callback(steps)], progress=False)
    empirical = _by_step(result.run.metrics("fisher_trace"))
    true = _by_step(json.loads(line) for line in (run_dir / TRUE_RECORDS).read_text().splitlines() if line)
    evaluation = _by_step(result.run.metrics("evaluation"))
    series = {"steps": list(steps), "empirical": [empirical[s]["value"] for s in steps],
              "true": [true[s]["value"] for s in steps], "true_stderr": [true[s]["stderr"] for s in steps]}
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        series[key] = [evaluation[s][key] for s in steps]
    series["seconds"] = time.perf_counter() - began
    atomic_write_json(saved, series)
    return series


def _by_step(records: Any) -> dict[int, dict[str, Any]]:
    """The last record of each step (a run restarted from scratch may have logged a step twice)."""
    return {int(r["step"]): r for r in records}


def peak_statistics(steps: Sequence[int], values: Sequence[float], stderr: Sequence[float], fold: float,
                    decay_step: int) -> dict[str, Any]:
    """The peak of one series: its step; ``peak / initial``, ``peak / final`` and ``peak / before decay`` (the
    value at the last measured step at or before ``decay_step``, the first learning-rate drop, so that the fall
    the drop itself causes is excluded); the first and last step at or above half the peak; and whether the
    series rises then falls (interior peak above both ends by more than ``fold`` times and by more than three
    combined standard errors)."""
    v, e, s = np.asarray(values, dtype=float), np.asarray(stderr, dtype=float), np.asarray(steps)
    i = int(np.argmax(v))
    before = int(np.flatnonzero(s <= decay_step)[-1])
    half = np.flatnonzero(v >= v[i] / 2)

    def clear(j: int) -> bool:
        return bool(v[i] > fold * v[j] and v[i] - v[j] > 3 * math.hypot(e[i], e[j]))

    return {"peak_step": int(s[i]), "peak": float(v[i]), "peak_over_initial": float(v[i] / v[0]),
            "peak_over_final": float(v[i] / v[-1]), "peak_over_before_decay": float(v[i] / v[before]),
            "half_peak_window": [int(s[half[0]]), int(s[half[-1]])],
            "rise_then_fall": bool(0 < i < v.size - 1 and clear(0) and clear(-1))}


def decay_step(setting: Setting) -> int:
    """The first learning-rate milestone, or the last step if the rate never drops."""
    return setting.milestones[0] if setting.milestones else setting.steps


def summarise(setting: Setting, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind: per-seed peak statistics, and their means with standard errors over seeds (the peak step's
    mean and error on a log10 scale, as the steps are log-spaced)."""
    summary: dict[str, Any] = {}
    for kind in KINDS:
        per_seed = [peak_statistics(r["steps"], r[kind], r["true_stderr"] if kind == "true" else
                                    np.zeros(len(r["steps"])), setting.fold, decay_step(setting)) for r in runs]
        log_peak = [math.log10(max(p["peak_step"], 1)) for p in per_seed]
        summary[kind] = {
            "per_seed": per_seed,
            "log10_peak_step": {"mean": float(np.mean(log_peak)), "stderr": _stderr(log_peak)},
            **{key: {"mean": float(np.mean([p[key] for p in per_seed])),
                     "stderr": _stderr([p[key] for p in per_seed])}
               for key in ("peak", "peak_over_initial", "peak_over_final", "peak_over_before_decay")},
            "rise_then_fall_seeds": sum(p["rise_then_fall"] for p in per_seed),
        }
    summary["final_test_accuracy"] = {"mean": float(np.mean([r["test_accuracy"][-1] for r in runs])),
                                      "stderr": _stderr([r["test_accuracy"][-1] for r in runs])}
    return summary


def _stderr(values: Sequence[float]) -> float:
    """Standard error of the mean over seeds (sample standard deviation over sqrt(seeds))."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def _band(ax, steps: np.ndarray, values: np.ndarray, color: str, label: str) -> None:
    """Mean over seeds (rows) with a band of one standard error."""
    mean = values.mean(axis=0)
    err = values.std(axis=0, ddof=1) / math.sqrt(values.shape[0]) if values.shape[0] > 1 else np.zeros_like(mean)
    ax.plot(steps, mean, "-o", ms=2.5, lw=1.4, color=color, label=label)
    ax.fill_between(steps, mean - err, mean + err, color=color, alpha=0.25, lw=0)


def plot_fisher(setting: Setting, runs: list[dict[str, Any]], summary: dict[str, Any]) -> Figure:
    """Left: empirical and true Fisher trace against step (symmetric-log step axis, log trace axis), mean and
    standard-error band over seeds, each seed's peak marked. Right: train loss (log) and test accuracy (twin
    axis), mean and band. Learning-rate milestones as dashed lines."""
    steps = np.asarray(runs[0]["steps"], dtype=float)
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for kind, color in zip(KINDS, ("C0", "C3")):
        _band(left, steps, np.array([r[kind] for r in runs]), color,
              f"{kind} Fisher ({'exact' if kind == 'empirical' else f'{setting.true_draws} labels per input'})")
        for p in summary[kind]["per_seed"]:
            left.plot(p["peak_step"], p["peak"], "v", color=color, ms=6, mfc="none")
    left.set_yscale("log")
    left.set_ylabel(f"tr F on {setting.fisher_samples} training samples (loss / parameter²)")
    left.set_title(f"{setting.model} on MNIST-1D, {len(runs)} seeds (▽: each seed's peak)", fontsize="medium")
    _band(right, steps, np.array([r["train_loss"] for r in runs]), "C2", "train loss")
    _band(right, steps, np.array([r["test_loss"] for r in runs]), "C1", "test loss")
    right.set_yscale("log")
    right.set_ylabel("cross-entropy loss (nats)")
    twin = right.twinx()
    _band(twin, steps, 100 * np.array([r["test_accuracy"] for r in runs]), "C4", "test accuracy")
    twin.set_ylabel("test accuracy (%)")
    for ax in (left, right):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, steps[-1] * 1.1)
        ax.set_xlabel("step (symmetric log; 40 steps = 1 epoch)")
        ax.grid(alpha=0.3, which="both")
        for m in setting.milestones:
            ax.axvline(m, color="0.4", ls="--", lw=0.8)
    left.legend(fontsize=8, loc="lower center")
    lines = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="center left")
    return fig


def report(setting: Setting, summary: dict[str, Any], seconds: float, computed: float) -> str:
    """The markdown report: set-up, the peak table, the reading and the paper's claim. ``seconds``: this
    invocation's wall time; ``computed``: the wall time the runs took when they were trained."""
    seeds = len(setting.seeds)
    schedule = ", ".join(f"×{setting.gamma} at step {m}" for m in setting.milestones) or "constant"
    lines = [
        "# Critical periods: the Fisher trace through training on MNIST-1D", "",
        f"`{setting.model}` {setting.model_kwargs} on MNIST-1D (4000 train / 1000 test; 40 steps per epoch), SGD "
        f"lr {setting.lr} ({schedule}), momentum 0.9, weight decay 5e-4, batch 100, {setting.steps} steps; "
        f"{seeds} seeds. Fisher trace on the first {setting.fisher_samples} training samples at "
        f"{len(log_steps(setting.steps, setting.points))} log-spaced steps (step 0 included): empirical (exact) and "
        f"true (Monte Carlo, {setting.true_draws} labels per input, with its standard error). Numbers are mean ± "
        f"standard error over seeds. Produced by `python analyses/critical_periods.py`: training and measuring "
        f"took {computed / 60:.1f} minutes of wall time on one CPU thread (this invocation: {seconds / 60:.1f} "
        f"minutes; it reuses finished runs). Final test accuracy "
        f"{100 * summary['final_test_accuracy']['mean']:.1f} ± {100 * summary['final_test_accuracy']['stderr']:.1f}%.",
        "", "![Fisher trace](critical_periods.png)", "",
        "| Fisher | peak step (geometric mean ×/÷ its standard-error factor) | per-seed peak steps | "
        "per-seed steps above half the peak | tr F at the peak | peak / initial | peak / final | peak / last value "
        f"before the lr drop at step {decay_step(setting)} | seeds that rise then fall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        s = summary[kind]
        log_peak = s["log10_peak_step"]
        factor = "" if math.isnan(log_peak["stderr"]) else f" ×/÷ {10 ** log_peak['stderr']:.2f}"
        lines.append(f"| {kind} | {10 ** log_peak['mean']:.0f}{factor} | "
                     f"{[p['peak_step'] for p in s['per_seed']]} | "
                     f"{', '.join(f'{a}–{b}' for a, b in (p['half_peak_window'] for p in s['per_seed']))} | "
                     f"{_pm(s['peak'])} | {_pm(s['peak_over_initial'])} | {_pm(s['peak_over_final'])} | "
                     f"{_pm(s['peak_over_before_decay'])} | "
                     f"{s['rise_then_fall_seeds']} of {seeds} |")
    lines += ["", f"Rise then fall: an interior peak above both the step-0 and the last value by more than "
              f"{setting.fold:g} times and by more than three combined standard errors.", "",
              *findings(setting, summary), "",
              "What we used against what the paper used: a step learning-rate schedule (the paper decays the rate "
              f"exponentially, every epoch), `{setting.model}` on MNIST-1D instead of All-CNN / ResNet-18 on CIFAR-10, "
              "and the Fisher of the weights on a fixed subset of the training data; both the true Fisher (what "
              "the paper estimates) and the empirical Fisher are shown. The empirical Fisher's fall is partly "
              "trivial: once the training labels are fitted, their gradients vanish.", "", CLAIMS]
    return "\n".join(lines)


def findings(setting: Setting, summary: dict[str, Any]) -> list[str]:
    """Sentences read off the summary: where the peak is and whether the shape reproduces, per kind."""
    out = []
    for kind in KINDS:
        s = summary[kind]
        seeds = len(s["per_seed"])
        verdict = ("reproduces in every seed" if s["rise_then_fall_seeds"] == seeds else
                   f"reproduces in {s['rise_then_fall_seeds']} of {seeds} seeds")
        out.append(f"* {kind} Fisher: the rise-then-fall shape {verdict}; the trace grows "
                   f"{_pm(s['peak_over_initial'])} times from initialisation to its peak at step about "
                   f"{10 ** s['log10_peak_step']['mean']:.0f} (epoch {10 ** s['log10_peak_step']['mean'] / 40:.1f} "
                   f"of {setting.steps / 40:.0f}) and ends {_pm(s['peak_over_final'])} times below the peak; before "
                   f"the learning rate drops (step {decay_step(setting)}) it is already "
                   f"{_pm(s['peak_over_before_decay'])} times below.")
    return out


def _pm(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3g}" + ("" if math.isnan(stat["stderr"]) else f" ± {stat['stderr']:.2g}")


def main() -> None:
    run = invocation("critical_periods", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    runs = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    summary = summarise(setting, runs)
    seconds = progress.seconds
    save_figure(plot_fisher(setting, runs, summary), figures / "critical_periods.png")
    computed = sum(r["seconds"] for r in runs)
    text = report(setting, summary, seconds, computed)
    atomic_write_bytes(figures / "critical_periods.md", text.encode())
    atomic_write_json(figures / "critical_periods.json", {"setting": asdict(setting), "summary": summary,
                                                          "runs": runs, "seconds": seconds,
                                                          "computed_seconds": computed})
    print(text)


if __name__ == "__main__":
    main()
