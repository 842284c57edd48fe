import random
import socket

import numpy as np
import pytest
import torch

from landscape.data import BatchLoader, Dataset, dataset_names, load_dataset
from landscape.data import registry

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_lists_the_built_in_data_sets():
    assert {"mnist1d", "digits", "teacher_student"} <= set(dataset_names())


def test_mnist1d_is_generated_locally_with_reference_values_leaving_global_rng_untouched(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d must be generated, never downloaded")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("LANDSCAPE_CACHE_DIR", str(tmp_path))  # empty cache: really generate
    registry._load.cache_clear()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    data = load_dataset("mnist1d")
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert isinstance(data, Dataset)
    assert data.train[0].shape == (4000, 40) and data.test[0].shape == (1000, 40)
    assert data.train[0].dtype == torch.float32 and data.train[1].dtype == torch.int64
    assert data.num_classes == 10 and data.input_shape == (40,) and "MNIST-1D" in data.description
    assert set(data.train[1].tolist()) == set(range(10))
    # fingerprint of the seed-42 generation: deterministic across processes
    assert data.train[1][:16].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1, 6, 9, 4, 3, 4, 5]
    assert data.test[1][:8].tolist() == [2, 6, 3, 9, 4, 3, 1, 9]
    assert data.train[0][0, 0].item() == pytest.approx(-0.33200568, abs=1e-6)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    registry._load.cache_clear()
    cached = load_dataset("mnist1d")
    assert torch.equal(cached.train[0], data.train[0]) and torch.equal(cached.test[1], data.test[1])


def test_disk_cache_regenerates_missing_corrupt_or_altered_files(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDSCAPE_CACHE_DIR", str(tmp_path))
    calls = []

    def make():
        calls.append(1)
        return {"x": np.arange(6.0).reshape(2, 3)}

    first = registry._cached("thing", make)
    again = registry._cached("thing", make)
    assert len(calls) == 1 and np.array_equal(first["x"], again["x"])
    path = tmp_path / "thing.npz"
    path.write_bytes(b"garbage")
    assert np.array_equal(registry._cached("thing", make)["x"], first["x"]) and len(calls) == 2
    np.savez(path, sha256=np.array("0" * 64), x=np.zeros((2, 3)))  # altered contents, stale checksum
    assert np.array_equal(registry._cached("thing", make)["x"], first["x"]) and len(calls) == 3


def test_digits_split_is_fixed_stratified_and_disjoint():
    data = load_dataset("digits")
    x, y = data.train
    xt, yt = data.test
    assert x.shape == (1438, 64) and xt.shape == (359, 64) and data.input_shape == (64,)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.bincount(yt, minlength=10).min() >= 35  # every class in the test split, about 20% each
    train_rows = {tuple(r) for r in x.tolist()}
    assert sum(tuple(r) in train_rows for r in xt.tolist()) < 5  # a few images are exact duplicates in the source
    registry._load.cache_clear()
    again = load_dataset("digits")
    assert torch.equal(again.test[0], xt) and torch.equal(again.train[1], y)


def test_teacher_student_is_deterministic_and_configurable():
    a = load_dataset("teacher_student", train_size=300, test_size=50, input_dim=6, teacher_width=5, num_classes=4)
    registry._load.cache_clear()
    b = load_dataset("teacher_student", train_size=300, test_size=50, input_dim=6, teacher_width=5, num_classes=4)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.train[1], b.train[1])
    assert a.train[0].shape == (300, 6) and a.test[0].shape == (50, 6) and a.num_classes == 4
    assert set(a.train[1].tolist()) == {0, 1, 2, 3}
    other = load_dataset("teacher_student", train_size=300, test_size=50, input_dim=6, teacher_width=5,
                         num_classes=4, seed=1)
    assert not torch.equal(other.train[0], a.train[0])
    noisy = load_dataset("teacher_student", train_size=300, test_size=50, input_dim=6, teacher_width=5,
                         num_classes=4, noise=1.0)
    assert torch.equal(noisy.train[0], a.train[0]) and not torch.equal(noisy.train[1], a.train[1])


def test_teacher_student_regression_has_float_targets_and_mse_loss():
    data = load_dataset("teacher_student", train_size=100, test_size=20, num_classes=None, noise=0.1)
    assert data.num_classes is None and data.output_dim == 1
    assert data.train[1].shape == (100, 1) and data.train[1].dtype == torch.float32
    assert isinstance(data.loss_fn(), torch.nn.MSELoss)


def test_unknown_data_set_or_argument_fails_listing_the_known_ones():
    with pytest.raises(KeyError, match="mnist1d.*teacher_student|known data sets"):
        load_dataset("mnist")
    with pytest.raises(TypeError, match="accepts"):
        load_dataset("teacher_student", widht=3)
    with pytest.raises(ValueError, match="positive"):
        load_dataset("teacher_student", train_size=0)


def _epoch(loader: BatchLoader) -> list[torch.Tensor]:
    return [next(loader)[1] for _ in range(loader.batches_per_epoch)]


def test_loader_order_depends_only_on_data_order_seed():
    x, y = torch.randn(50, 3), torch.arange(50)
    torch.manual_seed(0)
    first = _epoch(BatchLoader(x, y, 10, seed=3))
    torch.manual_seed(123), np.random.seed(5), torch.rand(7)  # other global RNG use must not matter
    second = _epoch(BatchLoader(x, y, 10, seed=3))
    other = _epoch(BatchLoader(x, y, 10, seed=4))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_loader_epochs_visit_every_sample_once_and_reshuffle():
    x, y = torch.randn(23, 2), torch.arange(23)
    loader = BatchLoader(x, y, 5, seed=0)
    assert loader.batches_per_epoch == 4  # the incomplete last batch (3 samples) is dropped
    epoch0, epoch1 = torch.cat(_epoch(loader)), torch.cat(_epoch(loader))
    assert len(set(epoch0.tolist())) == 20 and len(set(epoch1.tolist())) == 20
    assert not torch.equal(epoch0, epoch1)
    assert all(len(b) == 5 for b in _epoch(loader))


def test_loader_state_restores_exactly_the_remaining_batches():
    x, y = torch.randn(30, 2), torch.arange(30)
    reference = BatchLoader(x, y, 7, seed=9)
    for _ in range(6):  # past the end of the first epoch (4 batches)
        next(reference)
    state = reference.state_dict()
    restored = BatchLoader(x, y, 7, seed=9)
    restored.load_state_dict(state)
    for _ in range(10):
        a, b = next(reference), next(restored)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_loader_rejects_empty_data_oversized_batches_and_foreign_state():
    with pytest.raises(ValueError, match="empty"):
        BatchLoader(torch.zeros(0, 3), torch.zeros(0), 1, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(torch.zeros(4, 3), torch.zeros(4), 5, seed=0)
    with pytest.raises(ValueError, match="first"):
        BatchLoader(torch.zeros(4, 3), torch.zeros(5), 2, seed=0)
    loader = BatchLoader(torch.zeros(4, 3), torch.zeros(4), 2, seed=0)
    with pytest.raises(ValueError, match="seed=1 vs 0"):
        loader.load_state_dict({"seed": 1, "batch_size": 2, "num_samples": 4, "position": 3})
