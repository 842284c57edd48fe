import math

import pytest
import torch
from torch import nn

from landscape.models.registry import build_model, model_description, model_names

pytestmark = pytest.mark.usefixtures("one_thread")

ENTRIES = [("mlp", {}), ("mlp", {"widths": [7, 5], "activation": "tanh"}), ("cnn1d", {}),
           ("cnn1d", {"batchnorm": True}), ("mlp", {"widths": [8], "batchnorm": True}), ("lenet300", {}),
           ("resnet1d", {"width": 4})]


def test_registry_lists_the_built_in_models_with_descriptions():
    assert {"mlp", "cnn1d", "lenet300", "resnet1d"} <= set(model_names())
    assert "batchnorm=False" in model_description("cnn1d")


@pytest.mark.parametrize("name,kwargs", ENTRIES)
@pytest.mark.parametrize("input_shape", [(40,), (64,)])
def test_each_registry_entry_builds_for_the_input_and_trains_a_few_steps(name, kwargs, input_shape):
    torch.manual_seed(0)
    model = build_model(name, input_shape, 10, **kwargs)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 10
    x, y = torch.randn(32, *input_shape), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert model(x).shape == (32, 10)
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_cnn1d_batchnorm_option_adds_batchnorm_and_drops_conv_biases():
    plain = build_model("cnn1d", (40,), 10)
    normed = build_model("cnn1d", (40,), 10, batchnorm=True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm1d) for m in normed.modules()) == 3
    assert all(m.bias is None for m in normed.modules() if isinstance(m, nn.Conv1d))


def test_resnet1d_has_batchnorm_and_residual_blocks():
    model = build_model("resnet1d", (40,), 10, blocks=[2, 1])
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    assert len(model.stages) == 3


def test_lenet300_is_sized_to_the_input():
    model = build_model("lenet300", (8, 8), 3)
    expected = 64 * 300 + 300 + 300 * 100 + 100 + 100 * 3 + 3
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.randn(2, 8, 8)).shape == (2, 3)


def test_mlp_widths_and_activation_are_configurable():
    model = build_model("mlp", (5,), 2, widths=(3, 4, 6), activation="tanh")
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linear] == [3, 4, 6, 2]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 3


def test_convolutional_models_take_channels_first_inputs():
    for name in ("cnn1d", "resnet1d"):
        model = build_model(name, (3, 20), 4)
        assert model(torch.randn(5, 3, 20)).shape == (5, 4)


def test_unknown_models_arguments_and_activations_fail_clearly():
    with pytest.raises(KeyError, match=r"unknown model .vgg.; known models: .*cnn1d.*lenet300.*mlp.*resnet1d"):
        build_model("vgg", (40,), 10)
    with pytest.raises(TypeError, match=r"takes no argument\(s\) \['depth'\]; it accepts "
                                        r"\['widths', 'activation', 'batchnorm'\]"):
        build_model("mlp", (40,), 10, depth=3)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        build_model("mlp", (40,), 10, activation="swish")
    with pytest.raises(ValueError, match="too short"):
        build_model("cnn1d", (2,), 10)


@pytest.mark.slow
@pytest.mark.parametrize("name,floor", [("cnn1d", 0.90), ("mlp", 0.60)])
def test_default_training_reaches_reference_test_accuracy_on_mnist1d(tmp_path, name, floor):
    from landscape.training import Hparams, train

    result = train(Hparams(model=name), tmp_path / name, progress=False)
    assert result.test.accuracy >= floor
