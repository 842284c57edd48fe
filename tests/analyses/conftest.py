"""Run an ``analyses/`` script in-process, as ``python analyses/NAME.py ARGS`` would."""
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"
sys.path.insert(0, str(ANALYSES))   # as `python analyses/NAME.py` does: the scripts import their shared module


@pytest.fixture
def run_script(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``run_script("name", "--quick", "--out", str(tmp))`` runs ``analyses/name.py`` as ``__main__``; the
    thread count the script sets is restored afterwards."""
    threads = torch.get_num_threads()

    def run(name: str, *args: str) -> None:
        path = ANALYSES / f"{name}.py"
        monkeypatch.setattr(sys, "argv", [str(path), *args])
        runpy.run_path(str(path), run_name="__main__")

    yield run
    torch.set_num_threads(threads)
