"""A user's first default call pays no one-time import that the products do not need (issue 17, item 0).

``torch.func`` imports ``torch._dynamo`` on first use (3 to 6 s on this CPU) and ``torch.autograd.grad`` with
tensor ``grad_outputs`` imports ``sympy`` (0.25 to 0.6 s): either was more than a small model's whole top-5
solve. A fresh interpreter shows whether a default Hessian or GGN solve still triggers them."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from landscape.operators import DeterminismError, Hessian

CHILD = """
import sys, torch
from torch import nn
from landscape.linalg import eigs
from landscape.operators import GGN, Hessian
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
for cls in (Hessian, GGN):
    op = cls(model, nn.CrossEntropyLoss(), [(x[:25], y[:25]), (x[25:], y[25:])])
    eigs(op, k=3)
    print(cls.__name__, op.method_choice.chosen[0], "torch._dynamo" in sys.modules, "sympy" in sys.modules)
"""


def test_default_hessian_and_ggn_solves_import_neither_dynamo_nor_sympy():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Hessian", "reverse", "False", "False", "GGN", "reverse", "False", "False"]


def test_the_determinism_check_replays_one_batch_and_still_finds_dropout_and_a_reordered_loader():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    batches = [(x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)]
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    forwards = {}
    for check in (True, False):
        calls.clear()
        Hessian(model, nn.CrossEntropyLoss(), batches, method="reverse", check_determinism=check)
        forwards[check] = len(calls)
    assert forwards[True] - forwards[False] == 1   # the replay: one batch's forward, not four
    with pytest.raises(DeterminismError, match="dropout"):
        Hessian(nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 3)), nn.CrossEntropyLoss(), batches)

    class Reordering:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return iter(batches if self.passes == 1 else batches[:2] + batches[:1:-1])
    with pytest.raises(DeterminismError, match="shuffle=False"):
        Hessian(model, nn.CrossEntropyLoss(), Reordering())
