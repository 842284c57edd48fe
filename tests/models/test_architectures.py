"""ResNet-18 (CIFAR form) and ViT of the model registry; torchvision models named when torchvision is absent."""
import importlib.util

import pytest
import torch
from torch import nn

from landscape.models.registry import build_model, model_names

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resnet18_at_full_width_has_the_cifar_resnet18_parameter_count_and_no_maxpool():
    model = build_model("resnet18", (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962   # the standard CIFAR ResNet-18
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 20  # 1 + 16 + 3 shortcuts


def test_vit_at_vit_b16_options_has_the_vit_b16_parameter_count():
    torch.manual_seed(0)
    model = build_model("vit", (3, 224, 224), 1000, patch=16, dim=768, depth=12, heads=12, mlp_dim=3072)
    assert sum(p.numel() for p in model.parameters()) == 86_567_656   # torchvision's vit_b_16


@pytest.mark.parametrize("name,kwargs", [("resnet18", {"width": 4}), ("vit", {"dim": 16, "depth": 2, "heads": 2,
                                                                              "mlp_dim": 32, "patch": 8})])
def test_small_image_models_train_a_few_steps_on_cifar_shaped_inputs(name, kwargs):
    assert name in model_names()
    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 10, **kwargs)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert model(x).shape == (16, 10) and losses[-1] < losses[0]


def test_image_models_refuse_shapes_they_cannot_take():
    with pytest.raises(ValueError, match="patch size"):
        build_model("vit", (3, 30, 30), 10, patch=4)
    with pytest.raises(ValueError, match="images of shape"):
        build_model("resnet18", (64,), 10)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_models_are_named_when_torchvision_cannot_be_imported():
    with pytest.raises(ImportError, match="torchvision:resnet50.*built-in 'resnet18'"):
        build_model("torchvision:resnet50", (3, 32, 32), 10)


def test_torchvision_models_are_built_without_weights_for_the_class_count(monkeypatch):
    """A stand-in torchvision.models (torchvision cannot be imported here) checks the call: weights=None, the
    class count, the options, and a named error for an unknown model."""
    import sys
    import types

    def tiny(weights, num_classes, hidden=3):
        assert weights is None
        return nn.Sequential(nn.Flatten(), nn.Linear(12, hidden), nn.Linear(hidden, num_classes))

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(tiny=tiny)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.models", fake.models)
    model = build_model("torchvision:tiny", (3, 2, 2), 7, hidden=5)
    assert model(torch.randn(2, 3, 2, 2)).shape == (2, 7) and model[1].out_features == 5
    with pytest.raises(ValueError, match="no model 'nope'"):
        build_model("torchvision:nope", (3, 2, 2), 7)
