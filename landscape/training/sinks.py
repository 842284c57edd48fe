"""Where a tracker's records go besides its metrics file: the sink interface and the records as scalars.

A sink is any object with ``log(record)``: :class:`~landscape.foundation.runs.Run` (its ``metrics.jsonl``), the
TensorBoard writer of :mod:`landscape.integrations.tensorboard`, the framework-logger adapters of
:mod:`landscape.integrations.lightning` and :mod:`landscape.integrations.huggingface`. A tracker writes each
record to its run (if any) and then to each of its ``sinks`` (``Tracker(..., sinks=[...])``).

Loggers of scalars (TensorBoard, Lightning's loggers, the Hugging Face log history) get the record as
:func:`scalar_metrics`: one name per number, ``<prefix>/<tracker>/<instrument>/<field>``, list entries as
``<field>_<i>``; the density's quadrature (``nodes``, ``weights``) is not a scalar and is left to sinks that
draw distributions.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

IDENTITY_FIELDS = ("step", "instrument", "tracker")
DISTRIBUTION_FIELDS = ("nodes", "weights")


@runtime_checkable
class Sink(Protocol):
    """Receives every record a tracker writes (a JSON-ready dict with ``step`` and ``instrument``)."""

    def log(self, record: Mapping[str, Any]) -> None: ...


def scalar_metrics(record: Mapping[str, Any], prefix: str = "landscape") -> dict[str, float]:
    """The numbers of a tracker record by name (see the module docstring); booleans count as 0/1, strings,
    ``None`` and nested lists are left out.

    >>> scalar_metrics({"step": 5, "instrument": "trace", "value": 3.0, "stderr": 0.1, "method": "xtrace"})
    {'landscape/trace/value': 3.0, 'landscape/trace/stderr': 0.1}
    """
    head = record_tag(record, prefix)
    scalars = {}
    for field, value in record.items():
        if field in IDENTITY_FIELDS or field in DISTRIBUTION_FIELDS:
            continue
        if _is_number(value):
            scalars[f"{head}/{field}"] = float(value)
        elif isinstance(value, list) and all(_is_number(v) for v in value):
            scalars.update({f"{head}/{field}_{i}": float(v) for i, v in enumerate(value)})
    return scalars


def record_tag(record: Mapping[str, Any], prefix: str = "landscape") -> str:
    """``<prefix>/<tracker>/<instrument>`` (parts that are empty left out): the head of a record's names."""
    return "/".join(part for part in (prefix, record.get("tracker"), record["instrument"]) if part)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))
