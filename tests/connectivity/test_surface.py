import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape.connectivity.interpolation import interpolate, load_run_checkpoint
from landscape.connectivity.surface import (Directions, LossSurface, eigen_directions, filter_directions,
                                            line_direction, loss_surface, pca_directions, surface_for,
                                            surface_from_checkpoint)
from landscape.foundation.params import ParamSpace
from landscape.training.evaluation import evaluate

LOSS = nn.CrossEntropyLoss()

pytestmark = pytest.mark.usefixtures("one_thread")


def bn_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6, 3)).double().eval()


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def data(seed: int, shape: tuple[int, ...], n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_filter_normalised_directions_have_the_per_filter_norms_of_the_weights():
    model = bn_cnn()
    dirs = filter_directions(model, 2, seed=3)
    params = dict(model.named_parameters())
    assert len(dirs.vectors) == 2 and dirs.kind == "filter"
    for d in dirs.vectors:
        for name, p in params.items():
            if p.ndim >= 2:
                torch.testing.assert_close(d[name].reshape(p.shape[0], -1).norm(dim=1),
                                           p.detach().reshape(p.shape[0], -1).norm(dim=1), rtol=1e-12, atol=0)
            else:  # biases and BatchNorm parameters
                assert torch.all(d[name] == 0)
    assert not torch.equal(dirs.vectors[0]["0.weight"], dirs.vectors[1]["0.weight"])
    ones = filter_directions(model, 1, seed=3, bias_bn="filter").vectors[0]
    torch.testing.assert_close(ones["1.weight"].abs(), params["1.weight"].detach().abs(), rtol=0, atol=0)


def test_filter_directions_are_zero_on_pruned_weights_and_keep_the_filter_norms():
    model = mlp()
    mask = torch.rand(8, 5, generator=torch.Generator().manual_seed(0)) > 0.3
    with torch.no_grad():
        model[0].weight.mul_(mask)
    d = filter_directions(model, 1, masks={"0.weight": mask}).vectors[0]["0.weight"]
    assert torch.all(d[~mask] == 0)
    torch.testing.assert_close(d.norm(dim=1), model[0].weight.detach().norm(dim=1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("make, shape", [(mlp, (5,)), (bn_cnn, (1, 8))])
def test_center_of_a_2d_grid_equals_the_model_loss(make, shape):
    model, batch = make(), data(1, shape)
    s = loss_surface(model, LOSS, batch, filter_directions(model, 2), points=5, batchnorm="keep",
                     progress=False)
    assert s.loss.shape == (5, 5) and s.accuracy.shape == (5, 5) and s.ndim == 2
    ev = evaluate(model, LOSS, batch)
    assert s.loss[2, 2] == ev.loss and s.accuracy[2, 2] == ev.accuracy
    assert s.minimum[1] == s.loss.min()


def test_pca_plane_of_a_trajectory_along_a_line_recovers_the_line():
    model = mlp()
    space = ParamSpace(model)
    theta = space.values(model)
    u = torch.randn(space.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    steps = [-4.0, -3.0, -2.5, -1.0, 0.0]
    trajectory = [space.to_dict(theta + t * u) for t in steps]
    dirs = pca_directions(model, trajectory)
    d1, d2 = (space.to_flat(v) for v in dirs.vectors)
    assert float(d1 @ u).__abs__() / float(u.norm()) == pytest.approx(1.0, abs=1e-12)
    assert float(d1 @ d2) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(dirs.trajectory[:, 0], np.array(steps) * float(u.norm()), rtol=1e-10)
    np.testing.assert_allclose(dirs.trajectory[:, 1], 0.0, atol=1e-10)
    assert dirs.labels[0].startswith("PC1 (100.0%")


def test_slice_along_the_line_between_checkpoints_is_the_interpolation_path():
    a, b, batch = mlp(0), mlp(1), data(2, (5,))
    alphas = np.linspace(-0.5, 1.5, 9)
    s = loss_surface(a, LOSS, batch, line_direction(a, b.state_dict()), alphas, progress=False)
    path = interpolate(a, b, LOSS, batch, alphas=alphas)
    assert s.ndim == 1 and s.betas is None
    np.testing.assert_allclose(s.loss, path.loss, rtol=1e-12)


def test_surface_leaves_the_model_untouched_and_resets_batchnorm_on_a_copy():
    model, batch = bn_cnn(), data(1, (1, 8))
    model.train()
    before = copy.deepcopy(model.state_dict())
    s = surface_for(model, LOSS, batch, "filter", dims=1, points=3, progress=False)
    assert s.batchnorm == "reset" and s.loss.shape == (3,)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training and model[1].momentum == 0.1


def test_surface_for_pca_covers_the_trajectory_and_saves_and_loads(tmp_path):
    model, batch = mlp(), data(2, (5,))
    g = torch.Generator().manual_seed(1)
    trajectory = [{k: v + 0.3 * (4 - i) * torch.randn(v.shape, generator=g, dtype=v.dtype)
                   for k, v in model.state_dict().items()} for i in range(5)]
    s = surface_for(model, LOSS, batch, "pca", trajectory=trajectory, points=4, progress=False)
    assert s.trajectory.shape == (5, 2) and s.loss.shape == (4, 4)
    for k, axis in enumerate((s.alphas, s.betas)):
        assert axis.min() < s.trajectory[:, k].min() and axis.max() > s.trajectory[:, k].max()
    s.save(tmp_path / "s.npz")
    loaded = LossSurface.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded.loss, s.loss)
    np.testing.assert_array_equal(loaded.trajectory, s.trajectory)
    assert loaded.labels == s.labels and loaded.kind == "pca"


def test_directions_naming_unknown_parameters_are_rejected():
    model = mlp()
    with pytest.raises(KeyError, match="nope"):
        loss_surface(model, LOSS, data(0, (5,)), Directions(({"nope": torch.zeros(1)},), ("α",), "custom"),
                     progress=False)


def test_eigen_directions_are_orthonormal_top_hessian_eigenvectors():
    model, batch = mlp(), data(3, (5,))
    dirs = eigen_directions(model, LOSS, batch, 2)
    space = ParamSpace(model)
    v = torch.stack([space.to_flat(d) for d in dirs.vectors], dim=1)
    torch.testing.assert_close(v.T @ v, torch.eye(2, dtype=v.dtype), rtol=0, atol=1e-8)
    params = dict(model.named_parameters())

    def loss_of(flat):
        return LOSS(torch.func.functional_call(model, space.to_dict(flat), (batch[0],)), batch[1])

    hessian = torch.autograd.functional.hessian(loss_of, space.values(model))
    exact = torch.linalg.eigvalsh(hessian)[-2:].flip(0)
    rayleigh = torch.stack([v[:, i] @ hessian @ v[:, i] for i in range(2)])
    torch.testing.assert_close(rayleigh, exact, rtol=1e-6, atol=1e-8)
    assert set(dirs.vectors[0]) <= set(params)


def test_surface_from_a_run_checkpoint_is_centred_on_it_with_its_trajectory(tmp_path):
    from landscape.training import Hparams, train

    hparams = Hparams(model="mlp", model_kwargs={"widths": [6]}, data="teacher_student",
                      data_kwargs={"train_size": 48, "test_size": 16, "input_dim": 4, "num_classes": 3},
                      batch_size=16, steps="6it", checkpoint_steps=(0, 2, 4), checkpoint_every=0, eval_every=0)
    train(hparams, tmp_path / "run", progress=False)
    s = surface_from_checkpoint(tmp_path / "run" / "checkpoints" / "step_000004.safetensors", "pca", points=3,
                                progress=False)
    assert s.kind == "pca" and s.trajectory.shape == (3, 2) and s.loss.shape == (3, 3)
    np.testing.assert_allclose(s.trajectory[-1], 0.0, atol=1e-6)  # the checkpoint itself is the origin
    line = surface_from_checkpoint(tmp_path / "run", "filter", dims=1, points=3, progress=False)
    run = load_run_checkpoint(tmp_path / "run")
    assert line.ndim == 1 and line.loss[1] == evaluate(run.model, run.loss_fn, run.data["train"]).loss


def test_filter_directions_are_drawn_on_the_models_device_in_its_widest_float(monkeypatch):
    import landscape.connectivity.surface as surface
    drawn = []
    real = torch.randn

    def spy(*args, **kwargs):
        drawn.append((kwargs.get("device"), kwargs.get("dtype")))
        return real(*args, **kwargs)
    monkeypatch.setattr(surface, "widest_float", lambda device: torch.float32)   # as on MPS (no float64)
    monkeypatch.setattr(surface.torch, "randn", spy)
    model = mlp()
    directions = filter_directions(model, 2)
    device = next(model.parameters()).device
    assert drawn and all(d == device and dtype == torch.float32 for d, dtype in drawn)
    assert all(t.device == device for v in directions.vectors for t in v.values())
