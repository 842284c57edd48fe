import pytest
import torch
from torch import nn

from landscape.pruning import (apply_masks, density, full_masks, layer_densities, magnitude_masks,
                               prunable_names, random_masks, reinitialize, signs_only, supermask)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.BatchNorm1d(30), nn.Linear(30, 10))


def test_default_prunable_are_weights_not_biases_or_batchnorm():
    assert prunable_names(_mlp()) == ["0.weight", "3.weight"]
    assert prunable_names(_mlp(), exclude_output=True) == ["0.weight"]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_density_after_n_rounds_is_0_8_to_the_n(scope):
    model, masks = _mlp(), None
    total = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2)
    for rounds in range(1, 7):
        masks = magnitude_masks(model, 0.2, masks, scope=scope)
        assert abs(density(masks) - 0.8 ** rounds) <= rounds / total * 2
        if scope == "layer":
            for n, d in layer_densities(masks).items():
                assert abs(d - 0.8 ** rounds) <= rounds / masks[n].numel() * 2


def test_magnitude_pruning_removes_smallest_surviving_weights():
    model = _mlp()
    masks = magnitude_masks(model, 0.5, scope="global")
    w = torch.cat([p.detach().abs().reshape(-1) for n, p in model.named_parameters() if n in masks])
    m = torch.cat([masks[n].reshape(-1) for n in masks])
    assert w[m].min() >= w[~m].max()
    again = magnitude_masks(model, 0.5, masks)
    assert not (again["0.weight"] & ~masks["0.weight"]).any(), "a pruned weight came back"
    assert int(sum(a.sum() for a in again.values())) == round(int(m.sum()) * 0.5)


def test_apply_masks_zeroes_exactly_the_pruned_weights():
    model = _mlp()
    masks = magnitude_masks(model, 0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_masks(model, masks)
    for n, p in model.named_parameters():
        if n in masks:
            assert torch.equal(p[~masks[n]], torch.zeros_like(p[~masks[n]]))
            assert torch.equal(p[masks[n]], before[n][masks[n]])
        else:
            assert torch.equal(p, before[n])


def test_random_masks_keep_per_layer_counts():
    masks = magnitude_masks(_mlp(), 0.6, scope="global")
    rnd = random_masks(masks, seed=3)
    for n in masks:
        assert int(rnd[n].sum()) == int(masks[n].sum())
    assert not all(torch.equal(rnd[n], masks[n]) for n in masks)


def test_controls_do_not_modify_their_inputs():
    model = _mlp()
    masks = magnitude_masks(model, 0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    fresh = reinitialize(model, seed=1, masks=masks)
    signs = signs_only(model, masks)
    sup = supermask(model, masks)
    assert torch.equal(torch.random.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    w0 = model[0].weight.detach()
    assert not torch.allclose(fresh[0].weight, w0)
    assert torch.equal(fresh[0].weight[~masks["0.weight"]], torch.zeros(int((~masks["0.weight"]).sum())))
    kept = masks["0.weight"]
    assert torch.allclose(signs[0].weight[kept].abs(), w0.std().expand(int(kept.sum())))
    assert torch.equal(torch.sign(signs[0].weight[kept]), torch.sign(w0[kept]))
    assert torch.equal(sup[0].weight, w0 * kept)


def test_bad_masks_are_named():
    model = _mlp()
    with pytest.raises(KeyError, match="nope"):
        apply_masks(model, {"nope": torch.ones(3)})
    with pytest.raises(ValueError, match="0.weight"):
        apply_masks(model, {"0.weight": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="fraction"):
        magnitude_masks(model, 1.0)
    assert density(full_masks(model)) == 1.0


def test_global_magnitude_pruning_reads_the_device_once_whatever_the_number_of_layers(host_syncs):
    torch.manual_seed(0)
    counts = []
    for layers in (2, 6):
        model = nn.Sequential(*[nn.Linear(5, 5) for _ in range(layers)])
        host_syncs.count = 0
        magnitude_masks(model, 0.5, scope="global")
        counts.append(host_syncs.count)
    assert counts[0] == counts[1], f"host reads grow with the layers: {counts}"
