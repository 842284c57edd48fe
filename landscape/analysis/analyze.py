"""Post-hoc analysis of saved checkpoints: curvature at each, barriers between consecutive ones.

For every checkpoint: train and test loss and accuracy, and the curvature profile of
:mod:`landscape.analysis.curvature` (extreme Hessian eigenpairs with residuals, trace, spectral density, saddle index,
escape dimensions, flatness, empirical Fisher trace) on the first ``samples`` training samples, restricted to the
weights a pruning mask keeps when the run has one.

Between consecutive checkpoints A, B: the loss and error along θ(α) = θ_A + α (θ_B − θ_A)
(:func:`landscape.connectivity.interpolation.interpolate`) and the barriers above the chord between the endpoints,
``max_α [E(α) − ((1 − α) E(0) + α E(1))]`` (Entezari et al. 2022), of the test error (a fraction) and of the
train loss (nats); and Frankle et al.'s (2020) ``max_α E(α) − ½ (E(0) + E(1))`` of the test error, which for
endpoints of unequal error is at least half their difference, so it is meaningful between networks of similar
error (e.g. late checkpoints) rather than along early training.

Output in ``out_dir``: ``analysis.json`` (rewritten atomically after each checkpoint and each pair),
``figures/*.png`` and ``report.md`` (:mod:`landscape.analysis.report`). Each result is stored under a key made of
the checkpoint's tensor digest, the digest of the data it was measured on and the settings, so an
interrupted or repeated analysis recomputes nothing already in ``analysis.json``. Inside a checkpoint, each finished
instrument (evaluation, each curvature instrument, block spectra) is saved under ``unfinished/`` until the checkpoint
is written, keyed by the settings it reads (:mod:`landscape.analysis.instrument_store`): a kill loses only the
instrument that was running.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset as TorchDataset

from landscape.analysis.curvature import curvature_batches, measure_curvature
from landscape.analysis.instrument_store import DIRECTORY as UNFINISHED
from landscape.analysis.instrument_store import InstrumentStore
from landscape.analysis.report import write_report
from landscape.analysis.results import Analysis, AnalyzeSettings, density_to_json
from landscape.connectivity.interpolation import EVAL_BATCH, RunCheckpoint, interpolate, load_run_checkpoint
from landscape.data.batches import chunked
from landscape.data.distributed import check_group
from landscape.data.external import tensors_from_dataset
from landscape.data.registry import TORCHVISION_PREFIX, Dataset, dataset_names, load_dataset
from landscape.foundation.devices import torch_device
from landscape.foundation.progress import phase
from landscape.foundation.runs import Run, atomic_write_json, checkpoint_step, load_checkpoint, read_json
from landscape.instruments.blocks import block_spectra
from landscape.models.language import NextTokenLoss
from landscape.models.registry import build_model, model_names
from landscape.training import tensors_digest
from landscape.training.evaluation import evaluate

FORMAT = 3   # 3: the saddle index carries its total error, reliable and reason
BLOCK_SETTINGS = ("blocks", "eigenvalues", "eig_tol", "max_matvecs", "trace_matvecs", "density_steps", "density_runs",
                  "seed")   # the AnalyzeSettings fields measure_blocks reads besides samples and split
def analyze(targets: str | Path | Sequence[str | Path], *, model: Any = None, data: Any = None,
            loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None, steps: Sequence[int] | None = None,
            model_kwargs: Mapping[str, Any] | None = None, data_kwargs: Mapping[str, Any] | None = None,
            out_dir: str | Path, settings: AnalyzeSettings = AnalyzeSettings(),
            device: str | torch.device | None = None, progress: bool = True,
            process_group: dist.ProcessGroup | None = None) -> Analysis:
    """Measure every checkpoint of ``targets`` and the paths between consecutive ones; write JSON, figures, report.

    Args:
        targets: a checkpoint file, a run directory (all its checkpoints, or those of ``steps``), or a list
            of them (:func:`checkpoint_files`: checkpoint files in step order when every step is known).
        model: ``None`` (the architecture of each run's ``config.json``), an ``nn.Module`` (its weights are
            replaced by each checkpoint's; it is copied, never modified), a callable returning one, a
            ``"package.module:factory"`` string (the module is looked up in the current directory too, as
            ``python -m`` does), or a model-registry name (built for ``data``).
        data: ``None`` (each run's data set), a data-registry name (``torchvision:NAME`` included), a
            ``"package.module:factory"`` string or a callable returning data, a
            :class:`~landscape.data.dataset.Dataset`, ``{"train": data, "test": data}``, one training data
            argument (a batch or a list of batches), or a ``torch.utils.data.Dataset`` (its items stacked).
        model_kwargs, data_kwargs: keyword arguments of the registry or ``package.module:factory`` factories.
        loss_fn: mean-reduced loss; default the data set's (cross-entropy for classes, MSE otherwise,
            next-token cross-entropy for token data), and for user data cross-entropy, or next-token
            cross-entropy (:func:`landscape.models.language.next_token_loss`) when the inputs are integer token ids
            ``(N, T)`` and the targets have their shape (a language model's sequences).
        steps: the steps to analyse in each run directory (default: all).
        out_dir: where to write ``analysis.json``, ``figures/`` and ``report.md``.
        settings: the measurement budget (:class:`AnalyzeSettings`).
        device: where to compute (default CUDA when available). progress: progress bars.
        process_group: a ``torch.distributed`` group (e.g. from :func:`landscape.data.distributed.init_from_env`
            under ``torchrun``) whose ranks all make this call: each rank takes its contiguous share of the
            curvature samples, the curvature operators and the Fisher trace sum over the ranks, and every
            rank gets the numbers of all the samples (to round-off). Evaluations and interpolation paths are
            computed by every rank on all the data. Only rank 0 writes and shows progress.

    Returns:
        the :class:`Analysis`, already written (by rank 0).
    """
    out_dir = Path(out_dir)
    device = torch_device(device)
    files = checkpoint_files(targets, steps)
    subject = _Subject.build(model, data, loss_fn, dict(model_kwargs or {}), dict(data_kwargs or {}))
    rank, world_size = (0, 1) if process_group is None else check_group(process_group, device)
    progress, writer = progress and rank == 0, rank == 0
    cached = _cached(out_dir / "analysis.json")
    if process_group is not None:
        dist.barrier(group=process_group)   # every rank has read the cache before rank 0 rewrites it
    checkpoints: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    computed = 0

    def save() -> None:
        if not writer:
            return
        atomic_write_json(out_dir / "analysis.json", {
            "format": FORMAT, "settings": dataclasses.asdict(settings), "data": subject.describe(settings),
            "checkpoints": checkpoints, "pairs": pairs})

    previous: RunCheckpoint | None = None
    for index, path in enumerate(files, 1):
        net = subject.load(path)
        phase(f"analysing {_label(net, path, files)} ({index}/{len(files)})", enabled=progress)
        measured_on = f"{tensors_digest(net.model.state_dict())}-{_data_digest(net, settings.samples, settings.split)}"
        key = f"{measured_on}-{settings.digest}"
        store = InstrumentStore(out_dir / UNFINISHED / measured_on, write=writer)
        if key in cached["checkpoints"]:
            result = cached["checkpoints"][key]
        else:
            result = measure_checkpoint(net, settings, device, process_group, rank, world_size,
                                        progress=progress, store=store) | {"key": key}
            computed += 1
        if settings.blocks and result.get("blocks", {}).get("partition") != settings.blocks:
            result = result | {"blocks": measure_blocks(net, settings, device, store)}
            computed += 1
        result |= {"label": _label(net, path, files), "path": str(path), "run": str(net.run_dir),
                   "step": net.step if net.step >= 0 else None}
        checkpoints.append(result)
        save()
        store.clear()
        if previous is not None and _same_shapes(previous.model, net.model):
            pair_key = f"{checkpoints[-2]['key']}~{key}"
            if pair_key in cached["pairs"]:
                pair = cached["pairs"][pair_key]
            else:
                pair = measure_pair(previous, net, settings, device, progress) | {"key": pair_key}
                computed += 1
            pairs.append(pair | {"a": checkpoints[-2]["label"], "b": result["label"]})
            save()
        previous = net
    analysis = Analysis(checkpoints=tuple(checkpoints), pairs=tuple(pairs), settings=settings, out_dir=out_dir,
                        figures={}, computed=computed, data=subject.describe(settings))
    return write_report(analysis) if writer else analysis


def checkpoint_files(targets: str | Path | Sequence[str | Path], steps: Sequence[int] | None = None) -> list[Path]:
    """The checkpoint files of ``targets`` (see :func:`analyze`), in order: a run directory's by step; checkpoint
    files given directly (a shell glob, say) in step order when every one has a known step
    (:func:`landscape.foundation.runs.checkpoint_step`: saved with it, or ``step_N`` in its name), else as given.

    Raises:
        FileNotFoundError: a target does not exist, a run has no checkpoints, or lacks one of ``steps``.
    """
    targets = [targets] if isinstance(targets, (str, Path)) else list(targets)
    if not targets:
        raise ValueError("no targets to analyse")
    files: list[Path] = []
    for target in map(Path, targets):
        if target.is_file():
            files.append(target)
        elif target.is_dir():
            run = Run(target)
            saved = run.checkpoint_steps()
            if not saved:
                raise FileNotFoundError(f"run directory {target} has no checkpoints (checkpoints/step_N.safetensors)")
            missing = sorted(set(steps or ()) - set(saved))
            if missing:
                raise FileNotFoundError(f"run {target} has no checkpoints at steps {missing}; it has {saved}")
            files += [run.checkpoint_path(s) for s in saved if steps is None or s in steps]
        else:
            raise FileNotFoundError(f"no checkpoint file or run directory {target}")
    if all(Path(t).is_file() for t in targets):
        known = [checkpoint_step(f) for f in files]
        if all(step is not None for step in known):
            files = [f for _, f in sorted(zip(known, files), key=lambda pair: pair[0])]
    return files


def measure_checkpoint(net: RunCheckpoint, settings: AnalyzeSettings, device: torch.device,
                       process_group: dist.ProcessGroup | None = None, rank: int = 0,
                       world_size: int = 1, *, progress: bool = False,
                       store: InstrumentStore | None = None) -> dict[str, Any]:
    """Evaluation and curvature profile of one checkpoint (see the module docstring), as plain data; with
    ``process_group``, the curvature over the ranks' shares of the samples (see :func:`analyze`); with
    ``progress``, a bar over the curvature instruments; with ``store`` (for this checkpoint's weights and data),
    each finished instrument saved and the saved ones loaded (:mod:`landscape.analysis.instrument_store`).
    ``seconds`` sums the instruments' own times (a resumed checkpoint's included)."""
    model = net.model.to(device).eval()
    store = store or InstrumentStore(None)
    evaluated, _ = store.measure("evaluation", "all", lambda: _evaluate(model, net))
    data = curvature_batches(_split(net, settings.split), settings.samples, rank, world_size)
    curvature, spectrum = measure_curvature(model, net.loss_fn, data, net.masks, settings, device, process_group,
                                            progress=progress, store=store)
    return evaluated.value | curvature | {"density": density_to_json(spectrum), "seconds": store.seconds}


def _evaluate(model: nn.Module, net: RunCheckpoint) -> dict[str, float | None]:
    result: dict[str, float | None] = {}
    for split in ("train", "test"):
        ev = evaluate(model, net.loss_fn, net.data[split]) if split in net.data else None
        result[f"{split}_loss"] = None if ev is None else ev.loss
        result[f"{split}_accuracy"] = None if ev is None else ev.accuracy
    return result


def measure_blocks(net: RunCheckpoint, settings: AnalyzeSettings, device: torch.device,
                   store: InstrumentStore | None = None) -> dict[str, Any]:
    """Per-block Hessian spectra (:func:`landscape.instruments.block_spectra`) of one checkpoint on the curvature
    samples, with the settings' eigen, trace and density budgets: ``{"partition", "blocks": [...], "seconds"}``;
    saved to and loaded from ``store`` as one instrument."""
    data = curvature_batches(_split(net, settings.split), settings.samples)
    store = store or InstrumentStore(None)

    def measure() -> dict[str, Any]:
        return block_spectra(net.model.to(device).eval(), net.loss_fn, data, settings.blocks, k=settings.eigenvalues,
                             tol=settings.eig_tol, max_matvecs=settings.max_matvecs,
                             trace_matvecs=settings.trace_matvecs, density_steps=settings.density_steps,
                             density_runs=settings.density_runs, masks=net.masks, device=device,
                             seed=settings.seed).to_dict()
    done, _ = store.measure("blocks", store.key(settings, BLOCK_SETTINGS), measure)
    return {"partition": settings.blocks, "blocks": done.value, "seconds": done.seconds}


def _split(net: RunCheckpoint, split: str) -> list[tuple[Tensor, Tensor]]:
    if split not in net.data:
        raise ValueError(f"the data have no {split!r} split to measure the curvature on; they have "
                         f"{sorted(net.data)} (choose with --split / settings.split)")
    return net.data[split]


def measure_pair(a: RunCheckpoint, b: RunCheckpoint, settings: AnalyzeSettings, device: torch.device,
                 progress: bool) -> dict[str, Any]:
    """Loss and error along the straight path from checkpoint ``a`` to ``b`` on every split, and the barriers of
    the module docstring (test error, or train error when there is no test split; train loss in nats)."""
    same_masks = (a.masks is not None and b.masks is not None and a.masks.keys() == b.masks.keys()
                  and all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks))
    paths = interpolate(a.model.to(device), b.model.to(device), a.loss_fn, a.data, settings.points,
                        masks=a.masks if same_masks else None, progress=progress)
    reference = paths.get("test", paths["train"])
    quantity = "error" if reference.is_classification else "loss"
    result: dict[str, Any] = {"alphas": reference.alphas.tolist(),
                              "barrier": reference.barrier_of(quantity, "entezari").height,
                              "frankle_barrier": reference.barrier_of(quantity, "frankle").height,
                              "loss_barrier": paths["train"].barrier_of("loss", "entezari").height}
    for split in ("train", "test"):
        p = paths.get(split)
        result[f"{split}_loss"] = None if p is None else p.loss.tolist()
        result[f"{split}_error"] = None if p is None or p.error is None else p.error.tolist()
    return result


@dataclass(frozen=True)
class _Subject:
    """How to turn a checkpoint file into a model with its data: from the run's config, or from the user's
    model and data."""
    model: nn.Module | str | None
    data: dict[str, list[tuple[Tensor, Tensor]]] | None
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None
    dataset: Dataset | None

    source: str = ""

    @classmethod
    def build(cls, model: Any, data: Any, loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
              model_kwargs: dict[str, Any], data_kwargs: dict[str, Any], source: str | None = None) -> _Subject:
        source = source if source is not None else (data if isinstance(data, str) else type(data).__name__)
        if isinstance(data, str) and ":" in data and not data.startswith(TORCHVISION_PREFIX):
            data = _resolve(data)
        if data_kwargs and not (isinstance(data, str) or _is_factory(data)):
            raise ValueError(f"data_kwargs {data_kwargs} given, but the data ({type(data).__name__}) are not a "
                             f"registry name or a factory to pass them to")
        dataset = (load_dataset(data, **data_kwargs) if isinstance(data, str)
                   else data if isinstance(data, Dataset) else None)
        splits = None
        if dataset is not None:
            splits = {"train": chunked(*dataset.train, EVAL_BATCH), "test": chunked(*dataset.test, EVAL_BATCH)}
            loss_fn = loss_fn or dataset.loss_fn()
        elif _is_factory(data):
            return cls.build(model, data(**data_kwargs), loss_fn, model_kwargs, {}, source)
        elif isinstance(data, Mapping):
            splits = {split: _batches(d) for split, d in data.items()}
        elif data is not None:
            splits = {"train": _batches(data)}
        if splits is not None and "train" not in splits:
            raise ValueError(f"data needs a 'train' split for the curvature; got splits {sorted(splits)}")
        if isinstance(model, str) and ":" in model:
            model = _resolve(model)
        if _is_factory(model):
            model = model(**model_kwargs)
            if not isinstance(model, nn.Module):
                raise TypeError(f"the model factory returned a {type(model).__name__}, not a torch.nn.Module")
        elif isinstance(model, str):
            if model not in model_names():
                raise ValueError(f"unknown model {model!r}; registered: {model_names()} "
                                 f"(or pass package.module:factory)")
            if dataset is None:
                raise ValueError(f"the registry model {model!r} needs a registry data set to size it (data=NAME)")
            model = build_model(model, dataset.input_shape, dataset.output_dim, **model_kwargs)
        elif model_kwargs:
            raise ValueError(f"model_kwargs {model_kwargs} given, but the model is not a registry name or a factory")
        if (model is None) != (splits is None):
            missing = "--data (data=)" if splits is None else "--model (model=)"
            raise ValueError(f"give both the model and the data, or neither (then each run's config.json names "
                             f"them): {missing} is missing")
        return cls(model=model, data=splits,
                   loss_fn=loss_fn or (_user_loss(splits["train"]) if splits is not None else None), dataset=dataset,
                   source=source)

    def describe(self, settings: AnalyzeSettings) -> str:
        """What the data are, where their train/test split comes from, and what the curvature is measured on."""
        if self.data is None:
            return (f"each run's data set and split (its config.json); curvature on the first {settings.samples} "
                    f"samples of the {settings.split} split")
        available = sum(len(b[1]) for b in self.data.get(settings.split, ()))
        on = f"curvature on the first {min(settings.samples, available)} samples of the {settings.split} split"
        if self.dataset is not None:
            origin = ("the registry's split, not necessarily the one a model was trained with: pass your own "
                      "{'train': ..., 'test': ...} data (--data module:factory) to use yours"
                      if self.dataset.name in dataset_names() else "its own split")
            return f"{self.dataset.description} Split: {origin}; {on}."
        sizes = ", ".join(f"{sum(len(b[1]) for b in batches)} {split}" for split, batches in self.data.items())
        return f"user data from {self.source}: {sizes} samples; {on}"

    def load(self, path: Path) -> RunCheckpoint:
        """The checkpoint at ``path`` with its model, data, loss and masks."""
        if self.model is None:
            if path.is_file() and not (path.parent.parent / "config.json").is_file():
                raise ValueError(f"{path} is not a checkpoint of a landscape training run (no config.json in "
                                 f"{path.parent.parent} names its model and data): pass them, e.g. `landscape "
                                 f"analyze {path.name} --model mymodule:make --data mymodule:data` (model=, data= "
                                 f"in Python), where mymodule.py is in the current directory")
            return load_run_checkpoint(path)
        model = copy.deepcopy(self.model)
        checkpoint = load_checkpoint(path, model)
        return RunCheckpoint(model=model.eval(), data=self.data, loss_fn=self.loss_fn, masks=None,
                             run_dir=path.parent.parent if path.parent.name == "checkpoints" else path.parent,
                             step=checkpoint.step if checkpoint.step is not None else -1)  # -1: unknown


def _user_loss(batches: Sequence[tuple[Tensor, Tensor]]) -> nn.Module:
    """Cross-entropy, or next-token cross-entropy for token sequences (integer ``(N, T)`` inputs, targets alike)."""
    x, y = batches[0]
    tokens = not x.is_floating_point() and x.ndim == 2 and y.shape == x.shape
    return NextTokenLoss() if tokens else nn.CrossEntropyLoss()


def _is_factory(obj: Any) -> bool:
    return callable(obj) and not isinstance(obj, (nn.Module, TorchDataset))


def _resolve(spec: str) -> Any:
    """The object named by ``"package.module:attribute"``; a module not found on ``sys.path`` is looked up in the
    current directory (which ``python -m`` puts on the path, and the ``landscape`` console script does not)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected package.module:factory, got {spec!r}")
    cwd = os.getcwd()
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name.partition(".")[0] or cwd in sys.path:
                raise
            sys.path.insert(0, cwd)
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {spec!r} (expected package.module:factory, the module in the current "
                         f"directory {cwd} or installed): {e}") from e
    if not hasattr(module, attribute):
        raise ValueError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attribute!r}; it "
                         f"defines {sorted(n for n in vars(module) if not n.startswith('_'))}")
    return getattr(module, attribute)


def _batches(data: Any) -> list[tuple[Tensor, Tensor]]:
    if isinstance(data, TorchDataset):
        return chunked(*tensors_from_dataset(data), EVAL_BATCH)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return chunked(*data, EVAL_BATCH)
    return list(data)


def _data_digest(net: RunCheckpoint, samples: int, split: str = "train") -> str:
    """Digest of the curvature samples and of the evaluation splits' sizes: a result is reused only on the same data."""
    x, y = (torch.cat(parts) for parts in zip(*curvature_batches(_split(net, split), samples)))
    sizes = {split: torch.tensor(sum(len(b[1]) for b in batches)) for split, batches in net.data.items()}
    masks = {f"mask.{k}": v for k, v in (net.masks or {}).items()}
    return tensors_digest({"x": x, "y": y, **{f"size.{k}": v for k, v in sizes.items()}, **masks})[:10]


def _label(net: RunCheckpoint, path: Path, files: Sequence[Path]) -> str:
    """``step N`` when all checkpoints come from one run, ``<run>@N`` otherwise; the file name when the step is
    unknown (a plain ``.pt`` state dict)."""
    if net.step < 0:
        return path.name
    runs = {p.parent.parent for p in files}
    return f"step {net.step}" if len(runs) == 1 else f"{net.run_dir.name}@{net.step}"


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _cached(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"checkpoints": {key: result}, "pairs": {key: result}}`` from an earlier ``analysis.json``."""
    if not path.is_file():
        return {"checkpoints": {}, "pairs": {}}
    saved = read_json(path, dict, fix="it is not an analysis written by landscape; move it away or write the "
                                      "analysis to another directory")
    if saved.get("format") != FORMAT:
        return {"checkpoints": {}, "pairs": {}}
    return {kind: {r["key"]: {k: v for k, v in r.items() if k not in ("label", "a", "b")}
                   for r in saved.get(kind, []) if "key" in r} for kind in ("checkpoints", "pairs")}
