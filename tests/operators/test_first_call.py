"""A user's first default call pays no one-time import that the products do not need (issue 17, item 0).

``torch.func`` imports ``torch._dynamo`` on first use (3 to 6 s on this CPU) and ``torch.autograd.grad`` with
tensor ``grad_outputs`` imports ``sympy`` (0.25 to 0.6 s): either was more than a small model's whole top-5
solve. A fresh interpreter shows whether a default Hessian or GGN solve still triggers them."""
import os
import subprocess
import sys

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
