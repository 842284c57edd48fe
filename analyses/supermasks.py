"""Supermasks and signs on MNIST-1D: Zhou et al. (2019)'s mask criteria on the untrained network, edge-popup,
signs-only and sign-bit retraining against IMP.

For each seed (``init_seed = data_order_seed = seed``), LeNet-300-100 on MNIST-1D:

* IMP rewinding to the initialisation (Frankle & Carbin 2019), with its random-reinitialisation control;
* Zhou et al.'s criteria ``large_final``, ``large_final_same_sign``, ``magnitude_increase``
  (:func:`landscape.pruning.zhou_masks`, from the initial and the trained dense weights, layerwise) and, for
  comparison, IMP's own masks and random masks with the same per-layer counts, applied to the *untrained*
  initial weights (the supermask), evaluated on the test split: with the initialisation's biases as PyTorch
  draws them, and with the biases set to zero (as TensorFlow, which Zhou et al. used, initialises them);
* at several of IMP's densities, under IMP's masks, training with the signs held fixed
  (:func:`landscape.pruning.train_fixed_signs`) from Zhou's signs-only start ``sign(w_0) σ_l``
  (:func:`landscape.pruning.signs_only`) and from the trained dense network's sign bit on fresh magnitudes
  (:func:`landscape.pruning.sign_bit_start`);
* edge-popup (Ramanujan et al. 2020): a supermask learned on frozen random weights at 50% density, on the
  default PyTorch initialisation and on Ramanujan et al.'s scaled Kaiming normal (biases zero).

Writes ``figures/supermasks_untrained.png``, ``figures/supermasks_trained.png``, ``figures/supermasks.md``
(our numbers next to the papers') and ``figures/supermasks.json``. Resumable: IMP's runs live under ``--out``
and every other measurement of a seed is cached there.

    python analyses/supermasks.py            # full: about 4 CPU-minutes on one thread
    python analyses/supermasks.py --quick    # smoke test: seconds, writes under --out only
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from landscape.data import load_dataset
from landscape.data.batches import chunked
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, cached_json
from landscape.plots.style import LEGEND_SIZE, error_caption, new_figure, plain_ticks
from landscape.plots.surface import save_figure
from landscape.pruning import (ZHOU_CRITERIA, PruningHparams, edge_popup, iterative_magnitude_pruning, prunable_names,
                               random_masks, reinitialize, round_dir, run_masks, sign_bit_start, signs_only,
                               supermask, train_fixed_signs, zhou_masks)
from landscape.pruning.one_shot import fixed_order_batches
from landscape.training import Hparams, load_model
from landscape.training.evaluation import evaluate
from reproduction import Progress, invocation, mean_sd, paired_difference


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model, training, seeds, IMP rounds, the rounds whose densities the supermasks
    and the sign methods are measured at, and edge-popup's density."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    seeds: tuple[int, ...]
    rounds: int
    supermask_rounds: tuple[int, ...]
    sign_rounds: tuple[int, ...]
    popup_density: float


FULL = Setting(model="lenet300", model_kwargs={}, steps=1500, lr=0.1, seeds=(0, 1, 2), rounds=10,
               supermask_rounds=(1, 3, 5, 7, 10), sign_rounds=(3, 7, 10), popup_density=0.5)
QUICK = Setting(model="mlp", model_kwargs={"widths": [24]}, steps=40, lr=0.1, seeds=(0, 1), rounds=2,
                supermask_rounds=(1, 2), sign_rounds=(2,), popup_density=0.5)
MASKS = (*ZHOU_CRITERIA, "IMP mask", "random mask")
BIASES = ("PyTorch init biases", "zero biases")
TRAINED = ("IMP ticket", "random reinit", "signs-only", "sign bit, fresh magnitudes")
POPUP = ("PyTorch init", "scaled Kaiming normal")
COLORS = {name: f"C{i}" for i, name in enumerate((*MASKS, *TRAINED))}
CHANCE = 0.1
CLAIMS = """\
## What the papers found (their settings: LeNet-300-100 on MNIST, Conv2/4/6 on CIFAR-10)

* Zhou, Lan, Liu & Yosinski (2019), "Deconstructing lottery tickets: zeros, signs, and the supermask": masks
  applied to the untrained, randomly initialised network perform "far better than chance (86% on MNIST, 41% on
  CIFAR-10)"; ``large_final_same_sign`` is their best supermask criterion; and a re-initialised ticket trains as
  well as the ticket as long as it keeps the initial signs (signs-only, constant magnitude per layer), whereas a
  random re-initialisation does not.
* Ramanujan et al. (2020), "What's hidden in a randomly weighted neural network?": edge-popup finds subnetworks
  of frozen random weights that approach, and in wide enough networks match, trained networks; it needs a
  suitably scaled initialisation (scaled Kaiming normal or signed Kaiming constant).
* "Keep the sign bit, retrain the magnitudes" is the idea our users discuss, not a published claim.
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """Every network's training (MNIST-1D, SGD momentum 0.9, weight decay 5e-4, batch 100, constant lr)."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, batch_size=100, init_seed=seed, data_order_seed=seed, eval_every=0,
                   checkpoint_every=0)


def zero_biases(model: nn.Module) -> nn.Module:
    """A copy whose non-prunable parameters (biases) are zero."""
    out = copy.deepcopy(model)
    kept = set(prunable_names(out))
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name not in kept:
                p.zero_()
    return out


def scaled_kaiming_normal(model: nn.Module, density: float, seed: int) -> nn.Module:
    """Ramanujan et al.'s scaled Kaiming normal: each prunable weight ``~ N(0, 2 / (fan_in · density))``, from a
    generator seeded with ``seed``; biases zero."""
    out = zero_biases(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in prunable_names(out):
            w = dict(out.named_parameters())[name]
            std = math.sqrt(2.0 / (w[0].numel() * density))
            w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64).to(w.dtype) * std)
    return out


def run_seed(setting: Setting, seed: int, out: Path) -> dict:
    """One seed's measurements (cached in ``out/seedS/measurements.json``)."""
    hp = hparams(setting, seed)
    imp = iterative_magnitude_pruning(hp, PruningHparams(rounds=setting.rounds, rewind="0it", controls=("reinit",)),
                                      out / f"seed{seed}" / "imp", progress=False)

    def compute() -> dict:
        dataset = load_dataset(hp.data)
        loss_fn, test = dataset.loss_fn(), chunked(*dataset.test, 1024)
        batches = fixed_order_batches(hp, dataset.train, torch.device("cpu"))
        dense_dir = round_dir(imp.path, 0)
        initial, final = load_model(dense_dir, 0), load_model(dense_dir)
        accuracy = lambda model: evaluate(model, loss_fn, test).accuracy  # noqa: E731

        untrained = {b: {m: [] for m in MASKS} for b in BIASES}
        for n in setting.supermask_rounds:
            imp_masks = run_masks(round_dir(imp.path, n))
            density = imp.rounds[n].density
            masks = {**{c: zhou_masks(initial, final, density, c) for c in ZHOU_CRITERIA}, "IMP mask": imp_masks,
                     "random mask": random_masks(imp_masks, seed)}
            for bias, start in zip(BIASES, (initial, zero_biases(initial))):
                for m in MASKS:
                    untrained[bias][m].append(accuracy(supermask(start, masks[m])))
        trained = {t: [] for t in TRAINED}
        for n in setting.sign_rounds:
            masks = run_masks(round_dir(imp.path, n))
            fresh = reinitialize(initial, seed + 1000)
            starts = {"signs-only": signs_only(initial, masks), "sign bit, fresh magnitudes":
                      sign_bit_start(final, fresh, masks)}
            trained["IMP ticket"].append(imp.rounds[n].test.accuracy)
            trained["random reinit"].append(imp.rounds[n].controls["reinit"].test.accuracy)
            for name, start in starts.items():
                fixed = train_fixed_signs(start, loss_fn, batches, steps=setting.steps, lr=setting.lr,
                                          weight_decay=hp.weight_decay, fixed=list(masks))
                trained[name].append(accuracy(fixed.model))
        popup = {}
        for name, start in zip(POPUP, (initial, scaled_kaiming_normal(initial, setting.popup_density, seed))):
            learned = edge_popup(start, loss_fn, batches, setting.popup_density, steps=setting.steps, lr=setting.lr,
                                 weight_decay=hp.weight_decay, seed=seed)
            popup[name] = accuracy(learned.model)
        return {"dense": imp.dense.test.accuracy, "supermask_densities": [imp.rounds[n].density
                                                                         for n in setting.supermask_rounds],
                "sign_densities": [imp.rounds[n].density for n in setting.sign_rounds], "untrained": untrained,
                "trained": trained, "edge_popup": popup}
    return cached_json(out / f"seed{seed}" / "measurements.json", compute)


def best_supermask(untrained: dict[str, dict[str, np.ndarray]]) -> dict:
    """The (bias setting, criterion, density index) with the highest mean untrained accuracy among Zhou's
    criteria, its per-seed accuracies and its one-sided t-test against chance."""
    cells = [(b, c, i) for b in BIASES for c in ZHOU_CRITERIA for i in range(untrained[b][c].shape[1])]
    b, c, i = max(cells, key=lambda cell: untrained[cell[0]][cell[1]][:, cell[2]].mean())
    values = untrained[b][c][:, i]
    p = (float(stats.ttest_1samp(values, CHANCE, alternative="greater").pvalue)
         if values.size > 1 and values.std() > 0 else float("nan"))
    return {"bias": b, "criterion": c, "index": i, "accuracy": values.tolist(), "p_above_chance": p}


def verdict_lines(setting: Setting, dense: np.ndarray, untrained: dict, trained: dict, popup: dict,
                  sign_densities: np.ndarray, best: dict, densities: np.ndarray) -> list[str]:
    """The verdict, claim by claim."""
    seeds = len(setting.seeds)
    acc = np.array(best["accuracy"])
    ratio = acc.mean() / dense.mean()
    same_sign = [paired_difference(a, c) for b in BIASES
                 for a, c in zip(untrained[b]["large_final_same_sign"].T, untrained[b]["large_final"].T)]
    better = sum(1 for r in same_sign if r["p"] < 0.05 and r["mean"] > 0)
    worse = sum(1 for r in same_sign if r["p"] < 0.05 and r["mean"] < 0)
    lines = ["## Verdict", "",
             f"Statistics: {seeds} seeds; mean ± sample s.d.; paired differences mean ± s.e. with two-sided paired "
             "t-tests at p < 0.05 (with so few seeds 'not significant' is not 'equal').", "",
             f"* **Supermasks far above chance**: the best untrained supermask ({best['criterion']}, {best['bias']}, "
             f"{100 * densities[best['index']]:.1f}% of the weights) reaches {mean_sd(100 * acc, 1)}% against 10% "
             f"chance (one-sided t-test p = {best['p_above_chance']:.2g}; the best of "
             f"{2 * len(ZHOU_CRITERIA) * len(densities)} cells, so chosen after looking), {100 * ratio:.0f}% of the "
             f"trained dense network's {100 * dense.mean():.1f}%. Zhou et al.: 86% on MNIST, about 88% of their dense "
             f"network's accuracy. " + _chance_verdict(best["p_above_chance"] < 0.05, ratio),
             f"* **large_final_same_sign is the best criterion**: better than large_final in {better} of "
             f"{len(same_sign)} (bias, density) cells, worse in {worse} (paired t-test). "
             + ("Reproduces." if better > 0 and worse == 0 else "Does not reproduce clearly."
                if worse == 0 else "**Does not reproduce.**")]
    lottery = [paired_difference(a, b) for a, b in zip(trained["IMP ticket"].T, trained["random reinit"].T)]
    for name in ("signs-only", "sign bit, fresh magnitudes"):
        vs_ticket = [paired_difference(a, b) for a, b in zip(trained[name].T, trained["IMP ticket"].T)]
        vs_reinit = [paired_difference(a, b) for a, b in zip(trained[name].T, trained["random reinit"].T)]
        cells = ", ".join(f"{100 * d:.1f}%: {_points(t)} vs ticket, {_points(r)} vs reinit"
                          for d, t, r in zip(sign_densities, vs_ticket, vs_reinit))
        lines.append(f"* **{name}** (trained, signs fixed) minus the IMP ticket and minus random reinit, points: "
                     f"{cells}. " + _sign_verdict(name, _significant(vs_ticket, -1), _significant(vs_reinit, +1),
                                                   _significant(lottery, +1), len(vs_ticket)))
    gain = paired_difference(popup["scaled Kaiming normal"], popup["PyTorch init"])
    scaled = popup["scaled Kaiming normal"]
    gap = paired_difference(scaled, dense)
    lines.append(f"* **Edge-popup** at {100 * setting.popup_density:.0f}% density: "
                 f"{mean_sd(100 * popup['PyTorch init'], 1)}% on PyTorch's default initialisation, "
                 f"{mean_sd(100 * scaled, 1)}% on scaled Kaiming normal ({_points(gain)} points, paired), against "
                 f"{mean_sd(100 * dense, 1)}% for the trained dense network ({_points(gap)} points). "
                 + ("Not significantly below the trained network: consistent with the paper." if not gap["p"] < 0.05
                    or gap["mean"] > 0 else "Significantly below the trained network at this width: **does not "
                    "reproduce** the match (Ramanujan et al. find the gap closes with width)."))
    return lines


def _significant(rows: list[dict], sign: int) -> int:
    """How many paired differences are significant (p < 0.05) with the sign ``sign``."""
    return sum(1 for r in rows if np.isfinite(r["p"]) and r["p"] < 0.05 and np.sign(r["mean"]) == sign)


def _sign_verdict(name: str, below_ticket: int, above_reinit: int, ticket_above_reinit: int, cells: int) -> str:
    """Zhou et al.'s signs-only claim (trains as well as the ticket, better than a random reinitialisation);
    the sign-bit start has no published claim, only the comparison."""
    lottery = (f"The ticket itself leads random reinit significantly in {ticket_above_reinit} of {cells} densities. ")
    if name != "signs-only":
        return lottery + ("No published claim; " + (f"significantly below the ticket in {below_ticket} of {cells} "
                                                    "densities." if below_ticket else "never significantly below "
                                                                                      "the ticket."))
    if below_ticket:
        return lottery + (f"**Does not reproduce**: significantly below the ticket in {below_ticket} of {cells} "
                          f"densities (above random reinit in {above_reinit}).")
    if above_reinit:
        return lottery + "Reproduces: never significantly below the ticket, and above random reinit."
    return lottery + "Not decided: never significantly below the ticket, but not above random reinit either."


def _chance_verdict(above_chance: bool, ratio: float) -> str:
    """Zhou et al.'s supermask claim judged on two counts: above chance at all, and near the dense network
    (at least 75% of its accuracy, against their 88%)."""
    if not above_chance:
        return "**Does not reproduce**: not significantly above chance."
    if ratio < 0.75:
        return ("Above chance: reproduces; **far above chance, near the dense network: does not reproduce** on "
                "MNIST-1D.")
    return "Reproduces."


def _points(row: dict) -> str:
    star = "*" if np.isfinite(row["p"]) and row["p"] < 0.05 else ""
    se = "" if not np.isfinite(row["se"]) else f" ± {100 * row['se']:.1f}"
    return f"{100 * row['mean']:+.1f}{se}{star}"


def report(setting: Setting, dense: np.ndarray, densities: np.ndarray, untrained: dict, sign_densities: np.ndarray,
           trained: dict, popup: dict, best: dict, seconds: float) -> str:
    """The markdown report: set-up, tables, verdict, the papers' claims."""
    lines = [
        "# Supermasks and signs on MNIST-1D", "",
        f"{setting.model} on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr}, momentum 0.9, weight decay "
        f"5e-4, batch 100, {setting.steps} steps (dense, IMP rounds, fixed-sign training and edge-popup alike). IMP "
        f"rewinds to the initialisation, 20% of the remaining weights per round (global); Zhou's masks are "
        f"layerwise at IMP's densities. {len(setting.seeds)} seeds; test accuracy, mean ± sample s.d. over seeds. "
        f"Fixed-sign training and edge-popup loop over one fixed data order (the trainer reshuffles each epoch). "
        f"Produced by `analyses/supermasks.py` (this invocation: {seconds / 60:.1f} wall minutes, "
        f"{time.process_time() / 60:.1f} CPU minutes on one thread; work finished by earlier invocations is reused; "
        "the full run's time is in analyses/README.md). Dense network: " + mean_sd(100 * dense, 1) + "%.", "",
        "![untrained supermasks](supermasks_untrained.png)", "", "![trained with fixed signs](supermasks_trained.png)",
        "", "Untrained supermasks (test accuracy %, chance 10%):", "",
        "| biases | weights left | " + " | ".join(MASKS) + " |", "|---|---|" + "---|" * len(MASKS)]
    for b in BIASES:
        for i, d in enumerate(densities):
            lines.append(f"| {b} | {100 * d:.1f}% | " + " | ".join(mean_sd(100 * untrained[b][m][:, i], 1)
                                                                 for m in MASKS) + " |")
    lines += ["", "Trained under IMP's masks (test accuracy %):", "",
              "| weights left | " + " | ".join(TRAINED) + " |", "|---|" + "---|" * len(TRAINED)]
    for i, d in enumerate(sign_densities):
        lines.append(f"| {100 * d:.1f}% | " + " | ".join(mean_sd(100 * trained[t][:, i], 1) for t in TRAINED) + " |")
    lines += ["", f"Edge-popup at {100 * setting.popup_density:.0f}% density (test accuracy %): "
              + ", ".join(f"{name} {mean_sd(100 * popup[name], 1)}" for name in POPUP) + ".", "",
              *verdict_lines(setting, dense, untrained, trained, popup, sign_densities, best, densities), "", CLAIMS]
    return "\n".join(lines)


def plot_untrained(densities: np.ndarray, untrained: dict, seeds: int):
    """One panel per bias setting: untrained accuracy against density per mask, chance line."""
    fig = new_figure(12, 4.4)
    for ax, bias in zip(fig.subplots(1, 2), BIASES):
        ax.axhline(100 * CHANCE, color="k", ls=":", lw=1, label="chance (10%)")
        for m in MASKS:
            y = 100 * untrained[bias][m]
            ax.errorbar(100 * densities, y.mean(0), yerr=y.std(0, ddof=1) if seeds > 1 else None, fmt="-o", ms=3.5,
                        capsize=2, color=COLORS[m], label=m)
        _density_axis(ax, densities)
        top = max(float((100 * (a.mean(0) + (a.std(0, ddof=1) if seeds > 1 else 0))).max())
                  for a in untrained[bias].values())
        ax.set_ylim(top=10 + 1.45 * (top - 10))   # room for the legend above the curves
        ax.set_ylabel("untrained test accuracy (%)")
        ax.set_title(f"supermasks, {bias} ({error_caption(seeds)})", fontsize=10)
        ax.legend(fontsize=LEGEND_SIZE)
    return fig


def plot_trained(sign_densities: np.ndarray, trained: dict, popup: dict, dense: np.ndarray, seeds: int):
    """Left: accuracy after training under IMP's masks per start; right: edge-popup against the dense network."""
    fig = new_figure(12, 4.4)
    left, right = fig.subplots(1, 2)
    left.axhline(100 * dense.mean(), color="k", ls="--", lw=1, label=f"dense ({100 * dense.mean():.1f}%)")
    for t in TRAINED:
        y = 100 * trained[t]
        left.errorbar(100 * sign_densities, y.mean(0), yerr=y.std(0, ddof=1) if seeds > 1 else None, fmt="-o",
                      ms=3.5, capsize=2, color=COLORS[t], label=t)
    _density_axis(left, sign_densities)
    left.set_ylabel("test accuracy after training (%)")
    left.set_title(f"trained under IMP's masks ({error_caption(seeds)})", fontsize=10)
    left.legend(fontsize=LEGEND_SIZE)
    bars = {**{f"edge-popup, {k}": popup[k] for k in POPUP}, "dense, trained": dense}
    means = [100 * np.mean(v) for v in bars.values()]
    sds = [100 * np.std(v, ddof=1) if seeds > 1 else 0.0 for v in bars.values()]
    right.bar(range(len(bars)), means, yerr=sds, capsize=3, color=["lightsteelblue", "steelblue", "k"])
    right.axhline(100 * CHANCE, color="k", ls=":", lw=1, label="chance (10%)")
    right.set_xticks(range(len(bars)), list(bars), fontsize=8)
    right.set_ylabel("test accuracy (%)")
    right.set_title(f"edge-popup at 50% density ({error_caption(seeds)})", fontsize=10)
    right.legend(fontsize=LEGEND_SIZE)
    plain_ticks(right, "y")
    return fig


def _density_axis(ax, densities: np.ndarray) -> None:
    """Log axis of weights remaining (%), dense on the left, ticks at the measured densities."""
    x = 100 * densities
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:.3g}" for v in x])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    plain_ticks(ax, "y")
    ax.grid(alpha=0.3)


def main() -> None:
    run = invocation("supermasks", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    results = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    seeds = len(setting.seeds)
    dense = np.array([r["dense"] for r in results])
    densities = np.array(results[0]["supermask_densities"])
    sign_densities = np.array(results[0]["sign_densities"])
    untrained = {b: {m: np.array([r["untrained"][b][m] for r in results]) for m in MASKS} for b in BIASES}
    trained = {t: np.array([r["trained"][t] for r in results]) for t in TRAINED}
    popup = {k: np.array([r["edge_popup"][k] for r in results]) for k in POPUP}
    best = best_supermask(untrained)
    seconds = progress.seconds
    save_figure(plot_untrained(densities, untrained, seeds), figures / "supermasks_untrained.png")
    save_figure(plot_trained(sign_densities, trained, popup, dense, seeds), figures / "supermasks_trained.png")
    text = report(setting, dense, densities, untrained, sign_densities, trained, popup, best, seconds)
    atomic_write_bytes(figures / "supermasks.md", text.encode())
    atomic_write_json(figures / "supermasks.json", {
        "setting": asdict(setting), "dense_accuracy": dense.tolist(), "supermask_densities": densities.tolist(),
        "untrained": {b: {m: a.tolist() for m, a in v.items()} for b, v in untrained.items()},
        "sign_densities": sign_densities.tolist(), "trained": {t: a.tolist() for t, a in trained.items()},
        "edge_popup": {k: a.tolist() for k, a in popup.items()}, "best_supermask": best, "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
