"""Flat minima and generalisation: small against large batches (Keskar et al. 2017), and the reparametrisation
caveat (Dinh et al. 2017).

(a) **Small against large batch.** A ReLU MLP on MNIST-1D, trained by Adam (learning rate 1e-3, no weight decay,
    the optimizer of Keskar et al.) with a small batch (SB) and a large one (LB), the same initialisation and data
    order seed in both arms. Keskar et al. compare the two after the same number of epochs, by which both fit
    their training sets; here the LB network has not fitted its training set after the SB network's epochs, so
    we compare at two points of the LB run:

    * **same training loss** (the main comparison): each arm at its first evaluation (every few epochs for SB,
      every ``large_every`` steps for LB) whose full training cross-entropy is at most ``target_loss``;
    * **same epochs** (Keskar's protocol taken literally): the LB network after as many epochs as the SB network
      it is compared with (then still underfitted).

    At each point, in float64 over the whole training set: the Hessian's largest eigenvalue ``λ_max``
    (Lanczos, the solver's error bound), its trace (Hutch++ split of deflated SLQ, standard error), the
    Laplace/Occam term ``−½ Σ log(1 + λ_i⁺/δ)`` (nats; the log-determinant ratio of the Laplace evidence,
    MacKay 1992) and the effective dimensionality ``N_eff = Σ λ_i⁺/(λ_i⁺ + δ)`` (Maddox et al. 2020; MacKay's
    number of well-determined parameters), from :func:`landscape.instruments.flatness` with ``δ = 0.1`` on the
    mean-loss Hessian: prior precision ``δ N = 400`` on the summed log-likelihood, a Gaussian prior of s.d. 0.05 per
    weight, about PyTorch's initialisation s.d. ``1/√(3·100) = 0.058`` of the 100-wide layers. (A unit prior,
    ``δ = 1/N``, puts the bulk of near-zero eigenvalues in charge, and deflated SLQ does not converge there: on one
    network, 30 against 90 Lanczos steps gave ``N_eff`` 1848 ± 82 against 5849 ± 182. At ``δ = 0.1`` the script
    checks its quadrature by doubling the steps on one network and reports the change.) And the
    generalisation gap (test − train cross-entropy, train − test accuracy). Arms are compared per seed (paired
    t-test on the difference; for ``λ_max`` and the trace on the log-ratio), and every measure is correlated with
    the test − train loss gap across all networks at the same training loss (Spearman).

(b) **Reparametrisation (Dinh et al. 2017).** For the SB network of seed 0, the first hidden layer's weights and
    biases are multiplied by ``α`` and the second layer's weights divided by ``α``. ReLU is positively
    homogeneous, so the network computes the same function (asserted to float64 precision on every training and
    test input), while its Hessian becomes ``D⁻¹ H D⁻¹`` (``D = α`` on the first layer, ``1/α`` on the second):
    every flatness measure moves, the function does not.

Writes ``figures/flat_minima_measures.png`` (the measures and gaps per arm), ``figures/flat_minima_gap.png``
(each measure against the gap), ``figures/flat_minima_rescaling.png`` (the measures against α),
``figures/flat_minima.md`` (our numbers beside the papers' claims, verdicts) and ``figures/flat_minima.json``.
Resumable: the training runs live under ``--out`` (the trainer resumes them) and every measurement is cached there.

    python analyses/flat_minima.py            # full: about 8 CPU-minutes on one thread
    python analyses/flat_minima.py --quick    # smoke test, seconds; writes under --out only
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import nn

from landscape.data import Dataset, load_dataset
from landscape.foundation.runs import Run, atomic_write_bytes, atomic_write_json, cached_json
from landscape.instruments import flatness
from landscape.linalg.uncertainty import sampling_quantile
from landscape.operators import Hessian
from landscape.plots import save_figure
from landscape.plots.style import bounded_errors, error_caption, new_figure, plain_ticks
from landscape.training import Hparams, load_model, train
from landscape.training.evaluation import evaluate
from reproduction import Progress, invocation, mean_sd, paired_difference

NAME = "flat_minima"


@dataclass(frozen=True)
class Setting:
    """Model, the two arms' training, the target training loss, seeds, the flatness budget and the rescalings."""
    widths: tuple[int, ...]
    small_batch: int
    large_batch: int
    lr: float
    small_epochs: int
    small_every_epochs: int
    large_steps: int
    large_every: int
    target_loss: float
    seeds: int
    prior_precision: float
    k: int
    slq_steps: int
    slq_runs: int
    alphas: tuple[float, ...]

    def tag(self) -> str:
        """The measurement settings in a cached file's name: a changed setting is measured afresh."""
        return f"p{self.prior_precision:g}_k{self.k}_slq{self.slq_steps}x{self.slq_runs}"


FULL = Setting(widths=(100, 100), small_batch=32, large_batch=1024, lr=1e-3, small_epochs=150, small_every_epochs=5,
               large_steps=3000, large_every=100, target_loss=0.02, seeds=5, prior_precision=400.0, k=5, slq_steps=50,
               slq_runs=6, alphas=(0.01, 0.1, 1.0, 10.0, 100.0))
QUICK = Setting(widths=(16, 16), small_batch=32, large_batch=1024, lr=1e-3, small_epochs=4, small_every_epochs=2,
                large_steps=24, large_every=6, target_loss=1.5, seeds=2, prior_precision=400.0, k=3, slq_steps=8,
                slq_runs=3, alphas=(0.1, 1.0, 10.0))
ARMS = ("small", "large_same_epochs", "large")
ARM_LABEL = {"small": "small batch, at target loss", "large_same_epochs": "large batch, same epochs as SB",
             "large": "large batch, at target loss"}
ARM_COLOR = {"small": "C0", "large_same_epochs": "C1", "large": "C3"}
MEASURES = (("lambda_max", "λ_max of the Hessian", True), ("trace", "tr H", True),
            ("occam_factor", "Occam term −½Σlog(1+λ⁺/δ) (nats)", False),
            ("effective_dim", "effective dimensionality N_eff", False))
SHARP_SIGN = {"lambda_max": 1, "trace": 1, "occam_factor": -1, "effective_dim": 1}   # the sign of "sharper"
GAPS = (("loss_gap", "test − train cross-entropy"), ("accuracy_gap", "train − test accuracy"))
CLAIMS = """\
## What the papers found (their settings, not ours)

* Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (2017), "On Large-Batch Training for Deep Learning: Generalization
  Gap and Sharp Minima" (ICLR): with Adam, small batches of 256 against large ones of 10% of the data, the same
  number of epochs, both arms reach about the same training accuracy but large batches test worse, and converge
  to sharper minimizers, by their ε-sharpness (the largest relative loss increase in a small box around the
  minimizer, a proxy for the large Hessian eigenvalues) and by the Hessian's spectrum. For their MNIST
  fully connected network F1 (their Tables 1 and 2, 5 runs, mean ± s.d.): training accuracy 99.66 ± 0.05% (SB)
  and 99.92 ± 0.01% (LB), test accuracy 98.03 ± 0.07% (SB) and 97.81 ± 0.07% (LB), ε-sharpness at ε = 1e-3
  1.23 ± 0.83 (SB) and 205.14 ± 69.52 (LB).
* Dinh, Pascanu, Bengio & Bengio (2017), "Sharp Minima Can Generalize For Deep Nets" (ICML): for rectifier
  networks the α-scale transformation (layer l times α, layer l+1 times 1/α) leaves the function unchanged while
  the Hessian's spectral norm and trace can be made arbitrarily large, so such flatness measures are not
  reparametrisation-invariant and cannot by themselves explain generalisation.
"""


def hparams(setting: Setting, seed: int, batch: int, n_train: int) -> Hparams:
    """One arm's training run: MLP on MNIST-1D, Adam, no weight decay, evaluated (and checkpointed) on a grid."""
    every = (setting.small_every_epochs * (n_train // setting.small_batch) if batch == setting.small_batch
             else setting.large_every)
    steps = (f"{setting.small_epochs}ep" if batch == setting.small_batch else f"{setting.large_steps}it")
    return Hparams(model="mlp", model_kwargs={"widths": list(setting.widths)}, data="mnist1d", batch_size=batch,
                   steps=steps, optimizer="adam", lr=setting.lr, weight_decay=0.0, init_seed=seed,
                   data_order_seed=seed, eval_every=every, checkpoint_every=every)


def first_below(run_dir: Path, target: float) -> tuple[int, bool]:
    """The first evaluated step whose full training loss is at most ``target`` and whether one was; else the last
    evaluated step (the arm did not reach the target)."""
    records = Run(run_dir).metrics("train")
    for record in records:
        if record["loss"] <= target:
            return int(record["step"]), True
    return int(records[-1]["step"]), False


def train_arms(setting: Setting, seed: int, n_train: int, out: Path) -> dict[str, dict[str, Any]]:
    """Train both arms of ``seed`` (resuming) and choose the compared checkpoints: ``{arm: {run, step, ...}}``.
    The LB run also checkpoints the step at which it has seen as many epochs as the chosen SB network."""
    small_dir, large_dir = out / f"seed{seed}" / "small", out / f"seed{seed}" / "large"
    train(hparams(setting, seed, setting.small_batch, n_train), small_dir, progress=False)
    small_step, small_reached = first_below(small_dir, setting.target_loss)
    epochs = small_step // (n_train // setting.small_batch)
    large_per_epoch = n_train // setting.large_batch
    same_epochs_step = epochs * large_per_epoch
    if same_epochs_step > setting.large_steps:
        raise ValueError(f"the LB run ({setting.large_steps} steps) is shorter than the SB run's {epochs} epochs: "
                         f"raise large_steps")
    large_hp = replace(hparams(setting, seed, setting.large_batch, n_train), checkpoint_steps=(0, same_epochs_step))
    train(large_hp, large_dir, progress=False)
    large_step, large_reached = first_below(large_dir, setting.target_loss)
    return {"small": {"run": small_dir, "step": small_step, "reached": small_reached, "epochs": epochs},
            "large_same_epochs": {"run": large_dir, "step": same_epochs_step, "reached": None, "epochs": epochs},
            "large": {"run": large_dir, "step": large_step, "reached": large_reached,
                      "epochs": large_step / large_per_epoch}}


def measure(model: nn.Module, dataset: Dataset, setting: Setting, seed: int) -> dict[str, Any]:
    """Flatness measures (float64, whole training set, ``δ = prior_precision / N`` on the mean-loss Hessian),
    train/test loss and accuracy, the weights' Euclidean norm, and the CPU seconds the measurement took."""
    began = time.process_time()
    model = copy.deepcopy(model).double().eval()
    loss_fn = dataset.loss_fn()
    x, y = dataset.train
    delta = setting.prior_precision / len(y)
    op = Hessian(model, loss_fn, (x.double(), y), dtype=torch.float64)
    f = flatness(op, delta=delta, z=delta, k=setting.k, steps=setting.slq_steps, runs=setting.slq_runs, seed=seed)
    tr = evaluate(model, loss_fn, (x.double(), y))
    te = evaluate(model, loss_fn, (dataset.test[0].double(), dataset.test[1]))
    return {**asdict(f), "occam_factor": f.occam + 0.5 * f.dim * math.log(delta), "occam_factor_stderr": f.occam_stderr,
            "train_loss": tr.loss, "test_loss": te.loss, "train_accuracy": tr.accuracy,
            "test_accuracy": te.accuracy, "loss_gap": te.loss - tr.loss,
            "accuracy_gap": tr.accuracy - te.accuracy,
            "weight_norm": float(torch.cat([p.detach().reshape(-1) for p in model.parameters()]).norm()),
            "cpu_seconds": time.process_time() - began}


def seed_results(setting: Setting, dataset: Dataset, seed: int, out: Path) -> dict[str, dict[str, Any]]:
    """Every arm of one seed: the chosen checkpoint and its measurements (cached)."""
    arms = train_arms(setting, seed, len(dataset.train[1]), out)
    results = {}
    for arm, where in arms.items():
        path = out / f"seed{seed}" / f"measure_{arm}_step{where['step']}_{setting.tag()}.json"
        numbers = cached_json(path, lambda: measure(load_model(where["run"], where["step"]), dataset, setting, seed))
        results[arm] = {**numbers, "step": where["step"], "epochs": where["epochs"], "reached": where["reached"],
                        "seed": seed}
    return results


def rescaled(model: nn.Module, alpha: float) -> nn.Module:
    """Dinh et al.'s α-scale transformation of the first two hidden layers: the first layer's weight and bias
    times ``alpha``, the second layer's weight divided by it (its bias unchanged); the same function for ReLU."""
    out = copy.deepcopy(model)
    first, second = [m for m in out.features if isinstance(m, nn.Linear)][:2]
    with torch.no_grad():
        first.weight.mul_(alpha)
        first.bias.mul_(alpha)
        second.weight.div_(alpha)
    return out


def rescaling(setting: Setting, dataset: Dataset, base: nn.Module, out: Path) -> list[dict[str, Any]]:
    """Part (b): the flatness measures of the rescaled ``base`` network at every α, and how far its outputs move."""
    base = copy.deepcopy(base).double().eval()
    inputs = torch.cat([dataset.train[0], dataset.test[0]]).double()
    with torch.no_grad():
        reference = base(inputs)
    rows = []
    for alpha in setting.alphas:
        model = rescaled(base, alpha)
        with torch.no_grad():
            deviation = float((model(inputs) - reference).abs().max() / reference.abs().max())
        assert deviation < 1e-12, f"the α = {alpha} rescaling changed the outputs by {deviation:.1e} (relative)"
        numbers = cached_json(out / "rescaling" / f"alpha{alpha:.6g}_{setting.tag()}.json",
                              lambda: measure(model, dataset, setting, 0))
        rows.append({**numbers, "alpha": alpha, "output_deviation": deviation})
    return rows


def paired(values_a: np.ndarray, values_b: np.ndarray, log: bool) -> dict[str, float]:
    """Paired comparison of arm b against arm a over seeds (:func:`reproduction.paired_difference` of b − a, or
    of the logs with ``log``, then read as the geometric mean ratio b/a): the mean, its s.d. over seeds, a 95% t
    interval, the two-sided paired t-test's p-value and how many seeds have b larger."""
    a, b = (np.log(values_a), np.log(values_b)) if log else (np.asarray(values_a), np.asarray(values_b))
    d = paired_difference(b, a)
    n, mean = d["n"], d["mean"]
    sd = d["se"] * math.sqrt(n) if n > 1 else math.nan
    half = sampling_quantile(n) * d["se"] if n > 1 else math.nan
    larger = int((b - a > 0).sum())
    if log:
        return {"ratio": math.exp(mean), "low": math.exp(mean - half), "high": math.exp(mean + half),
                "sd_log": sd, "p": d["p"], "n": n, "b_larger": larger}
    return {"difference": mean, "low": mean - half, "high": mean + half, "sd": sd, "p": d["p"], "n": n,
            "b_larger": larger}


def comparisons(results: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Paired LB-against-SB comparisons of every measure and gap, at the same loss and at the same epochs."""
    keys = [(m, log) for m, _, log in MEASURES] + [(g, False) for g, _ in GAPS] + [("test_accuracy", False),
                                                                                     ("train_loss", True)]
    out = {}
    for arm in ("large", "large_same_epochs"):
        out[arm] = {key: paired(np.array([r["small"][key] for r in results]), np.array([r[arm][key] for r in results]),
                                log) for key, log in keys}
    return out


def correlations(results: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Spearman correlation of each measure with the test − train loss gap over every network at the target loss
    (both arms, all seeds), with a two-sided permutation p-value (exact for up to 7 networks, else 9999 random
    permutations): the t approximation is wrong for so few points."""
    runs = [r[arm] for r in results for arm in ("small", "large")]
    gap = np.array([r["loss_gap"] for r in runs])
    out = {}
    for key, _, _ in MEASURES:
        x = np.array([r[key] for r in runs])
        test = stats.permutation_test((x, gap), lambda a, b: stats.spearmanr(a, b)[0], permutation_type="pairings",
                                      n_resamples=9999, rng=np.random.default_rng(0))
        out[key] = {"rho": float(test.statistic), "p": float(test.pvalue), "n": len(runs)}
    return out


def plot_measures(results: list[dict[str, dict[str, Any]]]) -> Figure:
    """Each measure and gap per arm: every seed as a dot, mean ± s.d. over seeds as an error bar."""
    fig = new_figure(13, 7.4)
    axes = fig.subplots(2, 3).ravel()
    panels = [(k, label) for k, label, _ in MEASURES] + list(GAPS)
    for ax, (key, label) in zip(axes, panels):
        signed = key in ("occam_factor", "loss_gap", "accuracy_gap")
        for i, arm in enumerate(ARMS):
            values = np.array([r[arm][key] for r in results])
            ax.scatter(np.full(values.size, i) + np.linspace(-0.12, 0.12, values.size), values, s=14,
                       color=ARM_COLOR[arm], alpha=0.6)
            sd = values.std(ddof=1) if values.size > 1 else 0.0
            ax.errorbar([i + 0.3], [values.mean()], yerr=[[sd], [sd]] if signed else bounded_errors([values.mean()], [sd]),
                        marker="s", color=ARM_COLOR[arm], capsize=4, label=ARM_LABEL[arm] if ax is axes[0] else None)
        ax.set_xticks(range(len(ARMS)), ["SB", "LB\nsame epochs", "LB\nsame loss"])
        ax.set_xlim(-0.5, len(ARMS) - 0.2)
        if not signed:
            ax.set_ylim(bottom=0)
        plain_ticks(ax, "y")
        ax.set_title(label, fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=9,
               title=f"dots: the {len(results)} seeds; squares: {error_caption(len(results))}", title_fontsize=9)
    fig.suptitle("Flatness at the compared points (float64 Hessian of the mean training loss, δ = 0.1)", fontsize=11)
    return fig


def plot_gap(results: list[dict[str, dict[str, Any]]], rho: dict[str, dict[str, float]]) -> Figure:
    """Each measure (± its instrument error) against the test − train loss gap, every network at the target."""
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, len(MEASURES))
    for ax, (key, label, _) in zip(axes, MEASURES):
        err = "lambda_max_error" if key == "lambda_max" else f"{key}_stderr"
        for arm in ("small", "large"):
            runs = [r[arm] for r in results]
            x = np.array([r[key] for r in runs])
            xerr = [[r[err] for r in runs], [r[err] for r in runs]]
            if key != "occam_factor":
                xerr = bounded_errors(x, [r[err] for r in runs])
            ax.errorbar(x, [r["loss_gap"] for r in runs], xerr=xerr, ls="none", marker="o", ms=4,
                        color=ARM_COLOR[arm], capsize=2, label=ARM_LABEL[arm])
        plain_ticks(ax)
        ax.set_xlabel(label)
        ax.set_title(f"Spearman ρ = {rho[key]['rho']:.2f}, n = {rho[key]['n']}\n(permutation {_p(rho[key]['p'])})",
                     fontsize=9)
    axes[0].set_ylabel("test − train cross-entropy")
    axes[0].legend(fontsize=7, title="x error bars: instrument error", title_fontsize=7)
    return fig


def plot_rescaling(rows: list[dict[str, Any]]) -> Figure:
    """The measures against α (instrument errors as bars), and the outputs' largest relative change."""
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, 4)
    alpha = np.array([r["alpha"] for r in rows])
    for key, label, color in (("lambda_max", "λ_max", "C0"), ("trace", "tr H", "C2")):
        err = "lambda_max_error" if key == "lambda_max" else "trace_stderr"
        y = np.array([r[key] for r in rows])
        axes[0].errorbar(alpha, y, yerr=bounded_errors(y, [r[err] for r in rows]), marker="o", color=color,
                         capsize=3, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("curvature (loss per parameter²)")
    axes[0].legend(fontsize=8)
    for ax, key, label, color in ((axes[1], "occam_factor", "Occam term (nats)", "C4"),
                                  (axes[2], "effective_dim", "effective dimensionality N_eff", "C5")):
        y = np.array([r[key] for r in rows])
        e = np.array([r[f"{key}_stderr"] for r in rows])
        ax.errorbar(alpha, y, yerr=e if key == "occam_factor" else bounded_errors(y, e), marker="o", color=color,
                    capsize=3)
        ax.set_ylabel(label)
    axes[3].plot(alpha, [r["test_loss"] for r in rows], marker="o", color="C3", label="test cross-entropy")
    axes[3].plot(alpha, [r["train_loss"] for r in rows], marker="s", color="C0", label="train cross-entropy")
    axes[3].set_ylabel("loss (unchanged by α)")
    axes[3].legend(fontsize=8, title=f"largest relative output change {max(r['output_deviation'] for r in rows):.1e}",
                   title_fontsize=7)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("α (layer 1 × α, layer 2 × 1/α)")
        plain_ticks(ax)
    for ax, title in zip(axes, ("sharpness and trace", "Laplace/Occam term", "effective dimensionality",
                                "the function: unchanged")):
        ax.set_title(title, fontsize=10)
    fig.suptitle("One trained network rescaled (Dinh et al.'s α-scale transformation); error bars: instrument error",
                 fontsize=11)
    return fig


def _row(values: list[float], digits: int) -> str:
    return mean_sd(values, digits)


def _p(p: float) -> str:
    """A p-value as printed: ``p = 0.032``, or ``p < 0.001``."""
    return "p < 0.001" if p < 1e-3 else f"p = {p:.2g}"


def report(setting: Setting, dataset: Dataset, results: list[dict[str, dict[str, Any]]],
           compared: dict[str, Any], rho: dict[str, Any], rows: list[dict[str, Any]], quadrature: dict[str, Any],
           seconds: float, command: str) -> str:
    """The markdown report: set-up, tables, verdicts with their statistics, the papers' claims."""
    n = len(results)
    lines = [
        "# Flat minima and generalisation (Keskar et al. 2017; Dinh et al. 2017)", "",
        f"Data: {dataset.description} Model: ReLU MLP, hidden widths {list(setting.widths)}, "
        f"{results[0]['small']['dim']} weights. Training: Adam, learning rate {setting.lr:g}, no weight decay, "
        f"small batch (SB) {setting.small_batch}, large batch (LB) {setting.large_batch}, the same initialisation "
        f"and data-order seed in both arms, {n} seeds. Produced by `{command}` ({seconds / 60:.1f} minutes wall for "
        f"this invocation; stored results are reused).", "",
        f"Compared points: SB at its first evaluation (every {setting.small_every_epochs} epochs) with training "
        f"cross-entropy ≤ {setting.target_loss:g}; LB at its first (every {setting.large_every} steps) — **same "
        f"training loss**; and LB after as many epochs as that SB network — **same epochs** (Keskar's protocol; "
        f"LB is then underfitted here). Measures: float64 Hessian of the mean training cross-entropy over all "
        f"{len(dataset.train[1])} samples; λ_max by certified Lanczos, tr H, the Occam term −½Σlog(1 + λ⁺/δ) and "
        f"N_eff = Σλ⁺/(λ⁺ + δ) by deflated SLQ (top {setting.k} deflated, {setting.slq_steps} steps × "
        f"{setting.slq_runs} probes) with δ = {setting.prior_precision / len(dataset.train[1]):g} (prior precision "
        f"{setting.prior_precision:g} on the summed log-likelihood, a Gaussian prior of s.d. "
        f"{setting.prior_precision ** -0.5:.2g} per weight). " + quadrature_note(quadrature) + " "
        + instrument_against_seeds(results), "",
        "![measures](flat_minima_measures.png)", "",
        "| arm | epochs | steps | train loss | train acc | test acc | test − train loss | λ_max | tr H | Occam term "
        "| N_eff | ‖θ‖ |", "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        col = lambda key: [r[arm][key] for r in results]   # noqa: E731
        lines.append(f"| {ARM_LABEL[arm]} | {_row(col('epochs'), 0)} | {_row(col('step'), 0)} | "
                     f"{_row(col('train_loss'), 4)} | {_row(col('train_accuracy'), 4)} | "
                     f"{_row(col('test_accuracy'), 4)} | {_row(col('loss_gap'), 3)} | {_row(col('lambda_max'), 2)} | "
                     f"{_row(col('trace'), 1)} | {_row(col('occam_factor'), 0)} | {_row(col('effective_dim'), 0)} | "
                     f"{_row(col('weight_norm'), 1)} |")
    reached = {arm: sum(bool(r[arm]["reached"]) for r in results) for arm in ("small", "large")}
    lines += ["", f"All entries mean ± s.d. over {n} seeds. Target loss reached by SB in {reached['small']}/{n} "
              f"seeds and by LB in {reached['large']}/{n} (else the last evaluation is used).", "",
              "Paired comparisons, LB against SB of the same seed (95% t interval over seeds, two-sided paired "
              "t-test; λ_max and tr H as the geometric-mean ratio LB/SB, the rest as the mean difference LB − SB):",
              "", "| quantity | LB at the same training loss | p | LB larger in | LB at the same epochs | p | "
              "LB larger in |", "|---|---|---|---|---|---|---|"]
    for key, label in ([(k, lab) for k, lab, _ in MEASURES] + list(GAPS) + [("test_accuracy", "test accuracy")]):
        cells = []
        for arm in ("large", "large_same_epochs"):
            c = compared[arm][key]
            value = (f"× {c['ratio']:.3g} [{c['low']:.3g}, {c['high']:.3g}]" if "ratio" in c
                     else f"{c['difference']:+.4g} [{c['low']:+.4g}, {c['high']:+.4g}]")
            cells += [value, f"{c['p']:.2g}", f"{c['b_larger']}/{c['n']}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "![measures against the gap](flat_minima_gap.png)", "",
              "Spearman correlation of each measure with the test − train loss gap over the "
              f"{2 * n} networks at the target loss (two-sided permutation p): " + "; ".join(
                  f"{label.split(' (')[0]} ρ = {rho[k]['rho']:.2f} ({_p(rho[k]['p'])})" for k, label, _ in MEASURES)
              + ".", "", "## Verdicts", "", *verdicts(results, compared, rho, quadrature), "",
              "## Reparametrisation: the same function, other flatness (Dinh et al. 2017)", "",
              f"SB network of seed 0 at the target loss, first hidden layer (weights and biases) × α, second hidden "
              f"layer's weights × 1/α, α from {min(setting.alphas):g} to {max(setting.alphas):g}. Largest relative "
              f"change of any output over all {len(dataset.train[1]) + len(dataset.test[1])} train and test inputs: "
              f"{max(r['output_deviation'] for r in rows):.1e} (asserted below 1e-12).", "",
              "![rescaling](flat_minima_rescaling.png)", "",
              "| α | λ_max | tr H | Occam term | N_eff | train loss | test loss | test acc |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['alpha']:.3g} | {r['lambda_max']:.4g} ± {r['lambda_max_error']:.1g} | "
                     f"{r['trace']:.4g} ± {r['trace_stderr']:.2g} | {r['occam_factor']:.1f} ± "
                     f"{r['occam_factor_stderr']:.1f} | {r['effective_dim']:.1f} ± {r['effective_dim_stderr']:.1f} | "
                     f"{r['train_loss']:.6f} | {r['test_loss']:.6f} | {r['test_accuracy']:.4f} |")
    lines += ["", dinh_verdict(rows), "", CLAIMS]
    return "\n".join(lines)


def _direction(c: dict[str, float], larger: str, smaller: str) -> str:
    """``larger``/``smaller`` when the paired test finds LB different from SB at p < 0.05, else no difference."""
    up = c["ratio"] > 1 if "ratio" in c else c["difference"] > 0
    if not c["p"] < 0.05:
        return "no significant difference"
    return larger if up else smaller


def quadrature_check(setting: Setting, dataset: Dataset, model: nn.Module, out: Path) -> dict[str, Any]:
    """Seed 0's SB network measured again with twice the Lanczos steps: how far the quadrature has converged
    (the bias of the Occam term and N_eff that their standard errors do not contain)."""
    finer = replace(setting, slq_steps=2 * setting.slq_steps)
    return cached_json(out / "seed0" / f"quadrature_{finer.tag()}.json", lambda: measure(model, dataset, finer, 0))


def quadrature_note(check: dict[str, Any]) -> str:
    """The quadrature check in words: each SLQ measure at the setting's steps and at twice as many."""
    base, fine = check["base"], check["fine"]
    parts = [f"{label.split(' (')[0]} {base[k]:.4g} ± {base[f'{k}_stderr']:.2g} against {fine[k]:.4g} ± "
             f"{fine[f'{k}_stderr']:.2g}" for k, label, _ in MEASURES[1:]]
    return (f"Quadrature check on seed 0's SB network, {base['steps']} against {fine['steps']} Lanczos steps: "
            + "; ".join(parts) + ".")


def instrument_against_seeds(results: list[dict[str, dict[str, Any]]]) -> str:
    """How large each measure's instrument error is (median over all networks) against its s.d. over seeds (median
    over arms): whether the seed spread, which the comparisons use, is the spread of the networks."""
    parts = []
    for key, label, _ in MEASURES:
        err = "lambda_max_error" if key == "lambda_max" else f"{key}_stderr"
        instrument = float(np.median([r[arm][err] for r in results for arm in ARMS]))
        seeds = float(np.median([np.std([r[arm][key] for r in results], ddof=1) for arm in ARMS]))
        parts.append(f"{label.split(' (')[0]} {instrument:.2g} against {seeds:.2g}")
    return ("Instrument error (median over networks) against the s.d. over seeds (median over arms): "
            + "; ".join(parts) + ".")


def verdicts(results: list[dict[str, dict[str, Any]]], compared: dict[str, Any], rho: dict[str, Any],
             quadrature: dict[str, Any]) -> list[str]:
    """One line per claim of Keskar et al., read off the paired tests over seeds (significant: p < 0.05)."""
    n = len(results)
    same, epochs = compared["large"], compared["large_same_epochs"]
    sharp, trace = same["lambda_max"], same["trace"]
    acc, gap = same["test_accuracy"], same["loss_gap"]
    sharpness = _direction(sharp, "LB sharper", "LB flatter")
    generalises = _direction(acc, "LB tests better", "LB tests worse")
    lines = [
        f"* **LB converges to sharper minima.** At the same training loss λ_max(LB)/λ_max(SB) = {sharp['ratio']:.3g} "
        f"[{sharp['low']:.3g}, {sharp['high']:.3g}] ({_p(sharp['p'])}, LB sharper in {sharp['b_larger']}/{n} seeds) "
        f"and tr H(LB)/tr H(SB) = {trace['ratio']:.3g} [{trace['low']:.3g}, {trace['high']:.3g}] ({_p(trace['p'])}); "
        f"at the same epochs λ_max(LB)/λ_max(SB) = {epochs['lambda_max']['ratio']:.3g} "
        f"({_p(epochs['lambda_max']['p'])}). Verdict: "
        + ("**reproduces in direction**" + (", by far less than Keskar's two orders of magnitude (their "
                                            "ε-sharpness, not λ_max)" if sharp["ratio"] < 10 else "")
           if sharpness == "LB sharper" else f"**does not reproduce** ({sharpness})") + ".",
        f"* **LB generalises worse.** At the same training loss the test accuracy of LB minus SB is "
        f"{acc['difference']:+.4f} [{acc['low']:+.4f}, {acc['high']:+.4f}] ({_p(acc['p'])}) and the test − train "
        f"loss gap {gap['difference']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] ({_p(gap['p'])}); at the same "
        f"epochs the test accuracy differs by {epochs['test_accuracy']['difference']:+.4f} "
        f"({_p(epochs['test_accuracy']['p'])}). Verdict: "
        + ("**reproduces**" if generalises == "LB tests worse" else f"**does not reproduce** ({generalises})") + ".",
    ]
    occam, neff = same["occam_factor"], same["effective_dim"]
    lines.insert(1, f"* **The Laplace/Occam term and N_eff.** At the same training loss LB − SB is "
                    f"{occam['difference']:+.1f} [{occam['low']:+.1f}, {occam['high']:+.1f}] nats ({_p(occam['p'])}) "
                    f"and {neff['difference']:+.1f} [{neff['low']:+.1f}, {neff['high']:+.1f}] ({_p(neff['p'])}): "
                    + ("the sharp side (less Occam evidence, more well-determined directions), as λ_max says"
                       if occam["difference"] < 0 and neff["difference"] > 0 and max(occam["p"], neff["p"]) < 0.05
                       else "not both on the sharp side at p < 0.05")
                    + f". Their quadrature bias at this budget (check above: {quadrature_bias(quadrature)}) is "
                    "common to all networks and not in the error bars; the Occam term is the evidence's volume "
                    "factor only (the full Laplace evidence adds the log-likelihood and −½δ‖θ‖²).")
    agree = [label.split(" (")[0] for k, label, _ in MEASURES
             if rho[k]["p"] < 0.05 and np.sign(rho[k]["rho"]) == SHARP_SIGN[k]]
    lines.append(
        f"* **Flatness tracks the generalisation gap.** Over the {2 * n} networks at the target loss, Spearman "
        f"correlations with the test − train loss gap significant (permutation p < 0.05) and of the sign the claim "
        f"predicts (sharper, larger gap; a lower Occam term, larger gap): {', '.join(agree) if agree else 'none'}. "
        "With two arms such a correlation largely restates the arm difference, so it is weak evidence for flatness "
        "as the cause. Verdict: " + ("**reproduces** for " + ", ".join(agree) if agree
                                     else "**does not reproduce**") + ".")
    lines += ["", "Beside the paper (its F1, a fully connected network on MNIST; ours at the same training loss):", "",
              "| | Keskar et al. SB | Keskar et al. LB | ours SB | ours LB |", "|---|---|---|---|---|",
              f"| training accuracy | 99.66 ± 0.05% | 99.92 ± 0.01% | {_pct(results, 'small', 'train_accuracy')} | "
              f"{_pct(results, 'large', 'train_accuracy')} |",
              f"| test accuracy | 98.03 ± 0.07% | 97.81 ± 0.07% | {_pct(results, 'small', 'test_accuracy')} | "
              f"{_pct(results, 'large', 'test_accuracy')} |",
              f"| sharpness | ε-sharpness 1.23 ± 0.83 | 205.14 ± 69.52 (×167) | λ_max "
              f"{mean_sd([r['small']['lambda_max'] for r in results], 2)} | "
              f"{mean_sd([r['large']['lambda_max'] for r in results], 2)} (paired ×{sharp['ratio']:.2f}) |"]
    return lines


def _pct(results: list[dict[str, dict[str, Any]]], arm: str, key: str) -> str:
    return mean_sd([100 * r[arm][key] for r in results], 2) + "%"


def quadrature_bias(quadrature: dict[str, Any]) -> str:
    """The change of the Occam term and N_eff when the Lanczos steps are doubled, in words."""
    base, fine = quadrature["base"], quadrature["fine"]
    return (f"Occam term {fine['occam_factor'] - base['occam_factor']:+.1f} nats, "
            f"N_eff {fine['effective_dim'] - base['effective_dim']:+.1f}")


def dinh_verdict(rows: list[dict[str, Any]]) -> str:
    """Whether the rescaling moved λ_max and tr H by orders of magnitude while the outputs stayed put."""
    lam = np.array([r["lambda_max"] for r in rows])
    tr = np.array([r["trace"] for r in rows])
    losses = np.array([r["test_loss"] for r in rows])
    spread = float(lam.max() / lam.min())
    reproduced = spread > 100 and max(r["output_deviation"] for r in rows) < 1e-12
    return (f"Reading: over α the network's outputs moved by at most {max(r['output_deviation'] for r in rows):.1e} "
            f"(relative) and its test loss by {float(losses.max() - losses.min()):.1e}, while λ_max ranged over a "
            f"factor {spread:.3g} and tr H over a factor {float(tr.max() / tr.min()):.3g}; the Occam term moved by "
            f"{max(r['occam_factor'] for r in rows) - min(r['occam_factor'] for r in rows):.0f} nats and N_eff by "
            f"{max(r['effective_dim'] for r in rows) - min(r['effective_dim'] for r in rows):.0f}. Dinh et al.'s "
            "caveat " + ("**reproduces**: these measures describe the parametrisation as much as the function, so "
                         "comparing them across networks presumes a common parametrisation (same architecture and "
                         "comparable weight scales)." if reproduced else
                         "**does not reproduce** here (λ_max moved by less than a factor 100)."))


def main() -> None:
    run = invocation(NAME, __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    cpu = time.process_time()
    dataset = load_dataset("mnist1d")
    results = progress.each(range(setting.seeds), lambda seed: seed_results(setting, dataset, seed, out))
    network = load_model(out / "seed0" / "small", results[0]["small"]["step"])
    rows = rescaling(setting, dataset, network, out)
    progress.done(f"rescaling at {len(rows)} values of α")
    fine = quadrature_check(setting, dataset, network, out)
    quadrature = {"base": {**results[0]["small"], "steps": setting.slq_steps},
                  "fine": {**fine, "steps": 2 * setting.slq_steps}}
    progress.done("quadrature check")
    compared, rho = comparisons(results), correlations(results)
    seconds, cpu = progress.seconds, time.process_time() - cpu
    save_figure(plot_measures(results), figures / f"{NAME}_measures.png")
    save_figure(plot_gap(results, rho), figures / f"{NAME}_gap.png")
    save_figure(plot_rescaling(rows), figures / f"{NAME}_rescaling.png")
    command = f"python analyses/{NAME}.py" + (" --quick" if run.quick else "")
    text = report(setting, dataset, results, compared, rho, rows, quadrature, seconds, command)
    atomic_write_bytes(figures / f"{NAME}.md", text.encode())
    atomic_write_json(figures / f"{NAME}.json", {
        "setting": asdict(setting), "seeds": results, "paired": compared, "spearman": rho, "rescaling": rows,
        "quadrature": quadrature, "seconds": seconds, "cpu_seconds": cpu,
        "measurement_cpu_seconds": sum(r[arm]["cpu_seconds"] for r in results for arm in ARMS)
        + sum(r["cpu_seconds"] for r in rows) + fine["cpu_seconds"]})
    print(text)


if __name__ == "__main__":
    main()
