"""The ``landscape`` command: a thin argparse layer over the library.

Each subcommand is one :class:`Command`: a one-line help (what ``landscape --help`` lists), a function
that adds its arguments to its parser, and a function that runs it and returns an exit code. A command
lives either here, as those two functions and one entry of ``_COMMANDS``, or in its own module
``landscape/cli/<name>.py`` defining ``HELP``, ``add_arguments(parser)`` and ``run(args)``, with its name
added to ``_MODULE_COMMANDS``. Shared argument helpers (:func:`add_settings_arguments`,
:func:`settings_from_args`, :func:`add_hparams_arguments`, :func:`add_device_arguments`, :func:`int_list`,
:func:`key_values`) are here
for those modules.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.data.registry import dataset_description, dataset_names
from landscape.models.registry import model_description, model_names
from landscape.training import Hparams, train
from landscape.training.tracker import INSTRUMENTS, Tracker


@dataclass(frozen=True)
class Command:
    """A ``landscape`` subcommand."""
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_settings_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One option per field of the settings dataclass ``cls`` (:mod:`landscape.foundation.settings`), with its help
    string and default: ``--name VALUE`` for numbers and strings, ``--name N,N,...`` for tuples, ``--name KEY=VALUE
    ...`` for dicts, ``--name`` / ``--no-name`` for booleans that default to false / true. :func:`settings_from_args`
    turns them back into ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind, help = hints[f.name], f.metadata["help"]
        optional = typing.get_origin(kind) in (typing.Union, types.UnionType)
        scalar = next(t for t in typing.get_args(kind) if t is not type(None)) if optional else kind  # X | None
        if kind is bool and not default:
            parser.add_argument(flag, dest=f.name, action="store_true", help=help)
        elif kind is bool:
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                help=f"do not {help}")
        elif scalar in (int, float, str):
            parser.add_argument(flag, type=scalar, default=default, help=f"{help} (default: {default})")
        elif typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            parser.add_argument(flag, type=int_list if element is int else _names, default=default,
                                metavar="N,N,..." if element is int else "NAME,NAME,...",
                                help=f"{help} (comma-separated; default: {_show_list(default)})")
        elif typing.get_origin(kind) is dict:
            parser.add_argument(flag, nargs="*", default=[], metavar="KEY=VALUE",
                                help=f"{help}; VALUE is JSON or a plain string")
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for type {kind}")


def settings_from_args(args: argparse.Namespace, cls: type) -> Any:
    """The ``cls`` instance that :func:`add_settings_arguments`' options describe."""
    hints = typing.get_type_hints(cls)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if typing.get_origin(hints[name]) is dict:
            values[name] = key_values(value, "--" + name.replace("_", "-"))
    return cls(**values)


def add_hparams_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`Hparams` options (:func:`add_settings_arguments`), then ``--device`` and ``--no-progress``;
    :func:`hparams_from_args` turns them back into ``Hparams``. Each command adds its own ``--out``."""
    add_settings_arguments(parser, Hparams)
    add_device_arguments(parser)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--no-progress``."""
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def hparams_from_args(args: argparse.Namespace) -> Hparams:
    """The :class:`Hparams` that :func:`add_hparams_arguments`' options describe."""
    return settings_from_args(args, Hparams)


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    """The hyperparameter options, the run directory and the tracked instruments."""
    add_hparams_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory (default: runs/<model>_<data>_<hash of the hyperparameters>); "
                             "an interrupted run there resumes")
    parser.add_argument("--track", type=_names, default=(), metavar="NAME,...",
                        help=f"instruments to run during training on the first 128 training samples: "
                             f"{', '.join(INSTRUMENTS)} (default: none)")
    parser.add_argument("--every", type=int, default=200, help="measure every N steps (default: 200)")


def _train(args: argparse.Namespace) -> int:
    """Train (or resume) the run and print its final losses and accuracies and where it was written."""
    hparams = hparams_from_args(args)
    out = args.out if args.out is not None else Path("runs") / hparams.name
    callbacks = [Tracker.for_hparams(hparams, instruments=args.track, schedule=args.every)] if args.track else []
    result = train(hparams, out, callbacks=callbacks, device=args.device, progress=not args.no_progress)
    verb = "resumed" if result.resumed else "trained"
    print(f"{verb} {hparams.model} on {hparams.data} for {result.steps} steps in {result.seconds:.1f} s: "
          f"train loss {result.train.loss:.4f}, test loss {result.test.loss:.4f}"
          + (f", train accuracy {result.train.accuracy:.4f}, test accuracy {result.test.accuracy:.4f}"
             if result.test.accuracy is not None else ""))
    print(f"run directory: {result.run.path} (config.json, checkpoints/, metrics.jsonl)")
    return 0


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    """``landscape list`` takes no arguments."""


def _list(args: argparse.Namespace) -> int:
    print("models (landscape.models.registry.build_model):")
    for name in model_names():
        print(f"  {name:16s} {model_description(name)}")
    print(f"  {'torchvision:NAME':16s} torchvision.models.NAME(weights=None, num_classes=...), when torchvision imports")
    print("data sets (landscape.data.load_dataset):")
    for name in dataset_names():
        print(f"  {name:16s} {dataset_description(name)}")
    print(f"  {'torchvision:NAME':16s} torchvision.datasets.NAME from a local root (--data-kwargs root=PATH, nothing "
          f"downloaded), when torchvision imports")
    print("  every classification data set also takes label_noise=P (that fraction of training labels set to another "
          "class), random_labels=true (all drawn uniformly) and label_seed=N; test labels are kept")
    return 0


_COMMANDS: list[Command] = [
    Command("train", "train a model on a data set, reproducibly and resumably, with checkpoints", _train_arguments,
            _train),
    Command("list", "list the registered models and data sets", _list_arguments, _list),
]
_MODULE_COMMANDS: tuple[str, ...] = ("analyze", "demo", "plot", "interpolate", "surface", "instability", "prune", "compare")


def commands() -> list[Command]:
    """Every command: those of ``_COMMANDS``, then those of the modules named in ``_MODULE_COMMANDS``
    (imported here, when the parser is built, so that they can import this module's helpers)."""
    modules = [importlib.import_module(f"{__name__}.{name}") for name in _MODULE_COMMANDS]
    return [*_COMMANDS, *(Command(name, m.HELP, m.add_arguments, m.run) for name, m in zip(_MODULE_COMMANDS, modules))]


def build_parser() -> argparse.ArgumentParser:
    """The ``landscape`` parser with one subparser per command; its help lists the commands one line each."""
    every = commands()
    width = max(len(c.name) for c in every)
    listing = "\n".join(f"  {c.name:<{width}}  {c.help}" for c in every)
    parser = argparse.ArgumentParser(
        prog="landscape", usage="landscape [-h] COMMAND ...",
        description="Loss landscapes and curvature of neural networks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{listing}\n\n`landscape COMMAND --help` describes the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS)
    for command in every:
        p = sub.add_parser(command.name, description=command.help, prog=f"landscape {command.name}")
        command.configure(p)
        p.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``landscape`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (KeyError, TypeError, ValueError, OSError, FloatingPointError, ImportError) as e:
        # named refusals: bad values and files (ValueError and its CheckpointError, RunConfigError,
        # FileFormatError), files that cannot be written or a directory another process holds (OSError),
        # an optional package a model or data set needs that cannot be imported (torchvision, transformers)
        message = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError's str() adds quotes
        print(f"landscape {args.command}: error: {message}", file=sys.stderr)
        return 2


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def int_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``, as an argparse type."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _show_list(values: Sequence[int | str]) -> str:
    return ",".join(str(v) for v in values) or "none"


def key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (each VALUE parsed as JSON, else kept as a string)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE pairs, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
