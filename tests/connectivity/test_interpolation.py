import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape.connectivity.interpolation import (InterpolationResult, barrier, interpolate, interpolate_checkpoints,
                                    interpolated_state, load_run_checkpoint, reset_batchnorm)
from landscape.training.evaluation import evaluate

LOSS = nn.CrossEntropyLoss()

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def bn_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6, 3)).double()


def batches(seed: int, shape: tuple[int, ...], n: int = 3, size: int = 16) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=g, dtype=torch.float64),
             torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def trained_stats(model: nn.Module, data) -> nn.Module:
    """Running statistics as a training pass would leave them with cumulative averaging."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for x, _ in data:
            model(x)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = 0.1
    return model.eval()


@pytest.mark.parametrize("make, shape, batchnorm", [(mlp, (5,), "reset"), (bn_cnn, (1, 8), "reset"),
                                                     (bn_cnn, (1, 8), "interpolate")])
def test_model_interpolated_with_itself_has_zero_barrier_by_both_definitions(make, shape, batchnorm):
    model, data = make(0), batches(1, shape)
    path = interpolate(model, model, LOSS, data, points=7, batchnorm=batchnorm)
    assert np.all(path.loss == path.loss[0]) and np.all(path.error == path.error[0])
    for quantity in ("loss", "error"):
        for definition in ("frankle", "entezari"):
            assert path.barrier_of(quantity, definition).height == 0.0
    assert path.barrier == 0.0


def test_endpoint_values_equal_separately_evaluated_models_on_each_data_set():
    a, b = mlp(0), mlp(1)
    data = {"train": batches(2, (5,)), "test": batches(3, (5,), n=1)}
    paths = interpolate(a, b, LOSS, data, points=5)
    assert set(paths) == {"train", "test"}
    for name, d in data.items():
        path = paths[name]
        assert path.name == name and path.alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
        for i, model in ((0, a), (-1, b)):
            ev = evaluate(model, LOSS, d)
            assert path.loss[i] == ev.loss and path.error[i] == ev.error


def test_endpoints_with_batchnorm_equal_the_models_with_interpolated_or_reset_statistics():
    train, test = batches(2, (1, 8)), batches(3, (1, 8), n=1)
    a, b = trained_stats(bn_cnn(0), batches(9, (1, 8))), trained_stats(bn_cnn(1), batches(8, (1, 8)))
    kept = interpolate(a, b, LOSS, {"train": train, "test": test}, points=3, batchnorm="interpolate")["test"]
    reset = interpolate(a, b, LOSS, {"train": train, "test": test}, points=3, batchnorm="reset")["test"]
    for i, model in ((0, a), (-1, b)):
        assert kept.loss[i] == evaluate(model, LOSS, test).loss
        recomputed = reset_batchnorm(copy.deepcopy(model), train)
        assert reset.loss[i] == pytest.approx(evaluate(recomputed, LOSS, test).loss, rel=1e-12)
    assert kept.loss[0] != reset.loss[0]


def test_extrapolation_alphas_evaluate_the_extended_line_and_barriers_ignore_them():
    a, b, data = mlp(0), mlp(1), batches(2, (5,))
    path = interpolate(a, b, LOSS, data, alphas=[1.5, -0.5, 0.25])
    assert path.alphas.tolist() == [-0.5, 0.0, 0.25, 1.0, 1.5]
    beyond = copy.deepcopy(a)
    with torch.no_grad():
        for pa, pb, p in zip(a.parameters(), b.parameters(), beyond.parameters()):
            p.copy_(pa + 1.5 * (pb - pa))
    assert path.loss[-1] == pytest.approx(evaluate(beyond, LOSS, data).loss, rel=1e-12)
    inside = path.alphas[1:4]
    assert path.barrier_of("loss", "entezari").alpha in inside
    assert path.barrier_of("loss", "frankle").alpha in inside


def test_barrier_definitions_on_a_known_curve():
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    values = [0.0, 0.5, 0.6, 0.9, 1.0]
    frankle, entezari = barrier(alphas, values, "frankle"), barrier(alphas, values, "entezari")
    assert (frankle.height, frankle.alpha, frankle.baseline) == (0.5, 1.0, 0.5)
    assert (entezari.height, entezari.alpha, entezari.baseline) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="include 0 and 1"):
        barrier([0.0, 0.5], [1.0, 2.0])


def test_barrier_is_the_error_barrier_for_classes_and_the_loss_barrier_for_regression():
    alphas = np.array([0.0, 0.5, 1.0])
    classes = InterpolationResult(alphas, loss=np.array([1.0, 3.0, 1.0]), error=np.array([0.1, 0.4, 0.2]))
    assert classes.barrier == pytest.approx(0.25)
    regression = InterpolationResult(alphas, loss=np.array([1.0, 3.0, 1.0]), error=None)
    assert regression.barrier == pytest.approx(2.0)


def test_batchnorm_reset_recovers_cumulative_statistics_of_the_data():
    data = batches(4, (1, 8), n=3)
    model = bn_cnn(0).eval()
    with torch.no_grad():
        h = [model[0](x) for x, _ in data]  # the BatchNorm layer's inputs, (16, 4, 6) per batch
    mean = torch.stack([t.mean(dim=(0, 2)) for t in h]).mean(0)
    var = torch.stack([t.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True) for t in h]).mean(0)
    reset_batchnorm(model, data)
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-12, atol=1e-14)
    assert bn.momentum == 0.1 and not model.training
    # a model whose statistics came from such a pass is recovered exactly along a self-interpolation
    reference = trained_stats(bn_cnn(0), data)
    path = interpolate(reference, reference, LOSS, data, points=3)
    assert path.loss[1] == pytest.approx(evaluate(reference, LOSS, data).loss, rel=1e-12)


def test_batchnorm_reset_keeps_dropout_off():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Dropout(0.5), nn.BatchNorm1d(6)).double()
    data = batches(5, (5,))
    first = reset_batchnorm(model, data)[2].running_mean.clone()
    torch.testing.assert_close(reset_batchnorm(model, data)[2].running_mean, first, rtol=0, atol=0)


class Pruned(nn.Module):
    """An MLP that records, at every forward (of any copy), the largest pruned weight it sees."""
    seen: list[float] = []

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.fc, self.out = nn.Linear(5, 8), nn.Linear(8, 3)
        self.mask = mask

    def forward(self, x):
        Pruned.seen.append(float(self.fc.weight[~self.mask].abs().max()))
        return self.out(torch.tanh(self.fc(x)))


def test_masked_subnetworks_with_one_mask_stay_in_its_subspace_at_every_alpha():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(8, 5, generator=g) > 0.5
    Pruned.seen.clear()
    a, b = Pruned(mask).double(), Pruned(mask).double()
    with torch.no_grad():
        a.fc.weight.mul_(mask)
        b.fc.weight.mul_(mask)
    path = interpolate(a, b, LOSS, batches(6, (5,)), alphas=np.linspace(-1, 2, 13))
    assert len(Pruned.seen) == 3 * path.alphas.size and max(Pruned.seen) == 0.0
    for alpha in path.alphas:
        state = interpolated_state(a.state_dict(), b.state_dict(), float(alpha))
        assert torch.all(state["fc.weight"][~mask] == 0)
    # masks= forces the subspace even when an endpoint is dense
    Pruned.seen.clear()
    dense = Pruned(mask).double()
    interpolate(a, dense, LOSS, batches(6, (5,)), points=5, masks={"fc.weight": mask})
    assert len(Pruned.seen) == 3 * 5 and max(Pruned.seen) == 0.0


def test_user_models_are_unchanged_params_buffers_modes_grads_and_rng():
    a, b = trained_stats(bn_cnn(0), batches(7, (1, 8))), bn_cnn(1)
    a.train()
    b[1].eval()
    for p in a.parameters():
        p.grad = torch.ones_like(p)
    before = [copy.deepcopy(m.state_dict()) for m in (a, b)]
    modes = [[m.training for m in model.modules()] for model in (a, b)]
    rng = torch.random.get_rng_state()
    interpolate(a, b, LOSS, {"train": batches(2, (1, 8)), "test": batches(3, (1, 8), n=1)}, points=4)
    for model, state, mode in zip((a, b), before, modes):
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
        assert [m.training for m in model.modules()] == mode
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in a.parameters())
    assert b[0].weight.grad is None
    assert torch.equal(torch.random.get_rng_state(), rng)


class Shifted(nn.Module):
    def __init__(self, shift: float):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(5, 3)
        self.register_buffer("shift", torch.tensor([shift, 0.0, -shift]))

    def forward(self, x):
        return self.fc(x) + self.shift


def test_state_parameters_keeps_buffers_of_a_while_full_interpolates_them():
    a, b, data = Shifted(0.0).double(), Shifted(2.0).double(), batches(1, (5,))
    full = interpolate(a, b, LOSS, data, points=3, state="full")
    params = interpolate(a, b, LOSS, data, points=3, state="parameters")
    assert np.all(params.loss == params.loss[0])
    assert full.loss[-1] == evaluate(b, LOSS, data).loss != full.loss[0]


def test_state_dict_endpoints_need_the_architecture_and_match_models():
    a, b, data = mlp(0), mlp(1), batches(2, (5,))
    with pytest.raises(TypeError, match="model="):
        interpolate(a.state_dict(), b.state_dict(), LOSS, data)
    from_states = interpolate(a.state_dict(), b.state_dict(), LOSS, data, points=5, model=mlp(3))
    np.testing.assert_array_equal(from_states.loss, interpolate(a, b, LOSS, data, points=5).loss)


def test_reset_needs_named_training_data_among_several_sets():
    a, data = bn_cnn(0), batches(2, (1, 8))
    with pytest.raises(ValueError, match="bn_data"):
        interpolate(a, a, LOSS, {"x": data, "y": data}, points=3)
    assert set(interpolate(a, a, LOSS, {"x": data, "y": data}, points=3, bn_data=data)) == {"x", "y"}


def test_result_saved_and_loaded_is_the_same(tmp_path):
    path = interpolate(mlp(0), mlp(1), LOSS, batches(2, (5,)), points=4)
    path.save(tmp_path / "p.npz")
    loaded = InterpolationResult.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded.loss, path.loss)
    np.testing.assert_array_equal(loaded.error, path.error)
    assert (loaded.name, loaded.state, loaded.batchnorm) == (path.name, path.state, path.batchnorm)
    assert list(tmp_path.iterdir()) == [tmp_path / "p.npz"]


def test_checkpoints_of_training_runs_interpolate_with_their_data_and_masks(tmp_path):
    from landscape.training import Hparams, init_model, load_model, train

    hparams = Hparams(model="mlp", model_kwargs={"widths": [8]}, data="teacher_student",
                      data_kwargs={"train_size": 64, "test_size": 32, "input_dim": 4, "num_classes": 3},
                      batch_size=16, steps="6it", checkpoint_steps=(0, 3), checkpoint_every=0, eval_every=0)
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(p.shape, generator=g) > 0.5 for n, p in init_model(hparams).named_parameters()
             if p.ndim == 2}
    for seed in (0, 1):
        train(Hparams(**{**hparams.to_dict(), "data_order_seed": seed}), tmp_path / f"run{seed}", masks=masks,
              progress=False)
    paths = interpolate_checkpoints(tmp_path / "run0", tmp_path / "run1" / "checkpoints" / "step_000006.safetensors",
                                    points=3, progress=False)
    assert set(paths) == {"train", "test"}
    run = load_run_checkpoint(tmp_path / "run0")
    assert run.step == 6 and [len(s) for s in (run.data["train"], run.trajectory())] == [1, 3]
    assert all(torch.equal(run.masks[k], masks[k]) for k in masks)
    model_b = load_model(tmp_path / "run1")
    recomputed = reset_batchnorm(model_b, run.data["train"])  # an MLP: no BatchNorm, nothing changes
    assert paths["test"].loss[-1] == evaluate(recomputed, run.loss_fn, run.data["test"]).loss
