"""Registries of factories by name (models, data sets): a decorator to add one, a lookup whose error lists
the known names, and a one-line description from the factory's docstring and keyword defaults."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories of one kind (``"model"``, ``"data set"``) by name."""

    def __init__(self, kind: str, plural: str):
        self.kind, self.plural = kind, plural
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding a factory under ``name``; a name is registered once."""
        def add(factory: F) -> F:
            if name in self._factories:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            self._factories[name] = factory
            return factory
        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a factory registered for one experiment or test)."""
        self.get(name)
        del self._factories[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def get(self, name: str) -> F:
        """The factory registered as ``name``; ``KeyError`` listing the known names otherwise."""
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(self.names())}")
        return self._factories[name]

    def describe(self, name: str, positional: Iterable[str] = ()) -> str:
        """First line of the factory's docstring, then its keyword arguments (all but ``positional``) with
        their defaults."""
        factory = self.get(name)
        skip = set(positional)
        options = [f"{p.name}={p.default!r}" for p in inspect.signature(factory).parameters.values()
                   if p.name not in skip]
        return (factory.__doc__ or "").strip().splitlines()[0] + (f" Options: {', '.join(options)}." if options else "")
