"""Per-block Hessian spectra: the top eigenvalues, trace and spectral density of each diagonal block.

For a partition of the parameters into blocks ``B_1, ..., B_m`` (each layer, each attention and MLP block of
a transformer, or any mapping), block ``b``'s Hessian is the principal submatrix ``H_bb = P_b^T H P_b``, the
curvature of the loss in block ``b``'s parameters with all the others held fixed (a
:class:`~landscape.operators.Hessian` with ``params=`` the block). Zhang et al. (2024), "Why Transformers Need
Adam: A Hessian Perspective", measure exactly this: the spectra of a transformer's blocks differ from one
another by orders of magnitude ("block heterogeneity"), those of a CNN's layers do not, and that difference
predicts where SGD falls behind Adam.

Each block gets, in loss units per parameter²:

* its ``k`` largest eigenvalues with residuals and whether they converged (:func:`landscape.linalg.eigs`);
* ``tr H_bb`` ± standard error (:func:`landscape.linalg.trace`);
* its spectral density (stochastic Lanczos quadrature, :func:`landscape.linalg.density`).

Blocks of at most ``exact_below`` coordinates (norm and bias blocks, small layers) are instead solved exactly
from their dense matrix (``dim`` products, no fewer than the estimators would need): their eigenvalues, trace
and density (a node per eigenvalue, weight ``1/dim``) are exact, with zero error and ``exact=True``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor, nn

from landscape.linalg import SpectralDensity, density, eigs, trace
from landscape.operators import Hessian
from landscape.operators.functional import LossFn

BlockSpec = Union[str, Mapping[str, Union[Iterable[str], Callable[[str, nn.Parameter], bool]]],
                  Callable[[str], Union[str, None]]]
PARTITIONS = ("layer", "transformer", "parameter")
ATTENTION_WORDS = ("attn", "attention")
MLP_WORDS = ("mlp", "ffn", "feed_forward", "feedforward", "intermediate", "output", "fc")


@dataclass(frozen=True)
class BlockSpectrum:
    """The spectrum of one diagonal block ``H_bb``.

    Attributes:
        name: the block's name. params: its parameter names. dim: its number of coordinates.
        eigenvalues, residuals: ``(k,)`` largest eigenvalues, descending, and ``||H_bb v − θ v||``.
        converged: the eigen solve met its tolerance (always ``True`` when ``exact``).
        trace, trace_stderr: ``tr H_bb`` and the standard error of its estimate (``0`` when ``exact``).
        density: the block's spectral density (SLQ, or its exact eigenvalues when ``exact``).
        exact: solved from the dense block (``dim <= exact_below``). matvecs: products of ``H_bb`` used.
    """
    name: str
    params: tuple[str, ...]
    dim: int
    eigenvalues: Tensor
    residuals: Tensor
    converged: bool
    trace: float
    trace_stderr: float
    density: SpectralDensity
    exact: bool
    matvecs: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and numbers), e.g. for JSON."""
        return {"name": self.name, "params": list(self.params), "dim": self.dim,
                "eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
                "converged": self.converged, "trace": self.trace, "trace_stderr": self.trace_stderr,
                "density": {"nodes": self.density.nodes.tolist(), "weights": self.density.weights.tolist(),
                            "dim": self.density.dim, "matvecs": self.density.matvecs},
                "exact": self.exact, "matvecs": self.matvecs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BlockSpectrum:
        """Inverse of :meth:`to_dict`."""
        dens = d["density"]
        return cls(name=d["name"], params=tuple(d["params"]), dim=int(d["dim"]),
                   eigenvalues=torch.tensor(d["eigenvalues"], dtype=torch.float64),
                   residuals=torch.tensor(d["residuals"], dtype=torch.float64), converged=bool(d["converged"]),
                   trace=float(d["trace"]), trace_stderr=float(d["trace_stderr"]),
                   density=SpectralDensity(nodes=torch.tensor(dens["nodes"], dtype=torch.float64),
                                           weights=torch.tensor(dens["weights"], dtype=torch.float64),
                                           dim=int(dens["dim"]), matvecs=int(dens["matvecs"])),
                   exact=bool(d["exact"]), matvecs=int(d["matvecs"]))


def parameter_blocks(model: nn.Module, blocks: BlockSpec = "layer") -> dict[str, tuple[str, ...]]:
    """``{block name: parameter names}`` of the trainable parameters, in the model's parameter order.

    ``blocks``:

    * ``"layer"``: one block per module that owns parameters (``layer1.0.conv1``, ``h.0.attn.c_attn``, ...);
    * ``"transformer"``: in each numbered layer (the first numeric component of a name, ``h.3``,
      ``blocks.3``, ``encoder.layer.3``), one block for the attention (a name component containing
      ``attn``/``attention``), one for the MLP (``mlp``, ``ffn``, ``intermediate``, ``output``, ``fc``) and one
      for the rest (the layer norms); parameters outside numbered layers (embeddings, final norm, head) get a
      block per owning module;
    * ``"parameter"``: one block per parameter tensor;
    * a mapping ``{block name: a parameter name, parameter names, or a predicate (name, parameter) -> bool}``;
    * a function ``parameter name -> block name`` (``None`` leaves the parameter out).

    Tied parameters (GPT-2's ``lm_head`` and ``wte``) appear once, under the first name.

    Raises:
        ValueError: an unknown partition name, no parameter in some block, or one parameter in two blocks.
    """
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if isinstance(blocks, str):
        if blocks not in PARTITIONS:
            raise ValueError(f"unknown block partition {blocks!r}; choose from {', '.join(PARTITIONS)}, or pass a "
                             f"mapping {{block: parameter names}} or a function name -> block")
        assign: Callable[[str], str | None] = {"layer": _layer_block, "transformer": _transformer_block,
                                               "parameter": lambda name: name}[blocks]
    elif isinstance(blocks, Mapping):
        out: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for block, selection in blocks.items():
            chosen = ([n for n, p in named.items() if selection(n, p)] if callable(selection)
                      else [selection] if isinstance(selection, str) else list(selection))
            unknown = [n for n in chosen if n not in named]
            if unknown:
                raise ValueError(f"block {block!r} names unknown or frozen parameters {unknown}")
            if not chosen:
                raise ValueError(f"block {block!r} selects no parameter")
            twice = [n for n in chosen if n in owner]
            if twice:
                raise ValueError(f"parameters {twice} are in blocks {owner[twice[0]]!r} and {block!r}")
            owner.update(dict.fromkeys(chosen, block))
            out[block] = tuple(chosen)
        return out
    elif callable(blocks):
        assign = blocks
    else:
        raise TypeError(f"blocks must be a partition name, a mapping or a function, got {type(blocks).__name__}")
    out_lists: dict[str, list[str]] = {}
    for name in named:
        block = assign(name)
        if block is not None:
            out_lists.setdefault(block, []).append(name)
    if not out_lists:
        raise ValueError("the block partition selects no parameter")
    return {block: tuple(names) for block, names in out_lists.items()}


def _layer_block(name: str) -> str:
    """The module that owns parameter ``name`` (the name without its last component)."""
    return name.rpartition(".")[0] or name


def _transformer_block(name: str) -> str:
    """``<layer> attention`` / ``<layer> mlp`` / ``<layer> norms`` inside a numbered layer, else the owning module."""
    parts = name.split(".")
    index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
    if index is None:
        return _layer_block(name)
    layer, rest = ".".join(parts[:index + 1]), [p.lower() for p in parts[index + 1:-1]]
    if any(word in part for part in rest for word in ATTENTION_WORDS):
        return f"{layer} attention"
    if any(re.search(rf"(^|_){word}", part) for part in rest for word in MLP_WORDS):
        return f"{layer} mlp"
    if any("norm" in part or part.startswith("ln") for part in rest):
        return f"{layer} norms"
    return _layer_block(name)


@dataclass(frozen=True)
class BlockSpectra:
    """The spectra of every block, in the partition's order. ``blocks``: one :class:`BlockSpectrum` each;
    ``matvecs``: block products in all."""
    blocks: tuple[BlockSpectrum, ...]

    @property
    def matvecs(self) -> int:
        return sum(b.matvecs for b in self.blocks)

    def __getitem__(self, name: str) -> BlockSpectrum:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no block {name!r}; blocks: {[b.name for b in self.blocks]}")

    def to_dict(self) -> list[dict[str, Any]]:
        return [b.to_dict() for b in self.blocks]

    @classmethod
    def from_dict(cls, blocks: Iterable[Mapping[str, Any]]) -> BlockSpectra:
        return cls(blocks=tuple(BlockSpectrum.from_dict(b) for b in blocks))


def block_spectra(model: nn.Module, loss_fn: LossFn, data: Any, blocks: BlockSpec = "layer", *, k: int = 3,
                  tol: float = 1e-3, max_matvecs: int = 300, trace_matvecs: int = 30, density_steps: int = 30,
                  density_runs: int = 3, exact_below: int = 64, masks: Mapping[str, Tensor] | None = None,
                  dtype: torch.dtype | None = None, device: torch.device | str | None = None, seed: int = 0,
                  **operator_kwargs: Any) -> BlockSpectra:
    """The spectrum of each diagonal Hessian block (see the module docstring) in one call.

    Args:
        model, loss_fn, data: as for :class:`~landscape.operators.Hessian` (mean-reduced loss, fixed data).
        blocks: the partition (:func:`parameter_blocks`).
        k: largest eigenvalues per block.
        tol, max_matvecs: relative tolerance and product budget of each eigen solve.
        trace_matvecs: products of each trace estimate. density_steps, density_runs: SLQ budget per block.
        exact_below: blocks of at most this many coordinates (and of at most ``2k + 1``, too small for Lanczos)
            are solved exactly from their dense matrix.
        masks: pruning masks (each block keeps its surviving coordinates). dtype, device, operator_kwargs:
            passed to every block's :class:`~landscape.operators.Hessian` (e.g. ``method=``).
        seed: seed of every random start and probe.

    Returns:
        :class:`BlockSpectra`, one :class:`BlockSpectrum` per block that has a surviving coordinate.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    partition = parameter_blocks(model, blocks)
    masks = dict(masks or {})
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    stray = sorted(set(masks) - set(sizes))
    if stray:
        raise KeyError(f"masks given for parameters the model does not have: {stray}")
    results = []
    for i, (name, params) in enumerate(partition.items()):
        block_masks = {n: masks[n] for n in params if n in masks}
        if sum(int((block_masks[n] != 0).sum()) if n in block_masks else sizes[n] for n in params) == 0:
            continue   # every coordinate of the block is pruned
        H = Hessian(model, loss_fn, data, params=params, masks=block_masks, dtype=dtype, device=device,
                    check_determinism=i == 0, **operator_kwargs)
        results.append(_exact(name, params, H, k) if H.shape[0] <= max(exact_below, 2 * k + 1)
                       else _estimated(name, params, H, k, tol, max_matvecs, trace_matvecs, density_steps,
                                       density_runs, seed))
    return BlockSpectra(blocks=tuple(results))


def _exact(name: str, params: tuple[str, ...], H: Hessian, k: int) -> BlockSpectrum:
    values = torch.linalg.eigvalsh(H.to_dense().to(torch.float64).cpu())    # ascending
    dim = values.numel()
    top = values.flip(0)[:k]
    return BlockSpectrum(name=name, params=params, dim=dim, eigenvalues=top, residuals=torch.zeros_like(top),
                         converged=True, trace=float(values.sum()), trace_stderr=0.0,
                         density=SpectralDensity(nodes=values[None], weights=torch.full((1, dim), 1.0 / dim,
                                                                                        dtype=torch.float64),
                                                 dim=dim, matvecs=0),
                         exact=True, matvecs=H.matvecs)


def _estimated(name: str, params: tuple[str, ...], H: Hessian, k: int, tol: float, max_matvecs: int,
               trace_matvecs: int, steps: int, runs: int, seed: int) -> BlockSpectrum:
    dim = H.shape[0]
    top = eigs(H, k=k, which="largest", tol=tol, max_matvecs=max_matvecs, seed=seed)
    tr = trace(H, matvecs=trace_matvecs, seed=seed)
    spectrum = density(H, steps=min(steps, dim), runs=runs, seed=seed)
    return BlockSpectrum(name=name, params=params, dim=dim, eigenvalues=top.eigenvalues.to(torch.float64).cpu(),
                         residuals=top.residuals.to(torch.float64).cpu(), converged=bool(top.converged),
                         trace=tr.value, trace_stderr=tr.stderr, density=spectrum, exact=False, matvecs=H.matvecs)
