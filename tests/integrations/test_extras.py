"""The integrations are optional: ``import landscape`` loads none of their frameworks, and a missing one gives
an ImportError naming the extra that installs it."""
import importlib
import subprocess
import sys

import pytest

FRAMEWORKS = {   # integration module: (extra, modules hidden to simulate the framework's absence)
    "landscape.integrations.lightning": ("lightning", ("lightning", "lightning.pytorch")),
    "landscape.integrations.huggingface": ("hf", ("transformers",)),
    "landscape.integrations.tensorboard": ("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
}


def test_import_landscape_loads_no_integration_framework():
    code = ("import sys, landscape, landscape.integrations; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'transformers', 'tensorboard', "
            "'pytorch_lightning'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", sorted(FRAMEWORKS))
def test_a_missing_framework_raises_an_import_error_naming_its_extra(module, monkeypatch):
    extra, hidden = FRAMEWORKS[module]
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)   # import of a None entry raises ImportError
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=rf'pip install "landscape\[{extra}\]"'):
        importlib.import_module(module)
