import itertools

import pytest
import torch
from torch import nn

from landscape.pruning import (apply_masks, grasp_scores, layer_densities, magnitude_scores, masks_from_scores,
                               prune_at_init, prune_to_density, shuffle_masks, snip_scores, synflow_scores)

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(7, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (7,), generator=gen)


def _flat_loss(model, x, y):
    params = dict(model.named_parameters())
    names = ["0.weight", "2.weight"]
    sizes = [params[n].numel() for n in names]

    def loss(flat):
        pieces = {n: t.reshape(params[n].shape) for n, t in zip(names, torch.split(flat, sizes))}
        return nn.functional.cross_entropy(torch.func.functional_call(model, {**params, **pieces}, (x,)), y)

    return loss, names, sizes, torch.cat([params[n].detach().reshape(-1) for n in names])


def _split(flat, model, names, sizes):
    params = dict(model.named_parameters())
    return {n: t.reshape(params[n].shape) for n, t in zip(names, torch.split(flat, sizes))}


def test_snip_score_is_abs_theta_times_the_hand_computed_gradient():
    model, (x, y) = _mlp(), _data()
    loss, names, sizes, theta = _flat_loss(model, x, y)
    expected = _split((theta * torch.func.grad(loss)(theta)).abs(), model, names, sizes)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores = snip_scores(model, nn.CrossEntropyLoss(), [(x[:3], y[:3]), (x[3:], y[3:])])  # size-weighted mean
    assert set(scores) == set(names)
    for n in names:
        torch.testing.assert_close(scores[n], expected[n], rtol=1e-12, atol=1e-14)
    assert all(p.grad is None and torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_grasp_score_is_minus_theta_times_the_dense_hessian_gradient_product():
    model, (x, y) = _mlp(), _data()
    loss, names, sizes, theta = _flat_loss(model, x, y)
    hg = torch.func.hessian(loss)(theta) @ torch.func.grad(loss)(theta)
    expected = _split(-theta * hg, model, names, sizes)
    scores = grasp_scores(model, nn.CrossEntropyLoss(), (x, y))
    for n in names:
        torch.testing.assert_close(scores[n], expected[n], rtol=1e-10, atol=1e-13)
    masks = prune_at_init(model, "grasp", 0.5, loss_fn=nn.CrossEntropyLoss(), data=(x, y))
    flat = torch.cat([scores[n].reshape(-1) for n in names])
    kept = torch.cat([masks[n].reshape(-1) for n in names])
    assert int(kept.sum()) == round(35 * 0.5) and flat[kept].max() <= flat[~kept].min()  # GraSP keeps the smallest


def _chain(*weights):
    layers = [nn.Linear(w.shape[1], w.shape[0], bias=False).double() for w in weights]
    with torch.no_grad():
        for layer, w in zip(layers, weights):
            layer.weight.copy_(w)
    return nn.Sequential(*layers)


def test_synflow_score_on_a_linear_chain_is_the_sum_over_paths_of_products_of_absolute_weights():
    gen = torch.Generator().manual_seed(2)
    ws = [torch.randn(3, 2, generator=gen, dtype=torch.float64), torch.randn(4, 3, generator=gen, dtype=torch.float64),
          torch.randn(2, 4, generator=gen, dtype=torch.float64)]
    scores = synflow_scores(_chain(*ws), (2,))
    expected = [torch.zeros_like(w) for w in ws]
    for a, b, c, d in itertools.product(range(2), range(3), range(4), range(2)):   # every input-output path
        path = abs(ws[0][b, a] * ws[1][c, b] * ws[2][d, c])
        for layer, (i, j) in enumerate(((b, a), (c, b), (d, c))):
            expected[layer][i, j] += path
    for layer in range(3):
        torch.testing.assert_close(scores[f"{layer}.weight"], expected[layer], rtol=1e-12, atol=0)


def test_iterative_synflow_reaches_the_exact_sparsity_without_the_layer_collapse_of_one_shot_magnitude():
    gen = torch.Generator().manual_seed(3)
    model = _chain(torch.randn(20, 10, generator=gen, dtype=torch.float64),
                   0.01 * torch.randn(20, 20, generator=gen, dtype=torch.float64),   # small weights: a bottleneck
                   torch.randn(5, 20, generator=gen, dtype=torch.float64))
    magnitude = prune_to_density(model, 0.3)
    assert layer_densities(magnitude)["1.weight"] == 0.0   # one-shot magnitude collapses the middle layer
    masks = prune_at_init(model, "synflow", 0.3, input_shape=(10,), iterations=100)
    assert sum(int(m.sum()) for m in masks.values()) == round(700 * 0.3)
    assert all(d > 0 for d in layer_densities(masks).values())
    assert float(apply_masks(_chain(*[p.detach().abs() for p in model.parameters()]), masks)(
        torch.ones(1, 10, dtype=torch.float64)).sum().detach()) > 0    # a path from input to output survives


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow", "magnitude_init", "random"])
@pytest.mark.parametrize("allocation", ["global", "layerwise"])
def test_every_method_keeps_exactly_the_density_asked(method, allocation):
    model, (x, y) = _mlp(), _data()
    masks = prune_at_init(model, method, 0.3, loss_fn=nn.CrossEntropyLoss(), data=(x, y), input_shape=(4,),
                          allocation=allocation, iterations=5)
    if allocation == "global":
        assert sum(int(m.sum()) for m in masks.values()) == round(35 * 0.3)
    else:
        assert [int(m.sum()) for m in masks.values()] == [round(20 * 0.3), round(15 * 0.3)]


def test_magnitude_at_init_keeps_the_largest_weights_like_prune_to_density():
    model = _mlp()
    for allocation, scope in (("global", "global"), ("layerwise", "layer")):
        ours = masks_from_scores(magnitude_scores(model), 0.4, allocation)
        theirs = prune_to_density(model, 0.4, scope=scope)
        assert all(torch.equal(ours[n], theirs[n]) for n in ours)


def test_shuffle_keeps_each_layers_density_and_moves_the_weights():
    model = _mlp()
    masks = prune_at_init(model, "magnitude_init", 0.4)
    shuffled = shuffle_masks(masks, seed=1)
    assert layer_densities(shuffled) == layer_densities(masks)
    assert all(not torch.equal(shuffled[n], masks[n]) for n in masks)


def test_bad_arguments_are_named_errors():
    model = _mlp()
    with pytest.raises(ValueError, match="loss_fn and data"):
        prune_at_init(model, "snip", 0.5)
    with pytest.raises(ValueError, match="input_shape"):
        prune_at_init(model, "synflow", 0.5)
    with pytest.raises(ValueError, match="density"):
        prune_at_init(model, "random", 0.0)
    with pytest.raises(ValueError, match="allocation"):
        prune_at_init(model, "random", 0.5, allocation="per-layer")


def test_scoring_leaves_the_users_model_its_modes_grads_buffers_and_rng_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.ReLU(), nn.Linear(6, 3)).double()
    model[1].eval()   # a mixed mode that must survive
    x, y = _data()
    model(x).sum().backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    rng = torch.random.get_rng_state()
    for method in ("snip", "grasp", "synflow", "magnitude_init", "random"):
        prune_at_init(model, method, 0.5, loss_fn=nn.CrossEntropyLoss(), data=(x, y), input_shape=(4,), iterations=3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())   # BatchNorm statistics included
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert [m.training for m in model.modules()] == modes and torch.equal(torch.random.get_rng_state(), rng)
