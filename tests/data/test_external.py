"""Data from outside the registry (torch Datasets, image folders, torchvision) and the offline synthetic sets."""
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.data import load_dataset
from landscape.data.external import image_folder, tensors_from_dataset


def test_synthetic_cifar_is_cifar_shaped_balanced_deterministic_and_leaves_the_rng_alone():
    state = torch.random.get_rng_state()
    data = load_dataset("synthetic_cifar", train_size=64, test_size=20)
    assert torch.equal(torch.random.get_rng_state(), state)
    x, y = data.train
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and data.input_shape == (3, 32, 32)
    assert torch.bincount(y, minlength=10).tolist() == [7, 7, 7, 7, 6, 6, 6, 6, 6, 6]
    again = load_dataset("synthetic_cifar", train_size=64, test_size=20, seed=0, noise=1.0)
    assert torch.equal(again.train[0], x)


def test_synthetic_cifar_classes_are_separable_by_their_templates():
    x, y = load_dataset("synthetic_cifar", train_size=200, test_size=10, noise=1.0).train
    means = torch.stack([x[y == c].mean(0) for c in range(10)]).reshape(10, -1)
    nearest = torch.cdist(x.reshape(len(x), -1), means).argmin(1)
    assert (nearest == y).float().mean() > 0.9


def test_tokens_follow_their_markov_chain_with_few_successors():
    data = load_dataset("tokens", train_size=200, test_size=10, seq_len=16, vocab_size=12, successors=3)
    ids, labels = data.train
    assert torch.equal(ids, labels) and ids.dtype == torch.int64 and int(ids.max()) < 12
    pairs = {(int(a), int(b)) for row in ids for a, b in zip(row[:-1], row[1:])}
    successors = [len({b for a, b in pairs if a == t}) for t in range(12)]
    assert max(successors) <= 3


class Squares(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 2), i, dtype=np.float32), i % 2


def test_a_torch_dataset_becomes_stacked_tensors_in_index_order():
    x, y = tensors_from_dataset(Squares())
    assert x.shape == (5, 2, 2) and x.dtype == torch.float32 and torch.equal(x[:, 0, 0], torch.arange(5.0))
    assert y.tolist() == [0, 1, 0, 1, 0] and y.dtype == torch.int64
    assert tensors_from_dataset(Squares(), samples=2)[0].shape == (2, 2, 2)
    with pytest.raises(TypeError, match="map-style"):
        tensors_from_dataset(iter([]))


def _write_images(folder, classes, per_class, size=(6, 6), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (*size, 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(folder / c / f"{i}.png")


def test_image_folder_reads_class_folders_and_splits_each_class(tmp_path):
    _write_images(tmp_path, ["cat", "dog", "eel"], 5)
    data = image_folder(tmp_path, test_fraction=0.2)
    assert data.num_classes == 3 and data.input_shape == (3, 6, 6)
    assert torch.bincount(data.test[1]).tolist() == [1, 1, 1] and torch.bincount(data.train[1]).tolist() == [4, 4, 4]
    assert 0.0 <= float(data.train[0].min()) and float(data.train[0].max()) <= 1.0
    pixel = np.asarray(Image.open(tmp_path / "cat" / "0.png"), dtype=np.float32) / 255
    assert any(torch.allclose(x, torch.from_numpy(pixel).permute(2, 0, 1)) for x in data.train[0])


def test_image_folder_uses_train_and_test_folders_and_resizes_greyscale(tmp_path):
    _write_images(tmp_path / "train", ["a", "b"], 3, size=(5, 7), mode="L")
    _write_images(tmp_path / "test", ["a", "b"], 1, size=(8, 8), mode="L")
    data = load_dataset("imagefolder", root=str(tmp_path), size=4)
    assert data.train[0].shape == (6, 1, 4, 4) and data.test[0].shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="different sizes"):
        image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="class folders"):
        image_folder(tmp_path / "train" / "a")


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_data_are_named_when_torchvision_cannot_be_imported(tmp_path):
    with pytest.raises(ImportError, match="torchvision:CIFAR10.*imagefolder"):
        load_dataset("torchvision:CIFAR10", root=str(tmp_path))


def test_torchvision_data_sets_are_read_from_their_root_without_download(tmp_path, monkeypatch):
    """torchvision cannot be imported here: a stand-in module with torchvision's interface (a data set class taking
    root, train, download, transform; ToTensor) checks the glue: both splits, download=False, classes, shapes."""
    import sys
    import types

    calls = []

    class Stripes(torch.utils.data.Dataset):
        classes = ["even", "odd"]

        def __init__(self, root, train, download, transform):
            calls.append((root, train, download))
            self.n, self.transform = (6 if train else 2), transform

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.transform(Image.fromarray(np.full((4, 4, 3), 10 * i, dtype=np.uint8))), i % 2

    def to_tensor():
        return lambda image: torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(Stripes=Stripes)
    fake.transforms = types.SimpleNamespace(ToTensor=to_tensor)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    monkeypatch.setitem(sys.modules, "torchvision.transforms", fake.transforms)
    data = load_dataset("torchvision:Stripes", root=str(tmp_path))
    assert calls == [(str(tmp_path), True, False), (str(tmp_path), False, False)]
    assert data.train[0].shape == (6, 3, 4, 4) and data.test[0].shape == (2, 3, 4, 4) and data.num_classes == 2
    assert data.train[1].tolist() == [0, 1, 0, 1, 0, 1]
    assert float(data.train[0][5, 0, 0, 0]) == pytest.approx(50 / 255)
    with pytest.raises(ValueError, match="root=PATH"):
        load_dataset("torchvision:Stripes")
    with pytest.raises(ValueError, match="no data set 'Nope'"):
        load_dataset("torchvision:Nope", root=str(tmp_path))
