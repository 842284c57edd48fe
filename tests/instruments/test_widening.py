import pytest
import torch
from torch import nn

from landscape.instruments.widening import linear_chain, widen


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 6), nn.ReLU(),
                         nn.Linear(6, 3)).double()


@pytest.mark.parametrize("ratio", [0.5, 0.2, 1.7])
def test_widen_preserves_outputs_to_float64_precision(ratio):
    model = _mlp()
    x = torch.randn(64, 5, dtype=torch.float64)
    wide = widen(model, {0: 3, 1: 8}, ratio=ratio)
    assert [m.out_features for _, m in linear_chain(wide)] == [7, 14, 3]
    torch.testing.assert_close(wide(x), model(x), rtol=0, atol=1e-14)


def test_widen_leaves_the_original_untouched_and_copies_incoming_weights():
    model = _mlp()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    wide = widen(model, {0: 2}, neurons={0: [1, 1]}, ratio=0.25)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    w_in = wide[1].weight
    assert torch.equal(w_in[4], w_in[1]) and torch.equal(w_in[5], w_in[1])
    w_out = wide[3].weight
    torch.testing.assert_close(w_out[:, 1] + w_out[:, 4] + w_out[:, 5], model[3].weight[:, 1])


def test_widen_rejects_non_mlp_and_bad_layers():
    with pytest.raises(TypeError, match="BatchNorm1d"):
        widen(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), 1)
    with pytest.raises(ValueError, match="hidden layers"):
        widen(_mlp(), {5: 1})
