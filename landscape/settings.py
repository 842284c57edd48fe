"""Typed, frozen settings dataclasses whose fields carry their own help strings.

Hyperparameters (:class:`landscape.training.Hparams`, :class:`landscape.pruning.PruningHparams`) and
measurement budgets (:class:`landscape.curvature.CurvatureSettings` and the settings built on it) are
dataclasses derived from :class:`Settings`, with every field declared by :func:`setting`. The CLI builds its
options from the fields, their types and their help strings (:func:`landscape.cli.add_settings_arguments`), and
results are keyed by :attr:`Settings.digest`, a hash of the fields that identify the work (``identity=True``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
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
