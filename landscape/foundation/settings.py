"""Typed, frozen settings dataclasses whose fields carry their own help strings.

Hyperparameters (:class:`landscape.training.Hparams`, :class:`landscape.pruning.PruningHparams`) and
measurement budgets (:class:`landscape.analysis.curvature.CurvatureSettings` and the settings built on it) are
dataclasses derived from :class:`Settings`, with every field declared by :func:`setting`. The CLI builds its
options from the fields, their types and their help strings (:func:`landscape.cli.add_settings_arguments`), and
results are keyed by :attr:`Settings.digest`, a hash of the fields that identify the work (``identity=True``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, ClassVar


def setting(default: Any, help: str, *, identity: bool = True) -> Any:
    """A dataclass field with a ``help`` string; ``identity=False`` marks bookkeeping that may change without
    changing the result (e.g. a checkpoint schedule). Dict defaults are copied per instance."""
    metadata = {"help": help, "identity": identity}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Settings:
    """Behaviour shared by the settings dataclasses: help strings, plain-data form, identity and its digest."""

    digest_length: ClassVar[int] = 10

    @classmethod
    def help(cls, name: str) -> str:
        """The help string of field ``name``."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == name:
                return f.metadata["help"]
        raise KeyError(f"{cls.__name__} has no field {name!r}")

    def check_types(self) -> None:
        """Check every field against its annotation (``int``, ``float`` (an int will do), ``str``, ``bool``,
        ``tuple[X, ...]`` (a list will do), ``dict``, ``X | None``); call first in ``__post_init__``, so that
        values read from a file fail naming the field rather than deep inside a computation.

        Raises:
            TypeError: naming every field whose value has the wrong type, with the type expected.
        """
        hints = typing.get_type_hints(type(self))
        wrong = [f"{f.name}={getattr(self, f.name)!r} (expected {_describe(hints[f.name])})"
                 for f in dataclasses.fields(self)  # type: ignore[arg-type]
                 if not _fits(getattr(self, f.name), hints[f.name])]
        if wrong:
            raise TypeError(f"{type(self).__name__} fields of the wrong type: {'; '.join(wrong)}")

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready plain data (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    def identity(self) -> dict[str, Any]:
        """The fields that determine the result (``identity=True``), as plain data."""
        values = self.to_dict()
        return {f.name: values[f.name] for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.metadata.get("identity", True)}

    @property
    def digest(self) -> str:
        """A stable hex hash of :meth:`identity` (``digest_length`` digits): equal digests, equal work."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:self.digest_length]


def _fits(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the annotated type ``kind`` (see :meth:`Settings.check_types`)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in args)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if origin is tuple:
        element = args[0] if args else Any
        return isinstance(value, (tuple, list)) and all(_fits(v, element) for v in value)
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    return True   # Any and annotations without a runtime check


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(k) for k in args)
    if origin is tuple:
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(args[0], _describe(args[0]))}" if args else "a list"
    if origin is dict or kind is dict:
        return "a dict"
    return {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(kind, str(kind))
