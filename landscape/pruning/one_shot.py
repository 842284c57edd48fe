"""One-shot pruning experiments: prune by one method to one sparsity, train (or learn) the subnetwork, evaluate.

What ``landscape prune --method M --sparsity S`` runs (``d = 1 − S`` the density), with the training run
``hparams`` (the same steps, learning rate, momentum, weight decay and batch size for every network):

* **at initialisation** (``snip``, ``grasp``, ``synflow``, ``magnitude_init``, ``random``,
  :mod:`landscape.pruning.at_init`): score the initialisation ``θ_0`` (SNIP and GraSP on the first
  ``score_batches`` training batches), keep ``d``, train ``m ⊙ θ_0`` (``pruned/``); the sanity checks train
  ``shuffle(m) ⊙ θ_0`` (``shuffle/``) and ``m ⊙ θ'_0``, a fresh initialisation (``reinit/``);
* **Zhou criteria** (``large_final``, ``large_final_same_sign``, ``magnitude_increase``,
  :mod:`landscape.pruning.supermasks`): train the dense network (``dense/``), choose the mask from
  ``(θ_0, θ_T)``, evaluate the untrained supermask ``m ⊙ θ_0`` and train ``m ⊙ θ_0`` (``pruned/``);
* **edge-popup**: learn a supermask of the frozen ``θ_0`` over the run's number of steps (``masks.safetensors``);
* **fixed signs** (``signs_only``, ``sign_bit``, :mod:`landscape.pruning.signs`): train the dense network,
  keep its ``large_final`` mask at ``d`` (every weight at ``S = 0``) and train with the signs fixed, starting
  from ``sign(θ_0) σ_l`` (signs-only, Zhou et al.) or from ``sign(θ_T) |θ'_0|`` (the trained network's sign bit on
  fresh magnitudes).

Edge-popup and fixed-sign training run their own SGD loop (:mod:`landscape.pruning.reparametrized`) over the
training set in one fixed order drawn from ``data_order_seed``, repeated; the others use
:func:`landscape.training.train` (run directories that resume).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landscape.data.batches import chunked
from landscape.data.registry import load_dataset
from landscape.foundation.devices import torch_device
from landscape.foundation.runs import save_checkpoint
from landscape.pruning.at_init import AT_INIT_METHODS, prune_at_init, shuffle_masks
from landscape.pruning.controls import reinitialize, signs_only, supermask
from landscape.pruning.masks import Masks, density, full_masks
from landscape.pruning.signs import sign_bit_start, train_fixed_signs
from landscape.pruning.supermasks import ZHOU_CRITERIA, edge_popup, zhou_masks
from landscape.training import Hparams, Start, init_model, load_model, train
from landscape.training.evaluation import Evaluation, evaluate

SIGN_METHODS = ("signs_only", "sign_bit")
ONE_SHOT_METHODS = (*AT_INIT_METHODS, *ZHOU_CRITERIA, "edge_popup", *SIGN_METHODS)
SANITY_CHECKS = ("shuffle", "reinit")
DEFAULT_ALLOCATION = {**{m: "global" for m in AT_INIT_METHODS},
                      **{m: "layerwise" for m in (*ZHOU_CRITERIA, "edge_popup", *SIGN_METHODS)}}
_EVAL_BATCH = 1024


@dataclass(frozen=True)
class Outcome:
    """One network of the experiment: ``name`` (``"pruned"``, ``"shuffle"``, ``"reinit"``, ``"dense"``,
    ``"supermask"`` for the untrained one), its density, test evaluation and run directory (``None`` when it
    was not trained by :func:`~landscape.training.train`)."""
    name: str
    density: float
    test: Evaluation
    run_dir: Path | None


def one_shot(hparams: Hparams, method: str, sparsity: float, out: str | Path, *, allocation: str | None = None,
             sanity: Sequence[str] = (), iterations: int = 100, score_batches: int = 1, seed: int = 0,
             device: str | torch.device | None = None, progress: bool = True) -> list[Outcome]:
    """Run the experiment of ``method`` at ``sparsity`` in directory ``out`` (module docstring).

    Args:
        allocation: ``"global"`` or ``"layerwise"``; ``None`` for the method's paper's
            (:data:`DEFAULT_ALLOCATION`). sanity: checks from :data:`SANITY_CHECKS` (at-init methods only).
        iterations: SynFlow's rounds. score_batches: training batches SNIP and GraSP score on.
        seed: random scores, shuffles, fresh initialisations, edge-popup's initial scores.
    """
    if method not in ONE_SHOT_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {ONE_SHOT_METHODS}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    unknown = [s for s in sanity if s not in SANITY_CHECKS]
    if unknown or (sanity and method not in AT_INIT_METHODS):
        raise ValueError(f"sanity checks {tuple(sanity)} need a pruning-at-init method {AT_INIT_METHODS} and names "
                         f"from {SANITY_CHECKS}")
    out, dev = Path(out), torch_device(device)
    fresh_seed = int(np.random.SeedSequence([seed, 19]).generate_state(1)[0])   # never init_seed's stream
    allocation = allocation or DEFAULT_ALLOCATION[method]
    dataset = load_dataset(hparams.data, **hparams.data_kwargs)
    loss_fn, d = dataset.loss_fn(), 1.0 - sparsity
    test = chunked(*dataset.test, _EVAL_BATCH)

    def trained(name: str, masks: Masks, start: Start | None = None) -> Outcome:
        result = train(hparams, out / name, masks=masks, start=start, device=dev, progress=progress)
        return Outcome(name, density(masks), result.test, out / name)

    if method in AT_INIT_METHODS:
        model = init_model(hparams, dataset).to(dev)
        x, y = dataset.train
        scoring = chunked(x[:hparams.batch_size * score_batches], y[:hparams.batch_size * score_batches],
                          hparams.batch_size)
        masks = prune_at_init(model, method, d, loss_fn=loss_fn, data=scoring, input_shape=dataset.input_shape,
                              allocation=allocation, iterations=iterations, seed=seed)  # type: ignore[arg-type]
        outcomes = [trained("pruned", masks)]
        if "shuffle" in sanity:
            outcomes.append(trained("shuffle", shuffle_masks(masks, seed)))
        if "reinit" in sanity:
            fresh = reinitialize(init_model(hparams, dataset), fresh_seed)
            outcomes.append(trained("reinit", masks, Start.rewind(fresh, 0)))
        return outcomes
    steps = hparams.total_steps(len(dataset.train[1]) // hparams.batch_size)
    if method == "edge_popup":
        model = init_model(hparams, dataset).to(dev)
        result = edge_popup(model, loss_fn, fixed_order_batches(hparams, dataset.train, dev), d, steps=steps,
                            lr=hparams.lr, momentum=hparams.momentum, weight_decay=hparams.weight_decay,
                            allocation=allocation, seed=seed)  # type: ignore[arg-type]
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "masks.safetensors", {k: v.to(torch.uint8) for k, v in result.masks.items()})
        return [Outcome("supermask", density(result.masks), evaluate(result.model, loss_fn, test), None)]
    dense = train(hparams, out / "dense", device=dev, progress=progress)
    initial = load_model(out / "dense", 0, device=dev)
    outcomes = [Outcome("dense", 1.0, dense.test, out / "dense")]
    if method in ZHOU_CRITERIA:
        masks = zhou_masks(initial, dense.model, d, method, allocation=allocation)  # type: ignore[arg-type]
        outcomes.append(Outcome("supermask", density(masks), evaluate(supermask(initial, masks), loss_fn, test), None))
        return [*outcomes, trained("pruned", masks)]
    masks = (zhou_masks(initial, dense.model, d, "large_final", allocation=allocation)  # type: ignore[arg-type]
             if sparsity > 0 else full_masks(initial))
    start = (signs_only(initial, masks) if method == "signs_only"
             else sign_bit_start(dense.model, reinitialize(initial, fresh_seed), masks))
    fixed = train_fixed_signs(start, loss_fn, fixed_order_batches(hparams, dataset.train, dev), steps=steps,
                              lr=hparams.lr, momentum=hparams.momentum, weight_decay=hparams.weight_decay,
                              fixed=list(masks))
    return [*outcomes, Outcome("pruned", density(masks), evaluate(fixed.model, loss_fn, test), None)]


def fixed_order_batches(hparams: Hparams, split: tuple[torch.Tensor, torch.Tensor], device: torch.device
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The training set in one order drawn from ``data_order_seed``, in ``floor(N / batch_size)`` batches on
    ``device``: what edge-popup and fixed-sign training loop over (also for scripts that call them directly)."""
    x, y = split
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(hparams.data_order_seed))
    count = len(y) // hparams.batch_size
    x, y = x[order].to(device), y[order].to(device)
    size = hparams.batch_size
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(count)]
