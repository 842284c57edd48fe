"""Random labels: a network fits them, more slowly; its curvature against that of the true-label network.

Zhang et al. (2017, "Understanding deep learning requires rethinking generalization") showed that standard
networks reach 100% training accuracy on labels drawn at random, with a training time larger than on the
true labels by only a small factor. We train the same one-hidden-layer ReLU MLP on scikit-learn's digits with
its true labels and with random labels (``load_dataset("digits", random_labels=True, label_seed=seed)``: every
training label an independent uniform draw over the 10 classes; test labels true), several seeds
(``init_seed = data_order_seed = label_seed = seed``), Adam without weight decay, and record

* the steps to fit: the first evaluation step (every ``eval_every`` steps, on the whole training set) with 100%
  training accuracy;
* the curvature of the Hessian of the mean training cross-entropy over all training samples (the labels the
  network was trained on) at two points: when the network first fits its labels ("fit", its weights saved by a
  callback at that step) and at the end of training ("end"): the top eigenvalues, ``tr H``, the effective
  dimensionality ``N_eff(z)`` (Maddox et al. 2020) with their SLQ standard errors (``trained_curvature.py``),
  and the SLQ spectral density.

Verdict statistics (fixed before looking): per quantity, mean ± s.d. over seeds for each labelling, the ratio of
means random / true, and Welch's t-test (on the logarithms for the positive quantities: steps, λ_max, trace,
N_eff); a difference is claimed at p < 0.05.

Writes ``figures/random_labels_training.png``, ``figures/random_labels_curvature.png``,
``figures/random_labels.md`` and ``figures/random_labels.json``. Trainer run directories, the fitted weights and
every measurement (JSON) are kept under ``--out`` and reused.

    python analyses/random_labels.py            # full: about 8 minutes on one shared CPU thread
    python analyses/random_labels.py --quick    # smoke test, seconds; writes under --out only
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import nn

from landscape import load_dataset
from landscape.foundation.runs import (Run, atomic_write_bytes, atomic_write_json, cached_json, load_checkpoint,
                                       save_checkpoint)
from landscape.linalg import SpectralDensity
from landscape.plots.style import bounded_errors, error_caption, new_figure, plain_ticks
from landscape.plots.surface import save_figure
from landscape.training import Hparams, at_steps, init_model, train
from reproduction import Progress, invocation, mean_sd
from trained_curvature import trained_curvature


@dataclass(frozen=True)
class Setting:
    """Data split, network, training, seeds and the curvature budget."""
    data_kwargs: dict
    width: int
    steps: str
    eval_every: int
    lr: float
    batch_size: int
    seeds: tuple[int, ...]
    zs: tuple[float, ...]
    top_k: int
    slq_steps: int
    slq_runs: int
    density_steps: int
    density_runs: int


FULL = Setting(data_kwargs={}, width=512, steps="4000it", eval_every=22, lr=3e-3, batch_size=128, seeds=(0, 1, 2, 3), zs=(0.1, 1.0),
               top_k=10, slq_steps=30, slq_runs=3, density_steps=40, density_runs=2)
QUICK = Setting(data_kwargs={"test_fraction": 0.8}, width=128, steps="600it", eval_every=20, lr=1e-2, batch_size=128, seeds=(0, 1), zs=(0.1, 1.0),
                top_k=4, slq_steps=8, slq_runs=2, density_steps=10, density_runs=2)
LABELS = {"true": {}, "random": {"random_labels": True}}
COLORS = {"true": "C0", "random": "C1"}
POINTS = ("fit", "end")
POSITIVE = ("steps_to_fit", "lambda_max", "trace") + tuple(f"neff_z{z:g}" for z in FULL.zs)
CLAIMS = """\
## What the papers found (their settings, not ours)

* Zhang, Bengio, Hardt, Recht & Vinyals (2017, "Understanding deep learning requires rethinking
  generalization", ICLR): Inception, AlexNet and MLPs on CIFAR-10 (and Inception on ImageNet) fit random labels
  to 100% training accuracy with unchanged hyperparameters: "training time increases only by a small constant
  factor compared with training on the true labels", and test accuracy falls to chance.
* Zhang et al. make no curvature claim. The expectation we test is the one behind sharpness- and
  volume-based accounts of generalisation (Keskar et al. 2017, sharp minima; Maddox, Benton & Wilson 2020,
  effective dimensionality; Neyshabur et al. 2017, "Exploring generalization in deep learning", who compare
  such measures on true and random labels): a network that memorises random labels should sit in a sharper
  region, with more effective parameters, than one that learns the true labels.
"""


def hparams(setting: Setting, labels: str, seed: int) -> Hparams:
    """One run: a one-hidden-layer ReLU MLP, Adam without weight decay; random labels drawn with ``seed``."""
    data_kwargs = {**setting.data_kwargs, **LABELS[labels]} | ({"label_seed": seed} if labels == "random" else {})
    return Hparams(model="mlp", model_kwargs={"widths": [setting.width]}, data="digits", data_kwargs=data_kwargs,
                   batch_size=setting.batch_size, steps=setting.steps, optimizer="adam", lr=setting.lr,
                   weight_decay=0.0, init_seed=seed, data_order_seed=seed, eval_every=setting.eval_every,
                   checkpoint_every=1000)


def save_when_fitted(path: Path):
    """A callback (at evaluation steps) saving the model's weights to ``path`` the first time the training
    accuracy the trainer has just logged is 100%; it reads the log and leaves the model as it is."""
    def callback(model: nn.Module, step: int, run: Run) -> None:
        if path.is_file():
            return
        logged = run.metrics("train")
        if logged and logged[-1]["step"] == step and logged[-1]["accuracy"] >= 1.0:
            save_checkpoint(path, model.state_dict(), step=step)
    return callback


def measure(setting: Setting, labels: str, seed: int, out: Path) -> dict[str, Any]:
    """Train one network (resumable) and measure it at the fit step and at the end (cached JSON)."""
    run = hparams(setting, labels, seed)
    run_dir = out / run.name
    fitted = run_dir / "fitted.safetensors"

    def compute() -> dict[str, Any]:
        cpu = time.process_time()
        total = run.total_steps(1)
        evaluation_steps = range(0, total + 1, setting.eval_every)
        result = train(run, run_dir, callbacks=[at_steps(evaluation_steps, save_when_fitted(fitted))],
                       progress=False)
        dataset = load_dataset(run.data, **run.data_kwargs)
        history = [(r["step"], r["accuracy"], r["loss"]) for r in Run(run_dir).metrics("train")]
        record: dict[str, Any] = {"labels": labels, "seed": seed, "history": history,
                                  "train_accuracy": result.train.accuracy, "train_loss": result.train.loss,
                                  "test_accuracy": result.test.accuracy, "steps_to_fit": None}
        models = {"end": result.model}
        if fitted.is_file():
            model = init_model(run, dataset)
            record["steps_to_fit"] = load_checkpoint(fitted, model).step
            models["fit"] = model
        for point, model in models.items():
            record[point] = trained_curvature(model, dataset, k=setting.top_k, zs=setting.zs,
                                              steps=setting.slq_steps, runs=setting.slq_runs,
                                              density_steps=setting.density_steps,
                                              density_runs=setting.density_runs, seed=seed)
        record["cpu_seconds"] = time.process_time() - cpu
        return record

    return cached_json(out / "measures" / f"{labels}_s{seed}.json", compute)


def quantity(record: dict[str, Any], name: str, point: str, zs: tuple[float, ...]) -> float:
    """One number of one run: ``steps_to_fit``, or a curvature measure at ``point`` (``fit`` or ``end``)."""
    if name == "steps_to_fit":
        return record["steps_to_fit"]
    at = record[point]
    if name == "lambda_max":
        return at["eigenvalues"][0]
    if name == "trace":
        return at["trace"]
    return at["effective_dim"][[f"neff_z{z:g}" for z in zs].index(name)]


def compare(setting: Setting, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per quantity and point: per-seed values, mean and s.d. per labelling, ratio of means random / true, and
    Welch's t-test (on logarithms for positive quantities)."""
    names = ["steps_to_fit", "lambda_max", "trace"] + [f"neff_z{z:g}" for z in setting.zs]
    rows = {}
    for name in names:
        for point in (("fit",) if name == "steps_to_fit" else POINTS):
            values = {labels: [quantity(r, name, point, setting.zs) for r in records
                               if r["labels"] == labels and (point == "end" or r["steps_to_fit"] is not None)]
                      for labels in LABELS}
            row: dict[str, Any] = {"per_seed": values}
            for labels, v in values.items():
                row[labels] = {"mean": float(np.mean(v)) if v else math.nan,
                               "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan}
            true, rand = values["true"], values["random"]
            row["ratio"] = row["random"]["mean"] / row["true"]["mean"] if true and rand else math.nan
            row["welch_p"] = math.nan
            if len(true) > 1 and len(rand) > 1:
                transform = np.log if all(x > 0 for x in true + rand) else np.asarray
                row["welch_p"] = float(stats.ttest_ind(transform(rand), transform(true), equal_var=False).pvalue)
                row["log_scale"] = transform is np.log
            rows[f"{name}@{point}"] = row
    return rows


def plot_training(setting: Setting, records: list[dict[str, Any]]) -> Figure:
    """Training accuracy and loss against step, every seed (thin) and the mean ± s.d. band over seeds (thick),
    true labels blue, random labels orange; each run's fit step marked."""
    fig = new_figure(11, 4.0)
    accuracy, loss = fig.subplots(1, 2, sharex=True)
    for labels, color in COLORS.items():
        mine = [r for r in records if r["labels"] == labels]
        steps = np.array([h[0] for h in mine[0]["history"]], dtype=float)
        for column, ax in ((1, accuracy), (2, loss)):
            values = np.array([[h[column] for h in r["history"]] for r in mine])
            for v in values:
                ax.plot(steps, v, color=color, lw=0.5, alpha=0.5)
            mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
            low, high = bounded_errors(mean, sd)
            ax.plot(steps, mean, color=color, lw=1.6, label=f"{labels} labels ({error_caption(len(mine))})")
            ax.fill_between(steps, mean - low, mean + high, color=color, alpha=0.2, lw=0)
        for r in mine:
            if r["steps_to_fit"] is not None:
                accuracy.axvline(r["steps_to_fit"], color=color, lw=0.6, ls=":")
    accuracy.set_ylabel("training accuracy (labels trained on)")
    accuracy.set_title("dotted: each run's first step at 100% training accuracy", fontsize=9)
    loss.set_yscale("log")
    loss.set_ylabel("training cross-entropy")
    for ax in (accuracy, loss):
        ax.set_xlabel("training step")
        plain_ticks(ax)
        ax.legend(fontsize=7)
    fig.suptitle(f"digits, MLP with {setting.width} hidden units: true against random labels", fontsize=10)
    return fig


def plot_curvature(setting: Setting, records: list[dict[str, Any]], rows: dict[str, Any]) -> Figure:
    """Left: top Hessian eigenvalues against index at the fit step (mean ± s.d. over seeds). Middle: trace and
    N_eff at fit and end, random / true ratio with the seeds' spread. Right: SLQ densities at the fit step
    (every seed, log density)."""
    fig = new_figure(15, 4.3)
    top, ratios, dens = fig.subplots(1, 3)
    for labels, color in COLORS.items():
        for point, style in (("fit", "-"), ("end", "--")):
            mine = [r[point]["eigenvalues"] for r in records if r["labels"] == labels and point in r]
            if not mine:
                continue
            values = np.array(mine)
            index = np.arange(1, values.shape[1] + 1)
            mean = values.mean(axis=0)
            sd = values.std(axis=0, ddof=1) if len(mine) > 1 else np.zeros_like(mean)
            top.errorbar(index, mean, yerr=bounded_errors(mean, sd), color=color, ls=style, marker="o", ms=3,
                         capsize=2, label=f"{labels} labels, {point} ({error_caption(len(mine))})")
    top.set_yscale("log")
    top.set_xticks(range(1, setting.top_k + 1))
    top.set_xlabel("eigenvalue index i")
    top.set_ylabel("Hessian eigenvalue λ_i (loss / parameter²)")
    top.set_title("top eigenvalues (solid: at fit, dashed: end)", fontsize=9)
    names = ["lambda_max", "trace"] + [f"neff_z{z:g}" for z in setting.zs]
    labels_of = {"lambda_max": "λ_max", "trace": "tr H", **{f"neff_z{z:g}": f"N_eff z={z:g}" for z in setting.zs}}
    for j, point in enumerate(POINTS):
        means, errors = [], []
        for name in names:
            row = rows[f"{name}@{point}"]
            means.append(row["ratio"])
            # spread of the ratio from the seeds' relative s.d.s (delta method)
            rel = math.hypot(row["random"]["sd"] / row["random"]["mean"], row["true"]["sd"] / row["true"]["mean"])
            errors.append(row["ratio"] * rel)
        x = np.arange(len(names)) + (j - 0.5) * 0.36
        ratios.bar(x, means, width=0.34, yerr=bounded_errors(means, errors), capsize=3, color=f"C{2 + j}",
                   label=f"at {point}")
    ratios.axhline(1.0, color="k", lw=0.8)
    ratios.set_yscale("log")
    ratios.set_xticks(np.arange(len(names)), [labels_of[n] for n in names], fontsize=8)
    ratios.set_ylabel("random-label mean / true-label mean")
    ratios.set_title(f"ratio of means; bars: ± s.d. of the ratio from {len(setting.seeds)} seeds each", fontsize=9)
    fitted = [r for r in records if "fit" in r]
    high = max((max(max(run) for run in r["fit"]["density"]["nodes"]) for r in fitted), default=1.0)
    grid = torch.linspace(-0.05 * high, 1.05 * high, 600, dtype=torch.float64)
    for labels, color in COLORS.items():
        mine = [r["fit"]["density"] for r in fitted if r["labels"] == labels]
        for i, d in enumerate(mine):
            slq = SpectralDensity(nodes=torch.tensor(d["nodes"], dtype=torch.float64),
                                  weights=torch.tensor(d["weights"], dtype=torch.float64), dim=d["dim"], matvecs=0)
            pdf = slq.pdf(grid, high / 100).numpy()
            dens.plot(grid.numpy(), np.maximum(pdf, 1e-12), color=color, lw=1.0 if i == 0 else 0.6,
                      alpha=1.0 if i == 0 else 0.5, label=f"{labels} labels ({len(mine)} seeds)" if i == 0 else None)
    dens.set_yscale("log")
    dens.set_ylim(bottom=1e-6)
    dens.set_xlabel("Hessian eigenvalue (loss / parameter²)")
    dens.set_ylabel(f"SLQ spectral density (Gaussian σ = {high / 100:.2g})")
    dens.set_title("spectral density at fit, each seed", fontsize=9)
    for ax in (top, ratios, dens):
        plain_ticks(ax, "x" if ax is top else "y")
        ax.legend(fontsize=7)
    plain_ticks(top, "y")
    plain_ticks(dens, "x")
    fig.suptitle("Hessian of the training loss (labels trained on): true against random labels", fontsize=10)
    return fig


def report(setting: Setting, records: list[dict[str, Any]], rows: dict[str, Any], seconds: float, cpu: float,
           command: str) -> str:
    """The markdown report: set-up, fit and curvature tables, verdicts and the papers' claims."""
    n = len(setting.seeds)
    fits = {labels: sum(r["steps_to_fit"] is not None for r in records if r["labels"] == labels) for labels in LABELS}
    test = {labels: [r["test_accuracy"] for r in records if r["labels"] == labels] for labels in LABELS}
    lines = [
        "# Random labels (Zhang et al. 2017): training time and curvature", "",
        f"Data: {load_dataset('digits', **setting.data_kwargs).description} Random labels: `random_labels=True`, every training label an "
        f"independent uniform draw over the 10 classes (`label_seed` = seed); test labels true. Model: "
        f"one-hidden-layer ReLU MLP with {setting.width} units, Adam lr {setting.lr:g}, batch {setting.batch_size}, no "
        f"weight decay, {setting.steps} steps, training accuracy evaluated every {setting.eval_every} steps; seeds "
        f"{list(setting.seeds)}. Curvature: float32 Hessian of the mean training cross-entropy (labels trained on) "
        f"over all training samples, top {setting.top_k} eigenpairs deflated, SLQ {setting.slq_steps} steps x "
        f"{setting.slq_runs} runs. Produced by `{command}` on one thread: the stored runs and measurements took "
        f"{sum(r['cpu_seconds'] for r in records) / 60:.1f} CPU minutes in all (training and curvature); this "
        f"invocation {cpu / 60:.1f} CPU and {seconds / 60:.1f} wall minutes on a shared machine (stored results are "
        f"reused).", "",
        "![training](random_labels_training.png)", "", "![curvature](random_labels_curvature.png)", "",
        f"Runs that reached 100% training accuracy: true labels {fits['true']}/{n}, random labels "
        f"{fits['random']}/{n}. Test accuracy at the end: true labels {mean_sd(test['true'])}, random labels "
        f"{mean_sd(test['random'])} (chance 0.1).", "",
        f"Mean ± s.d. over seeds; ratio = random mean / true mean; Welch's t-test between the labellings "
        f"(on log values). Curvature \"fit\": at each run's first step with 100% training accuracy; \"end\": after "
        f"{setting.steps}.", "",
        "| quantity | at | true labels | random labels | ratio | Welch p |", "|---|---|---|---|---|---|"]
    names = {"steps_to_fit": "steps to 100% train accuracy", "lambda_max": "λ_max", "trace": "tr H",
             **{f"neff_z{z:g}": f"N_eff (z = {z:g})" for z in setting.zs}}
    for key, row in rows.items():
        name, point = key.split("@")
        digits = 0 if name == "steps_to_fit" else 3
        lines.append(f"| {names[name]} | {'—' if name == 'steps_to_fit' else point} | "
                     f"{mean_sd(row['per_seed']['true'], digits) if row['per_seed']['true'] else 'not fitted'} | "
                     f"{mean_sd(row['per_seed']['random'], digits) if row['per_seed']['random'] else 'not fitted'} | "
                     f"{row['ratio']:.2f} | {row['welch_p']:.2g} |")
    trace_errors = {p: max(r[p]["trace_stderr"] / abs(r[p]["trace"]) for r in records if p in r) for p in POINTS}
    lines += ["", f"The SLQ standard error of tr H is at most {trace_errors['fit']:.1%} of its value at fit and "
              f"{trace_errors['end']:.1%} at the end, over all runs (per-run errors are in the JSON).", "",
              "## Verdict", ""]
    steps = rows["steps_to_fit@fit"]
    if fits["random"] == n and fits["true"] == n:
        lines.append(f"* Every run fits its labels: random labels take {steps['ratio']:.1f} times as many steps as the "
                     f"true labels ({mean_sd(steps['per_seed']['random'], 0)} against "
                     f"{mean_sd(steps['per_seed']['true'], 0)}, Welch p = {steps['welch_p']:.2g}). Zhang et al.: "
                     f"fits, slower by a small constant factor; " + ("**reproduces**." if steps["welch_p"] < 0.05
                                                                     and steps["ratio"] > 1 else
                                                                     "the slowdown is not significant here."))
    else:
        lines.append(f"* Not every run reached 100% training accuracy within {setting.steps} (true {fits['true']}/{n}, "
                     f"random {fits['random']}/{n}): **does not reproduce** in this budget.")
    for point in POINTS:
        found = []
        for name in ["lambda_max", "trace"] + [f"neff_z{z:g}" for z in setting.zs]:
            row = rows[f"{name}@{point}"]
            direction = "larger" if row["ratio"] > 1 else "smaller"
            found.append(f"{names[name]} {row['ratio']:.2f}× (p = {row['welch_p']:.2g}"
                         + (f", {direction} with random labels" if row["welch_p"] < 0.05 else ", no difference shown")
                         + ")")
        lines.append(f"* Curvature at {point}: " + "; ".join(found) + ".")
    at_fit = {labels: [next(h[2] for h in r["history"] if h[0] == r["steps_to_fit"]) for r in records
                       if r["labels"] == labels and r["steps_to_fit"] is not None] for labels in LABELS}
    end_loss = {labels: [r["train_loss"] for r in records if r["labels"] == labels] for labels in LABELS}
    lines += ["", "Reading: a ratio above 1 with p < 0.05 supports the sharper-minimum expectation for that measure "
              "and point. The cross-entropy Hessian shrinks as the margins grow, so a lower training loss alone "
              "lowers the curvature: training loss at the end "
              f"{_scientific(end_loss['true'])} (true) against {_scientific(end_loss['random'])} (random), at the fit "
              f"step {_scientific(at_fit['true'])} against {_scientific(at_fit['random'])}; the \"fit\" comparison, both networks "
              "just at 100% training accuracy, is the less confounded one. " + f"{n} seeds per labelling; one "
              "data set and one architecture.", "", CLAIMS]
    return "\n".join(lines)


def _scientific(values: list[float]) -> str:
    """``"mean ± s.d."`` in scientific notation (``"-"`` for no values)."""
    if not values:
        return "-"
    return f"{np.mean(values):.2e}" + (f" ± {np.std(values, ddof=1):.1e}" if len(values) > 1 else "")


def main() -> None:
    run = invocation("random_labels", __doc__.split("\n\n")[0])
    setting = QUICK if run.quick else FULL
    progress, cpu_began = Progress(), time.process_time()
    records = []
    for labels in LABELS:
        for seed in setting.seeds:
            records.append(measure(setting, labels, seed, run.out))
            progress.done(f"{labels} labels, seed {seed}")
    rows = compare(setting, records)
    seconds, cpu = progress.seconds, time.process_time() - cpu_began
    save_figure(plot_training(setting, records), run.figures / "random_labels_training.png")
    save_figure(plot_curvature(setting, records, rows), run.figures / "random_labels_curvature.png")
    command = "python analyses/random_labels.py" + (" --quick" if run.quick else "")
    text = report(setting, records, rows, seconds, cpu, command)
    atomic_write_bytes(run.figures / "random_labels.md", text.encode())
    atomic_write_json(run.figures / "random_labels.json", {
        "setting": asdict(setting), "comparison": rows,
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in records], "seconds": seconds, "cpu_seconds": cpu})
    print(text)


if __name__ == "__main__":
    main()
