"""Label noise and random labels (landscape.data.label_noise) through load_dataset's data keywords."""
import numpy as np
import pytest
import torch

from landscape.data import load_dataset
from landscape.data.label_noise import corrupt_labels
from landscape.training import Hparams, init_model


@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.2, 1.0])
def test_label_noise_changes_exactly_round_p_n_training_labels_to_other_classes(fraction):
    clean = load_dataset("digits")
    noisy = load_dataset("digits", label_noise=fraction, label_seed=3)
    changed = noisy.train[1] != clean.train[1]
    n = clean.train[1].numel()
    assert int(changed.sum()) == round(fraction * n)
    assert torch.equal(noisy.train[0], clean.train[0])
    assert noisy.train[1].dtype == torch.int64 and 0 <= int(noisy.train[1].min()) <= int(noisy.train[1].max()) < 10


def test_test_split_is_untouched():
    clean = load_dataset("mnist1d")
    for noisy in (load_dataset("mnist1d", label_noise=0.3), load_dataset("mnist1d", random_labels=True)):
        assert torch.equal(noisy.test[0], clean.test[0]) and torch.equal(noisy.test[1], clean.test[1])


def test_noise_is_reproducible_and_depends_on_the_seed_only():
    a = load_dataset("digits", label_noise=0.2, label_seed=5).train[1].clone()
    direct = corrupt_labels(load_dataset("digits"), label_noise=0.2, label_seed=5).train[1]
    other = load_dataset("digits", label_noise=0.2, label_seed=6).train[1]
    assert torch.equal(a, direct)
    assert not torch.equal(a, other)
    state = torch.random.get_rng_state()
    corrupt_labels(load_dataset("digits"), label_noise=0.2, label_seed=7)
    assert torch.equal(state, torch.random.get_rng_state())


def test_new_labels_are_uniform_over_the_other_classes():
    clean = load_dataset("mnist1d").train[1]
    noisy = load_dataset("mnist1d", label_noise=1.0).train[1]
    offsets = ((noisy - clean) % 10).numpy()
    assert offsets.min() == 1
    counts = np.bincount(offsets, minlength=10)[1:]
    expected = clean.numel() / 9
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9   # chi-square, 8 degrees of freedom, p = 0.0005


def test_random_labels_are_uniform_draws_independent_of_the_true_labels():
    clean = load_dataset("mnist1d").train[1]
    random = load_dataset("mnist1d", random_labels=True, label_seed=1).train[1]
    n = clean.numel()
    agree = float((random == clean).float().mean())
    assert abs(agree - 0.1) < 4 * (0.1 * 0.9 / n) ** 0.5
    counts = np.bincount(random.numpy(), minlength=10)
    assert float(((counts - n / 10) ** 2 / (n / 10)).sum()) < 29.7   # chi-square, 9 d.o.f., p = 0.0005
    assert "random labels" in load_dataset("mnist1d", random_labels=True, label_seed=1).description


def test_invalid_values_fail_naming_the_keyword():
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="label_noise must be a fraction in"):
            load_dataset("digits", label_noise=bad)
    with pytest.raises(ValueError, match="random_labels must be true or false"):
        load_dataset("digits", random_labels="yes")
    with pytest.raises(ValueError, match="label_seed must be a non-negative integer"):
        load_dataset("digits", label_noise=0.1, label_seed=-1)
    with pytest.raises(ValueError, match="not both"):
        load_dataset("digits", label_noise=0.1, random_labels=True)
    with pytest.raises(ValueError, match="need class labels.*regression"):
        load_dataset("teacher_student", num_classes=None, train_size=20, test_size=5, label_noise=0.1)
    with pytest.raises(ValueError, match="need class labels.*token"):
        load_dataset("tokens", train_size=4, test_size=2, random_labels=True)
    with pytest.raises(TypeError, match="label_noise"):
        load_dataset("digits", label_nosie=0.1)


def test_label_noise_reaches_runs_through_data_kwargs():
    hparams = Hparams(model="mlp", model_kwargs={"widths": [4]}, data="digits",
                      data_kwargs={"label_noise": 0.2, "label_seed": 1})
    assert init_model(hparams)(load_dataset("digits").train[0][:2]).shape == (2, 10)
    assert hparams.digest != Hparams(model="mlp", model_kwargs={"widths": [4]}, data="digits").digest


def test_train_command_names_a_bad_label_noise(tmp_path, capsys):
    from landscape.cli import main

    code = main(["train", "--model", "mlp", "--model-kwargs", "widths=[4]", "--data", "digits", "--data-kwargs",
                 "label_noise=2", "--steps", "2it", "--out", str(tmp_path / "run")])
    assert code != 0
    assert "label_noise must be a fraction in [0, 1]" in capsys.readouterr().err


def test_list_command_names_the_label_keywords(capsys):
    from landscape.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(keyword in out for keyword in ("label_noise=P", "random_labels=true", "label_seed=N"))
