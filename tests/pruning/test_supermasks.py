import copy

import pytest
import torch
from torch import nn

from landscape.pruning import (apply_masks, edge_popup, sign_bit_start, signs_only, train_fixed_signs, zhou_masks,
                               zhou_scores)
from landscape.training.evaluation import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(w_init, w_final):
    initial, final = nn.Linear(3, 2, bias=False).double(), nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        initial.weight.copy_(torch.tensor(w_init, dtype=torch.float64))
        final.weight.copy_(torch.tensor(w_final, dtype=torch.float64))
    return initial, final


def test_zhou_criteria_pick_the_right_weights_on_a_hand_made_pair():
    initial, final = _pair([[1.0, -1.0, 0.1], [2.7, -0.2, 0.5]],
                           [[3.0, 2.5, 0.5], [-2.8, -0.1, 0.6]])
    picks = {c: zhou_masks(initial, final, 0.5, c, allocation="global")["weight"].tolist()
             for c in ("large_final", "large_final_same_sign", "magnitude_increase")}
    # |w_f| largest: 3.0, -2.8, 2.5; same sign and large: 3.0, 0.6, 0.5 (2.5 and -2.8 flipped);
    # |w_f| - |w_i|: 2.0, 1.5, 0.4 in the first row, 0.1, -0.1, 0.1 in the second
    assert picks["large_final"] == [[True, True, False], [True, False, False]]
    assert picks["large_final_same_sign"] == [[True, False, True], [False, False, True]]
    assert picks["magnitude_increase"] == [[True, True, True], [False, False, False]]
    torch.testing.assert_close(zhou_scores(initial, final, "magnitude_increase")["weight"],
                               torch.tensor([[2.0, 1.5, 0.4], [0.1, -0.1, 0.1]], dtype=torch.float64))


def _separable(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def test_edge_popup_finds_an_accurate_supermask_and_leaves_the_random_weights_bit_identical():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    before = copy.deepcopy(model.state_dict())
    x, y = _separable()
    chance = evaluate(model, nn.CrossEntropyLoss(), (x, y)).accuracy
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(x), 64)]
    result = edge_popup(model, nn.CrossEntropyLoss(), batches, 0.5, steps=200, lr=0.5)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())   # the user's model untouched
    assert all(p.grad is None for p in model.parameters())
    assert [int(m.sum()) for m in result.masks.values()] == [64, 2048, 64]   # half of each layer
    pruned = apply_masks(copy.deepcopy(model), result.masks)
    for name, p in pruned.named_parameters():   # the kept weights are the random ones, bit for bit
        expected = before[name] * result.masks[name] if name in result.masks else before[name]
        assert torch.equal(p, expected)
    assert all(torch.equal(p, q) for p, q in zip(result.model.parameters(), pruned.parameters()))
    x_test, y_test = _separable(seed=1)
    accuracy = evaluate(pruned, nn.CrossEntropyLoss(), (x_test, y_test)).accuracy
    assert accuracy > 0.9 and accuracy > chance + 0.2, (accuracy, chance)


@pytest.mark.parametrize("start", ["signs_only", "sign_bit"])
def test_fixed_sign_training_keeps_every_sign_and_the_mask_and_still_learns(start):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    masks = {n: torch.rand(p.shape) < 0.6 for n, p in model.named_parameters() if p.ndim == 2}
    if start == "signs_only":
        begin = signs_only(model, masks)
    else:
        torch.manual_seed(1)
        fresh = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        begin = sign_bit_start(model, fresh, masks)
        start, original = dict(begin.named_parameters()), dict(model.named_parameters())
        assert all(torch.equal(torch.sign(start[n]), torch.sign(original[n]) * m) for n, m in masks.items())
    x, y = _separable()
    snapshot = copy.deepcopy(begin.state_dict())
    loss_fn = nn.CrossEntropyLoss()
    result = train_fixed_signs(begin, loss_fn, [(x, y)], steps=200, lr=0.2)
    assert all(torch.equal(begin.state_dict()[k], v) for k, v in snapshot.items())
    trained = dict(result.model.named_parameters())
    changed = False
    for n in masks:
        s0, s1 = torch.sign(snapshot[n]), torch.sign(trained[n].detach())
        assert bool(((s1 == s0) | (s1 == 0)).all()), f"a sign of {n} flipped"
        assert bool((s1[~masks[n]] == 0).all()) and float((s1 == s0).double().mean()) > 0.9
        changed |= not torch.equal(trained[n], snapshot[n])
    assert changed and float(result.losses[-10:].mean()) < 0.5 * float(result.losses[0])
    assert evaluate(result.model, loss_fn, (x, y)).accuracy > 0.9
