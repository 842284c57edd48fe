"""Double descent in width under label noise, and the Hessian trace and effective dimensionality beside it.

Belkin et al. (2019) and Nakkiran et al. (2020) found that test error against model size rises to a peak where
the model can just fit its (noisy) training set, the interpolation threshold, and falls again beyond it;
Maddox, Benton & Wilson (2020, "Rethinking parameter counting in deep models: effective dimensionality
revisited") report that the effective dimensionality of the Hessian tracks that double-descent curve. We train
one-hidden-layer ReLU MLPs of several widths on scikit-learn's digits (``load_dataset("digits",
test_fraction=0.5, label_noise=0.2)``: half the 1,797 images for training, 20% of their labels replaced by a
random other class, the test half clean), full-length Adam runs without weight decay, several seeds (``init_seed
= data_order_seed = seed``, the same noisy labels for all), and on each trained network measure

* train error (on the noisy labels it was fitted to) and test error (clean labels);
* the top Hessian eigenvalues, ``tr H`` and ``N_eff(z) = sum_i λ_i⁺ / (λ_i⁺ + z)`` of the Hessian of the mean
  training cross-entropy over all training samples, each with its SLQ standard error
  (``trained_curvature.py``; ``z`` in the Hessian's units, loss per parameter², two values of ``z`` because
  ``N_eff`` depends on it).

Verdict statistics (fixed before looking): the interpolation threshold is the smallest width whose mean train
error is at most 1%. The classical optimum ``m`` is the width of least mean test error up to the threshold; the
peak ``p`` the width of largest mean test error above ``m``. The peak "appears" when test error at ``p`` exceeds
both that at ``m`` and that at the widest network by more than two standard errors of the difference (seed s.d.
over sqrt(seeds), Welch t-test p-values beside). Tracking: Spearman rank correlation over widths between mean
test error and mean trace / ``N_eff``, and whether their largest value above ``m`` sits at ``p``.

Writes ``figures/double_descent.png``, ``figures/double_descent.md`` and ``figures/double_descent.json``. Every
trained run (trainer run directory) and every measurement (JSON) is kept under ``--out`` and reused.

    python analyses/double_descent.py            # full: about 10 minutes on one shared CPU thread
    python analyses/double_descent.py --quick    # smoke test, seconds; writes under --out only
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from landscape import load_dataset
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, cached_json
from landscape.plots.style import bounded_errors, error_caption, new_figure, plain_ticks
from landscape.plots.surface import save_figure
from landscape.training import Hparams, train
from reproduction import Progress, invocation, mean_sd
from trained_curvature import trained_curvature


@dataclass(frozen=True)
class Setting:
    """Data, widths, seeds, training and the curvature budget (top-k eigenpairs deflated, SLQ steps and runs)."""
    data_kwargs: dict
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: str
    lr: float
    batch_size: int
    zs: tuple[float, ...]
    top_k: int
    slq_steps: int
    slq_runs: int


DATA = {"test_fraction": 0.5, "label_noise": 0.2, "label_seed": 0}
FULL = Setting(data_kwargs=DATA, widths=(4, 8, 16, 32, 64, 128, 256, 512, 1024), seeds=(0, 1, 2), steps="4000it",
               lr=3e-3, batch_size=128, zs=(0.1, 1.0), top_k=5, slq_steps=30, slq_runs=3)
QUICK = Setting(data_kwargs=DATA, widths=(4, 16, 64), seeds=(0, 1), steps="150it", lr=3e-3, batch_size=128,
                zs=(0.1, 1.0), top_k=3, slq_steps=8, slq_runs=2)
TRAIN_FIT = 0.01   # interpolation: mean train error at most this
CLAIMS = """\
## What the papers found (their settings, not ours)

* Belkin, Hsu, Ma & Mandal (2019, "Reconciling modern machine-learning practice and the classical bias-variance
  trade-off", PNAS): for random-feature models and two-layer networks on MNIST and CIFAR-10, test risk against
  the number of parameters peaks at the interpolation threshold (about n·C parameters for n samples and C
  outputs with squared loss) and decreases again beyond it.
* Nakkiran, Kaplun, Bansal, Yang, Barak & Sutskever (2020, "Deep double descent: where bigger models and more
  data hurt", ICLR): ResNet18s of width k = 1..64 on CIFAR-10 with 15% label noise (Adam, 4K epochs): test error
  peaks near the width where train error first reaches about 0 (k around 10-15), then falls; more label noise
  makes the peak larger, no label noise makes it small or invisible.
* Maddox, Benton & Wilson (2020, "Rethinking parameter counting in deep models: effective dimensionality
  revisited"): the effective dimensionality of the Hessian of the training loss at the trained solution
  follows the double-descent curve of test loss over width (it rises to the threshold and falls beyond), while
  the parameter count only grows; the values depend on the scale z.
"""


def hparams(setting: Setting, width: int, seed: int) -> Hparams:
    """One run: a one-hidden-layer ReLU MLP of ``width`` units, Adam without weight decay, batch 128."""
    return Hparams(model="mlp", model_kwargs={"widths": [width]}, data="digits", data_kwargs=setting.data_kwargs,
                   batch_size=setting.batch_size, steps=setting.steps, optimizer="adam", lr=setting.lr,
                   weight_decay=0.0, init_seed=seed, data_order_seed=seed, eval_every=0, checkpoint_every=1000)


def measure(setting: Setting, width: int, seed: int, out: Path) -> dict[str, Any]:
    """Train one network (resumable run directory) and measure its errors and curvature (cached JSON)."""
    run = hparams(setting, width, seed)

    def compute() -> dict[str, Any]:
        cpu = time.process_time()
        result = train(run, out / run.name, progress=False)
        dataset = load_dataset(run.data, **run.data_kwargs)
        curvature = trained_curvature(result.model, dataset, k=setting.top_k, zs=setting.zs,
                                      steps=setting.slq_steps, runs=setting.slq_runs, seed=seed)
        return {"width": width, "seed": seed, "params": curvature["dim"], "train_error": 1 - result.train.accuracy,
                "train_loss": result.train.loss, "test_error": 1 - result.test.accuracy,
                "test_loss": result.test.loss, "run": run.name, **curvature,
                "cpu_seconds": time.process_time() - cpu}

    return cached_json(out / "measures" / f"w{width}_s{seed}.json", compute)


QUANTITIES = ("train_error", "test_error", "test_loss", "trace", "trace_stderr")


def summarise(setting: Setting, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per width: mean and sample s.d. over seeds of each quantity (``N_eff`` per ``z``) and the parameters."""
    def column(width: int, get) -> list[float]:
        return [get(r) for r in records if r["width"] == width]

    getters = {q: (lambda r, q=q: r[q]) for q in QUANTITIES}
    getters["lambda_max"] = lambda r: r["eigenvalues"][0]
    for i, z in enumerate(setting.zs):
        getters[f"neff_z{z:g}"] = lambda r, i=i: r["effective_dim"][i]
        getters[f"neff_z{z:g}_stderr"] = lambda r, i=i: r["effective_dim_stderr"][i]
    summary: dict[str, Any] = {"widths": list(setting.widths), "seeds": len(setting.seeds),
                               "params": [column(w, lambda r: r["params"])[0] for w in setting.widths]}
    for name, get in getters.items():
        values = [column(w, get) for w in setting.widths]
        summary[name] = {"mean": [float(np.mean(v)) for v in values],
                         "sd": [float(np.std(v, ddof=1)) if len(v) > 1 else math.nan for v in values],
                         "per_seed": values}
    return summary


def peak_test(summary: dict[str, Any]) -> dict[str, Any]:
    """The threshold, classical optimum ``m``, peak ``p`` and the two differences with their standard errors and
    Welch p-values, as the module docstring defines them."""
    widths, n = summary["widths"], summary["seeds"]
    train, test = np.asarray(summary["train_error"]["mean"]), summary["test_error"]
    mean, sd = np.asarray(test["mean"]), np.asarray(test["sd"])
    fitted = np.flatnonzero(train <= TRAIN_FIT)
    threshold = int(fitted[0]) if fitted.size else len(widths) - 1
    m = int(np.argmin(mean[:threshold + 1]))
    p = m + 1 + int(np.argmax(mean[m + 1:])) if m + 1 < len(widths) else m

    def difference(i: int, j: int) -> dict[str, float]:
        se = math.sqrt((sd[i] ** 2 + sd[j] ** 2) / n)
        welch = stats.ttest_ind(test["per_seed"][i], test["per_seed"][j], equal_var=False)
        return {"difference": float(mean[i] - mean[j]), "stderr": se, "welch_p": float(welch.pvalue)}

    above_m, above_last = difference(p, m), difference(p, len(widths) - 1)
    appears = (p not in (m, len(widths) - 1) and above_m["difference"] > 2 * above_m["stderr"]
               and above_last["difference"] > 2 * above_last["stderr"])
    return {"threshold_width": widths[threshold], "interpolates": bool(fitted.size), "optimum_width": widths[m],
            "peak_width": widths[p], "peak_minus_optimum": above_m, "peak_minus_widest": above_last,
            "peak_appears": bool(appears), "optimum_index": m, "peak_index": p}


def tracking(summary: dict[str, Any], peak: dict[str, Any], key: str) -> dict[str, Any]:
    """Spearman correlation over widths of mean test error with the mean of ``key``, and where ``key`` peaks
    above the classical optimum."""
    test, values = np.asarray(summary["test_error"]["mean"]), np.asarray(summary[key]["mean"])
    rho = stats.spearmanr(test, values)
    m = peak["optimum_index"]
    top = m + int(np.argmax(values[m:]))
    same_peak = summary["widths"][top] == peak["peak_width"]
    return {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue), "peak_width": summary["widths"][top],
            "peaks_with_test_error": same_peak,
            "tracks": bool(same_peak and rho.statistic > 0 and rho.pvalue < 0.05),
            "fall_beyond_peak": float(values[top] / values[-1])}


def plot(setting: Setting, summary: dict[str, Any], peak: dict[str, Any]) -> Figure:
    """Three panels over width (log scale): train and test error; tr H; N_eff at each z. Bands: ± s.d. over
    seeds; the interpolation threshold dashed, the test-error peak dotted in every panel."""
    widths = np.asarray(summary["widths"], dtype=float)
    caption = error_caption(summary["seeds"], "s.d.")
    fig = new_figure(15, 4.3)
    errors, trace, neff = fig.subplots(1, 3, sharex=True)

    def band(ax, key: str, color: str, label: str, marker: str = "o") -> None:
        mean, sd = np.asarray(summary[key]["mean"]), np.asarray(summary[key]["sd"])
        low, high = bounded_errors(mean, sd)
        ax.plot(widths, mean, marker=marker, ms=4, color=color, label=label)
        ax.fill_between(widths, mean - low, mean + high, color=color, alpha=0.2, lw=0)

    band(errors, "test_error", "C3", "test error (clean labels)")
    band(errors, "train_error", "C0", f"train error (labels with {setting.data_kwargs['label_noise']:.0%} noise)", "s")
    errors.axhline(setting.data_kwargs["label_noise"], color="0.5", lw=0.8, ls=":", label="label-noise fraction")
    errors.set_ylabel("error (fraction misclassified)")
    errors.set_ylim(bottom=0)
    band(trace, "trace", "C2", "tr H (deflated SLQ)")
    trace.set_ylabel("Hessian trace (loss / parameter²)")
    trace.set_ylim(bottom=0)
    for i, z in enumerate(setting.zs):
        band(neff, f"neff_z{z:g}", f"C{4 + i}", f"N_eff, z = {z:g}")
    neff.set_ylabel("effective dimensionality N_eff (parameters)")
    neff.set_ylim(bottom=0)
    for ax, title in ((errors, "errors"), (trace, "Hessian trace"), (neff, "effective dimensionality")):
        ax.axvline(peak["threshold_width"], color="k", lw=0.8, ls="--", label="interpolation threshold")
        ax.axvline(peak["peak_width"], color="C3", lw=0.8, ls=":", label="test-error peak")
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(int(w)) for w in widths])
        plain_ticks(ax, "y")
        ax.set_xlabel("hidden units (one-hidden-layer MLP)")
        ax.set_title(f"{title}; bands: {caption}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"digits, {setting.data_kwargs['label_noise']:.0%} label noise: double descent and curvature at "
                 f"the end of training", fontsize=10)
    return fig


def report(setting: Setting, description: str, summary: dict[str, Any], peak: dict[str, Any],
           tracks: dict[str, dict[str, Any]], seconds: float, cpu: float, stored_cpu: float | None,
           command: str) -> str:
    """The markdown report: set-up, table, verdicts and the papers' claims."""
    n = summary["seeds"]
    lines = [
        "# Double descent and curvature (Belkin et al. 2019; Nakkiran et al. 2020; Maddox et al. 2020)", "",
        f"Data: {description} Model: one-hidden-layer ReLU MLP (`mlp`, widths below), Adam lr {setting.lr:g}, "
        f"batch {setting.batch_size}, no weight decay, {setting.steps} steps; seeds {list(setting.seeds)} "
        f"(initialisation and batch order; the noisy labels are the same for all). Curvature: float32 Hessian of the "
        f"mean training cross-entropy over all training samples (noisy labels), top {setting.top_k} eigenpairs "
        f"deflated, SLQ {setting.slq_steps} steps x {setting.slq_runs} runs per z. Produced by `{command}` "
        f"on one thread: " + (f"the stored runs and measurements took {stored_cpu / 60:.1f} CPU minutes in all; "
                              if stored_cpu is not None else "") +
        f"this invocation {cpu / 60:.1f} CPU and {seconds / 60:.1f} wall minutes on a shared machine (stored results "
        f"are reused).", "",
        "![double descent](double_descent.png)", "",
        "Mean ± s.d. over " + f"{n} seeds; SLQ s.e. is the mean per-network standard error of the estimate.", "",
        "| width | parameters | train error | test error | λ_max | tr H (SLQ s.e.) | "
        + " | ".join(f"N_eff z={z:g} (SLQ s.e.)" for z in setting.zs) + " |",
        "|---" * (6 + len(setting.zs)) + "|"]
    for i, width in enumerate(summary["widths"]):
        cell = lambda key, d=3: mean_sd(summary[key]["per_seed"][i], d)
        neffs = " | ".join(f"{cell(f'neff_z{z:g}', 1)} ({summary[f'neff_z{z:g}_stderr']['mean'][i]:.1f})"
                           for z in setting.zs)
        lines.append(f"| {width} | {summary['params'][i]} | {cell('train_error')} | {cell('test_error')} | "
                     f"{cell('lambda_max', 2)} | {cell('trace', 1)} ({summary['trace_stderr']['mean'][i]:.1f}) | "
                     f"{neffs} |")
    a, b = peak["peak_minus_optimum"], peak["peak_minus_widest"]
    test = summary["test_error"]["mean"]
    test_fall = test[peak["peak_index"]] / test[-1]
    same_verdict = len({(tracks[f"neff_z{z:g}"]["tracks"], tracks[f"neff_z{z:g}"]["peaks_with_test_error"])
                        for z in setting.zs}) == 1
    at_threshold = summary["widths"].index(peak["threshold_width"])
    gap = test[peak["peak_index"]] - test[at_threshold]
    gap_se = math.hypot(summary["test_error"]["sd"][peak["peak_index"]],
                        summary["test_error"]["sd"][at_threshold]) / math.sqrt(n)
    lines += ["", "## Verdict", "",
              f"* Interpolation threshold (smallest width with mean train error ≤ {TRAIN_FIT:g}): "
              + (f"width {peak['threshold_width']}." if peak["interpolates"]
                 else "none of the widths interpolates; the widest is used."),
              f"* Test error: classical optimum at width {peak['optimum_width']}, largest value above it at width "
              f"{peak['peak_width']}; peak − optimum = {a['difference']:.3f} ± {a['stderr']:.3f} (s.e., Welch "
              f"p = {a['welch_p']:.2g}), peak − widest = {b['difference']:.3f} ± {b['stderr']:.3f} (Welch p = "
              f"{b['welch_p']:.2g}). " + ("**The double-descent peak appears** (both differences above two "
                                          "standard errors)." if peak["peak_appears"] else
                                          "**No double-descent peak by our rule** (a difference within two standard "
                                          "errors, or the largest error at the widest network): this does not "
                                          "reproduce in our setting.")]
    for key, label in [("trace", "tr H")] + [(f"neff_z{z:g}", f"N_eff (z = {z:g})") for z in setting.zs]:
        t = tracks[key]
        lines.append(f"* {label}: Spearman ρ with mean test error over the {len(summary['widths'])} widths = "
                     f"{t['spearman']:.2f} (p = {t['spearman_p']:.2g}); its largest value above the optimum is at "
                     f"width {t['peak_width']} " + ("(the test-error peak)" if t["peaks_with_test_error"]
                                                    else f"(the test-error peak is at width {peak['peak_width']})")
                     + (": **it tracks test error** (same peak, ρ > 0 at p < 0.05)." if t["tracks"] else
                        ": **it peaks with test error, but its rank correlation over all widths is not significant**."
                        if t["peaks_with_test_error"] else
                        ": **it does not track test error** by our rule (same peak and ρ > 0 at p < 0.05).")
                     + f" From its peak to the widest network it falls {t['fall_beyond_peak']:.0f}-fold, test error "
                       f"{test_fall:.2f}-fold.")
    lines += ["", "Our numbers beside the papers': Nakkiran et al. and Belkin et al. see the peak at the "
              "interpolation threshold; here the peak is at width "
              f"{peak['peak_width']} and the threshold at width {peak['threshold_width']}, whose test errors differ by "
              f"{gap:.3f} ± {gap_se:.3f} (s.e.). Maddox et al. see N_eff follow the test-error curve; the peak "
              "positions, Spearman correlations and falls beyond the peak above say how closely it does here, for "
              "each z" + (" (every z gives the same verdict)" if same_verdict else "") + "; where all eigenvalues are "
              "well below z, N_eff(z) ≈ tr H / z, so N_eff then follows the trace. Caveats: one small data set (899 training images), one architecture, "
              f"{n} seeds; trace and N_eff are measured at the end of training, where the cross-entropy Hessian "
              "shrinks as the margins grow, so they also reflect how far past interpolation each width trained.",
              "", CLAIMS]
    return "\n".join(lines)


def main() -> None:
    run = invocation("double_descent", __doc__.split("\n\n")[0])
    setting = QUICK if run.quick else FULL
    progress, cpu_began = Progress(), time.process_time()
    records = []
    for width in setting.widths:
        records += [measure(setting, width, seed, run.out) for seed in setting.seeds]
        progress.done(f"width {width}")
    summary = summarise(setting, records)
    peak = peak_test(summary)
    tracks = {key: tracking(summary, peak, key) for key in ["trace"] + [f"neff_z{z:g}" for z in setting.zs]}
    seconds, cpu = progress.seconds, time.process_time() - cpu_began
    save_figure(plot(setting, summary, peak), run.figures / "double_descent.png")
    command = "python analyses/double_descent.py" + (" --quick" if run.quick else "")
    description = load_dataset("digits", **setting.data_kwargs).description
    stored_cpu = sum(r["cpu_seconds"] for r in records) if all("cpu_seconds" in r for r in records) else None
    text = report(setting, description, summary, peak, tracks, seconds, cpu, stored_cpu, command)
    atomic_write_bytes(run.figures / "double_descent.md", text.encode())
    atomic_write_json(run.figures / "double_descent.json", {
        "setting": asdict(setting), "summary": summary, "peak": peak, "tracking": tracks, "networks": records,
        "seconds": seconds, "cpu_seconds": cpu})
    print(text)


if __name__ == "__main__":
    main()
