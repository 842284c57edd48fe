"""Every edge case of issue 15, run and classified: named error / correct / silent wrong / traceback.

    python analyses/audit_edges.py               # all cases, one line each, then the totals
    python analyses/audit_edges.py --only eigs   # the cases whose name contains "eigs"

A case is right when it ends as ``correct`` or ``named error``; ``silent wrong`` (a wrong number with nothing
saying so, or bad input accepted) and ``traceback`` are failures, and the script exits 1 when any occurs.
The cases live in ``analyses/audit/``, one module per area (see :mod:`analyses.audit.common`).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections import Counter

import torch

import audit
from audit.common import OUTCOMES, Case, classify


def all_cases() -> list[Case]:
    """The ``CASES`` of every module in ``analyses/audit/``, in module order."""
    cases = []
    for module in sorted(pkgutil.iter_modules(audit.__path__), key=lambda m: m.name):
        if module.name != "common":
            cases.extend(importlib.import_module(f"audit.{module.name}").CASES)
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    totals = Counter()
    for case in all_cases():
        if args.only not in case.name:
            continue
        outcome, detail = classify(case)
        totals[outcome] += 1
        print(f"{outcome:<13} {case.name}" + (f"  ({detail})" if detail else ""), flush=True)
    print("totals: " + ", ".join(f"{totals[o]} {o}" for o in OUTCOMES))
    return 1 if totals["silent wrong"] or totals["traceback"] else 0


if __name__ == "__main__":
    sys.exit(main())
