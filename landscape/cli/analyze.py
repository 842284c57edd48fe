"""``landscape analyze TARGET ...``: curvature at checkpoints and barriers between them
(:mod:`landscape.analysis.analyze`).

    landscape analyze runs/mlp_mnist1d_1234abcd --steps 0,1000,3000 --out runs/mlp_mnist1d_1234abcd/analysis
    landscape analyze ckpt_a.pt ckpt_b.pt --model mypkg.models:build --data mypkg.data:load --out analysis
    landscape analyze step_*.pt --model mymod:make --data mymod:data --out analysis   # mymod.py in this folder
    landscape analyze step_*.pt --model resnet18 --model-kwargs width=16 --data synthetic_cifar --out analysis

Checkpoint files are analysed in step order (the step saved in each file, or ``step_N`` in its name).

Writes analysis.json, report.md and figures/ to ``--out`` and prints where they are; run again to resume.

Under torchrun the ranks share the curvature samples (:func:`landscape.analysis.analyze.analyze`'s ``process_group``)::

    torchrun --nproc-per-node 2 -m landscape analyze runs/mlp_mnist1d_1234abcd --out analysis
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch.distributed as dist

from landscape.analysis.analyze import AnalyzeSettings, analyze
from landscape.cli import add_device_arguments, add_settings_arguments, int_list, key_values, settings_from_args
from landscape.data import distributed
from landscape.foundation.locking import locked_directory

HELP = "analyse checkpoints: Hessian spectra, trace, saddle index, Fisher trace, barriers; JSON, figures, report.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Positional TARGETs, ``--model``, ``--data``, ``--steps``, ``--out``, the :class:`AnalyzeSettings` fields,
    device and progress."""
    parser.add_argument("targets", nargs="+", type=Path, help="checkpoint files and/or run directories")
    parser.add_argument("--model", default=None,
                        help="module:factory (called with --model-kwargs; module.py may be in the current "
                             "directory) or a registry model name; default: the architecture in each run's "
                             "config.json")
    parser.add_argument("--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="keyword arguments of the model factory; VALUE is JSON or a plain string")
    parser.add_argument("--data", default=None,
                        help="module:factory (returning a Dataset, {'train': .., 'test': ..} or (inputs, targets)), "
                             "a registry data set name (its own fixed split; see `landscape list`) or "
                             "torchvision:NAME with --data-kwargs root=PATH; default: each run's data set")
    parser.add_argument("--data-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="keyword arguments of the data factory, e.g. root=PATH; VALUE is JSON or a plain string")
    parser.add_argument("--steps", type=int_list, default=None, metavar="N,N,...",
                        help="checkpoint steps to analyse in each run directory (default: all)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (an earlier analysis there resumes)")
    add_settings_arguments(parser, AnalyzeSettings)
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the analysis and print where its report, JSON and figures are."""
    settings = settings_from_args(args, AnalyzeSettings)
    ctx = distributed.init_from_env()   # a single process unless torchrun started this one
    try:
        with locked_directory(args.out) if ctx.rank == 0 else contextlib.nullcontext():   # rank 0 writes
            result = analyze(args.targets, model=args.model, data=args.data, steps=args.steps, out_dir=args.out,
                             model_kwargs=key_values(args.model_kwargs, "--model-kwargs"),
                             data_kwargs=key_values(args.data_kwargs, "--data-kwargs"),
                             settings=settings, device=args.device or ctx.device, progress=not args.no_progress,
                             process_group=ctx.group)
    finally:
        if ctx.group is not None:
            dist.destroy_process_group()
    if ctx.rank != 0:
        return 0
    ranks = f" on {ctx.world_size} ranks" if ctx.world_size > 1 else ""
    print(f"analysed {len(result.checkpoints)} checkpoints and {len(result.pairs)} paths "
          f"({result.computed} computed, the rest reused){ranks}")
    print(f"data:    {result.data}")
    print(f"report:  {result.report_path}\njson:    {result.json_path}\nfigures: {result.out_dir / 'figures'}")
    return 0
