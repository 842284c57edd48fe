"""``landscape prune``: iterative magnitude pruning with rewinding and controls (:mod:`landscape.pruning.imp`), or
one-shot pruning by another method (:mod:`landscape.pruning.one_shot`).

    landscape prune --model lenet300 --data mnist1d --rounds 8 --rewind 100it --controls reinit,random --out runs/imp
    landscape prune --method synflow --sparsity 0.9 --sanity shuffle,reinit --model lenet300 --data mnist1d
    landscape prune --model resnet1d --rewind-sweep 0it,40it --seeds 3 --rounds 5 --fraction 0.36 --controls reinit

The training options are those of ``landscape train``. ``--method imp`` (the default) trains the dense network,
then one pruned round after another, and prints a line per round; running it again resumes: finished rounds
are skipped, more rounds or controls are added. ``--rewind-sweep`` runs IMP rewound to each of several steps from
one dense run per seed, with the dense network's and every ticket's instability, and prints per step and density
the accuracies with a matching verdict over ``--seeds`` (:mod:`landscape.pruning.rewinding`). The other methods
prune to ``--sparsity`` with
``--allocation`` (default: the method's paper's, global for SNIP/GraSP/SynFlow/magnitude_init/random,
layerwise for the Zhou criteria, edge-popup and the sign methods), train what they prune and print a line per
network. Options that do not apply to the method are refused with :class:`PruneOptionError`.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from landscape.cli import add_hparams_arguments, add_settings_arguments, hparams_from_args, settings_from_args
from landscape.foundation.locking import locked_directory
from landscape.pruning.at_init import AT_INIT_METHODS
from landscape.pruning.imp import IMPResult, PruningHparams, iterative_magnitude_pruning
from landscape.pruning.masks import ALLOCATIONS
from landscape.pruning.one_shot import DEFAULT_ALLOCATION, ONE_SHOT_METHODS, SANITY_CHECKS, Outcome, one_shot
from landscape.pruning.rewinding import rewind_sweeps, summarize, summary_table
from landscape.training import Hparams

HELP = ("lottery tickets by iterative magnitude pruning with rewinding and controls, or pruning at initialisation "
        "(SNIP, GraSP, SynFlow), supermasks (Zhou criteria, edge-popup) and fixed-sign retraining")
METHODS = ("imp", *ONE_SHOT_METHODS)


class PruneOptionError(ValueError):
    """Options of ``landscape prune`` that do not go together (named, with the fix)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of ``landscape train`` (``--out`` is the IMP directory) and the pruning options."""
    add_hparams_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="IMP directory, one run directory per round (default: runs/imp_<hparams>_<pruning "
                             "digest>); rerunning resumes and skips finished rounds")
    add_settings_arguments(parser.add_argument_group("pruning"), PruningHparams)
    sweep = parser.add_argument_group("rewinding sweep (imp)")
    sweep.add_argument("--rewind-sweep", type=_rewinds, default=None, metavar="REWIND,...",
                       help="IMP rewound to each of these points (as --rewind: 0it, 40it, 1ep) from one shared dense "
                            "run per seed, with the dense network's instability at each point and each ticket's "
                            "instability; replaces --rewind")
    sweep.add_argument("--seeds", type=int, default=None, metavar="N",
                       help="independent seeds of the sweep: seed i adds i to --init-seed and --data-order-seed "
                            "(default: 1; matching is judged against one s.d. of the dense accuracy over seeds, so one "
                            "seed needs --match-tolerance)")
    sweep.add_argument("--instability-replicates", type=int, default=None, metavar="N",
                       help="pairs of copies per instability measurement (default: 1)")
    sweep.add_argument("--match-tolerance", type=float, default=None, metavar="FRACTION",
                       help="a subnetwork matches when its mean test accuracy is at least the dense mean minus this "
                            "accuracy fraction (default: one s.d. of the dense accuracy over the seeds)")
    one = parser.add_argument_group("one-shot methods (all but imp)")
    one.add_argument("--method", choices=METHODS, default="imp",
                     help="imp (iterative magnitude pruning, the options above); at initialisation: "
                          f"{', '.join(AT_INIT_METHODS)}; Zhou criteria on the trained network: large_final, "
                          "large_final_same_sign, magnitude_increase; edge_popup (learned supermask of the frozen "
                          "initialisation); signs_only, sign_bit (training with the signs fixed) (default: imp)")
    one.add_argument("--sparsity", type=float, default=None,
                     help="fraction of the prunable weights removed, exactly round(N * sparsity) (required by every "
                          "method but imp; 0 allowed for the sign methods)")
    one.add_argument("--allocation", choices=ALLOCATIONS, default=None,
                     help="rank all layers together (global) or keep the same density in each (layerwise) (default: "
                          "global for the at-init methods, layerwise for the others)")
    one.add_argument("--sanity", type=_checks, default=(), metavar="NAME,...",
                     help=f"at-init sanity checks of Frankle et al. 2021, from {', '.join(SANITY_CHECKS)}: also train "
                          "the layer-wise shuffled mask and the mask on a fresh initialisation")
    one.add_argument("--synflow-iterations", type=int, default=None,
                     help="SynFlow's prune-rescore rounds to the target (default: 100)")
    one.add_argument("--score-batches", type=int, default=None,
                     help="training batches SNIP and GraSP score on (default: 1)")


def run(args: argparse.Namespace) -> int:
    """Run or resume the experiment and print its rounds (imp) or networks (the other methods)."""
    hparams = hparams_from_args(args)
    pruning = settings_from_args(args, PruningHparams)
    _check_combination(args, pruning)
    if args.method != "imp":
        return _run_one_shot(args, hparams, pruning.control_seed)
    if args.rewind_sweep is not None:
        return _run_sweep(args, hparams, pruning)
    out = args.out if args.out is not None else Path("runs") / f"imp_{hparams.name}_{pruning.digest}"
    with locked_directory(out):
        result = iterative_magnitude_pruning(hparams, pruning, out, device=args.device, progress=not args.no_progress)
    print(summary(result))
    print(f"IMP directory: {result.path} (imp.json, round_NN/ with round.json and controls/)")
    return 0


def summary(result: IMPResult) -> str:
    """A text table: per round the density, test accuracy, stability to pruning and each control's accuracy."""
    controls = list(result.pruning.controls)
    header = f"{'round':>5} {'density':>8} {'test acc':>8} {'distance':>9} " + " ".join(f"{c:>9}" for c in controls)
    lines = [f"rewind to step {result.rewind_step}; accuracies on the test split after training", header]
    for r in result.rounds:
        distance = "" if r.stability is None else f"{r.stability.distance:.3f}"
        cells = [_accuracy(r.controls[c].test.accuracy) if c in r.controls else "" for c in controls]
        lines.append(f"{r.round:>5} {100 * r.density:>7.2f}% {_accuracy(r.test.accuracy):>8} {distance:>9} "
                     + " ".join(f"{c:>9}" for c in cells))
    return "\n".join(lines)


def _run_sweep(args: argparse.Namespace, hparams: Hparams, pruning: PruningHparams) -> int:
    """Run or resume the rewinding sweep of every seed and print its table."""
    out = args.out if args.out is not None else Path("runs") / f"rewind_sweep_{hparams.name}_{pruning.digest}"
    with locked_directory(out):
        results = rewind_sweeps(hparams, pruning, args.rewind_sweep, out, seeds=args.seeds or 1,
                                replicates=args.instability_replicates or 1, device=args.device,
                                progress=not args.no_progress)
    print(summary_table(summarize(results, tolerance=args.match_tolerance)))
    print(f"sweep directory: {out} (seed<i>/dense, dense_instability, rewind_<k>/, ticket_instability/)")
    return 0


def _check_combination(args: argparse.Namespace, pruning: PruningHparams) -> None:
    """Refuse options that do not apply to ``--method`` (:class:`PruneOptionError`)."""
    method = args.method
    sweep_given = [flag for flag, value in (("--rewind-sweep", args.rewind_sweep), ("--seeds", args.seeds),
                                            ("--instability-replicates", args.instability_replicates),
                                            ("--match-tolerance", args.match_tolerance)) if value is not None]
    if method != "imp" and sweep_given:
        raise PruneOptionError(f"{', '.join(sweep_given)} apply to --method imp only (the rewinding sweep)")
    one_shot_given = [flag for flag, value in (("--sparsity", args.sparsity), ("--allocation", args.allocation),
                                               ("--sanity", args.sanity or None),
                                               ("--synflow-iterations", args.synflow_iterations),
                                               ("--score-batches", args.score_batches)) if value is not None]
    if method == "imp":
        if one_shot_given:
            raise PruneOptionError(f"{', '.join(one_shot_given)} apply to the one-shot methods, not to --method imp; "
                                   "iterative magnitude pruning sets its sparsity by --rounds/--target-density and "
                                   "--fraction, its allocation by --scope")
        _check_sweep(args, pruning, sweep_given)
        return
    defaults = PruningHparams()
    imp_only = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(PruningHparams)
                if f.name != "control_seed" and getattr(pruning, f.name) != getattr(defaults, f.name)]
    problems = [msg for bad, msg in (
        (bool(imp_only), f"{', '.join(imp_only)} apply to --method imp only"),
        (args.sparsity is None, f"--method {method} needs --sparsity (the fraction of weights removed)"),
        (args.sparsity is not None and not 0.0 <= args.sparsity < 1.0,
         f"--sparsity must be in [0, 1), got {args.sparsity}"),
        (args.sparsity == 0.0 and method not in ("signs_only", "sign_bit"),
         f"--sparsity 0 prunes nothing; --method {method} needs a positive sparsity"),
        (bool(args.sanity) and method not in AT_INIT_METHODS,
         f"--sanity checks pruning at initialisation ({', '.join(AT_INIT_METHODS)}), not --method {method}"),
        (args.synflow_iterations is not None and method != "synflow", "--synflow-iterations applies to synflow only"),
        (args.synflow_iterations is not None and args.synflow_iterations < 1, "--synflow-iterations must be positive"),
        (args.score_batches is not None and method not in ("snip", "grasp"), "--score-batches applies to snip and "
                                                                              "grasp only"),
        (args.score_batches is not None and args.score_batches < 1, "--score-batches must be positive"),
    ) if bad]
    if problems:
        raise PruneOptionError("; ".join(problems))


def _run_one_shot(args: argparse.Namespace, hparams: Hparams, seed: int) -> int:
    """Run one method at ``--sparsity`` and print a line per network."""
    out = args.out if args.out is not None else Path("runs") / f"{args.method}_{hparams.name}_s{args.sparsity:g}"
    allocation = args.allocation or DEFAULT_ALLOCATION[args.method]
    with locked_directory(out):
        outcomes = one_shot(hparams, args.method, args.sparsity, out, allocation=allocation, sanity=args.sanity,
                            iterations=args.synflow_iterations or 100, score_batches=args.score_batches or 1,
                            seed=seed, device=args.device, progress=not args.no_progress)
    print(one_shot_summary(args.method, args.sparsity, allocation, outcomes))
    print(f"directory: {out}")
    return 0


def one_shot_summary(method: str, sparsity: float, allocation: str, outcomes: list[Outcome]) -> str:
    """A text table: per network its density and test accuracy, and where it was trained."""
    lines = [f"method {method}, sparsity {100 * sparsity:.2f}%, allocation {allocation}; test accuracy after "
             f"training (supermask: untrained)", f"{'network':>10} {'density':>8} {'test acc':>8}  run"]
    for o in outcomes:
        lines.append(f"{o.name:>10} {100 * o.density:>7.2f}% {_accuracy(o.test.accuracy):>8}  "
                     f"{o.run_dir if o.run_dir is not None else '-'}")
    return "\n".join(lines)


def _check_sweep(args: argparse.Namespace, pruning: PruningHparams, sweep_given: list[str]) -> None:
    """Refuse sweep options without ``--rewind-sweep``, ``--rewind`` with it, bad counts, and a single seed with no
    tolerance to judge matching by."""
    if args.rewind_sweep is None:
        if sweep_given:
            raise PruneOptionError(f"{', '.join(sweep_given)} apply to the rewinding sweep; add --rewind-sweep "
                                   "0it,40it (the rewind points)")
        return
    seeds = args.seeds if args.seeds is not None else 1
    problems = [msg for bad, msg in (
        (pruning.rewind != PruningHparams().rewind, f"--rewind {pruning.rewind} and --rewind-sweep both set the rewind "
                                                    "point; give the points in --rewind-sweep only"),
        (seeds < 1, f"--seeds must be at least 1, got {seeds}"),
        (args.instability_replicates is not None and args.instability_replicates < 1,
         f"--instability-replicates must be at least 1, got {args.instability_replicates}"),
        (args.match_tolerance is not None and not 0.0 <= args.match_tolerance < 1.0,
         f"--match-tolerance is an accuracy fraction in [0, 1), got {args.match_tolerance}"),
        (seeds == 1 and args.match_tolerance is None, "one seed has no spread to judge matching by; give --seeds 2 or "
                                                      "more, or --match-tolerance (e.g. 0.005)"),
    ) if bad]
    if problems:
        raise PruneOptionError("; ".join(problems))


def _rewinds(text: str) -> tuple[str, ...]:
    """``0it,40it,1ep`` as rewind points, each checked as ``--rewind`` would be."""
    points = tuple(part.strip() for part in text.split(",") if part.strip())
    if not points:
        raise argparse.ArgumentTypeError("give at least one rewind point, e.g. 0it,40it")
    for point in points:
        try:
            PruningHparams(rewind=point)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    return points


def _checks(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in SANITY_CHECKS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sanity checks {unknown}; known: {', '.join(SANITY_CHECKS)}")
    return names


def _accuracy(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
