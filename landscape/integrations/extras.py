"""Importing an optional framework, with an error that names the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """``import module``, or an ``ImportError`` saying ``pip install "landscape[<extra>]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is not installed; this integration needs it: pip install \"landscape[{extra}]\" "
                          f"(or, in a checkout, pip install -e \".[{extra}]\")") from error
