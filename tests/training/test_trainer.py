import dataclasses
import math
import random
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from landscape.foundation.runs import CheckpointError, Run, RunConfigError
from landscape.models import registry as models
from landscape.training import Hparams, Start, at_steps, init_model, load_model, train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(model="mlp", model_kwargs={"widths": [8]}, data="teacher_student",
            data_kwargs={"train_size": 96, "test_size": 32, "input_dim": 6, "num_classes": 3},
            batch_size=16, steps="20it", eval_every=5, checkpoint_every=0)  # 6 batches per epoch


def tiny(**changes) -> Hparams:
    return Hparams(**(TINY | changes))


def run(hparams: Hparams, path, **kwargs):
    return train(hparams, path, progress=False, **kwargs)


def assert_equal(a, b, where="state"):
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def dropout_model():
    """A registry model that draws random numbers while training, to exercise the RNG state."""
    @models.register_model("test_dropout_mlp")
    def factory(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(16, num_classes))

    yield "test_dropout_mlp"
    models._MODELS.unregister("test_dropout_mlp")


def test_same_hparams_give_bit_identical_weights_and_metrics(tmp_path, dropout_model):
    hp = tiny(model=dropout_model, model_kwargs={})
    a, b = run(hp, tmp_path / "a"), run(hp, tmp_path / "b")
    assert_equal(a.model.state_dict(), b.model.state_dict())
    assert a.run.metrics() == b.run.metrics()
    other = run(tiny(model=dropout_model, model_kwargs={}, init_seed=1), tmp_path / "c")
    assert differs(a.model.state_dict(), other.model.state_dict())


@pytest.mark.parametrize("changes", [
    {},  # SGD with momentum
    {"model": "cnn1d", "model_kwargs": {"channels": 4, "batchnorm": True}, "optimizer": "adam", "lr": 0.01},
    {"model": "test_dropout_mlp", "model_kwargs": {}, "warmup_steps": 4, "milestones": (9,)},
], ids=["sgd", "batchnorm-adam", "dropout-schedule"])
def test_resume_from_any_checkpoint_is_bit_identical_to_the_uninterrupted_run(tmp_path, dropout_model, changes):
    hp = tiny(checkpoint_steps=(0, 7, 13), **changes)
    full = run(hp, tmp_path / "full")
    final = Run(tmp_path / "full").load_checkpoint(20)
    for k in (0, 7, 13):
        copy = tmp_path / f"from{k}"
        shutil.copytree(tmp_path / "full", copy)
        for step in Run(copy).checkpoint_steps():
            if step > k:  # as if the run had stopped right after checkpoint k
                Run(copy).checkpoint_path(step).unlink()
        resumed = run(hp, copy)
        assert resumed.resumed and resumed.first_step == k
        assert_equal(full.model.state_dict(), resumed.model.state_dict(), f"weights resumed from {k}")
        again = Run(copy).load_checkpoint(20)
        assert_equal(final.state["optimizer"], again.state["optimizer"], f"optimizer resumed from {k}")
        assert_equal(final.state["rng"], again.state["rng"], f"rng resumed from {k}")
        assert full.run.metrics() == resumed.run.metrics()


def test_interrupted_run_resumes_automatically_calling_each_step_once(tmp_path):
    hp = tiny(checkpoint_every=5)
    reference = run(hp, tmp_path / "ref")

    def crash(model, step, run_):
        if step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(hp, tmp_path / "run", callbacks=[crash])
    assert Run(tmp_path / "run").latest_step() == 10
    seen = []
    resumed = run(hp, tmp_path / "run", callbacks=[lambda model, step, run_: seen.append(step)])
    assert resumed.resumed and resumed.first_step == 10 and seen == list(range(11, 21))
    assert_equal(reference.model.state_dict(), resumed.model.state_dict())
    assert reference.run.metrics() == resumed.run.metrics()
    done = run(hp, tmp_path / "run")  # a finished run: nothing left to do
    assert done.resumed and done.first_step == 20 and done.test == resumed.test


def test_checkpoints_added_to_a_finished_run_are_replayed_bit_identically(tmp_path):
    first = run(tiny(), tmp_path)
    metrics = first.run.metrics()
    again = run(tiny(checkpoint_steps=(0, 8, 13)), tmp_path)
    assert again.resumed and again.first_step == 0
    assert Run(tmp_path).checkpoint_steps() == [0, 8, 13, 20]
    assert_equal(first.model.state_dict(), again.model.state_dict())
    assert again.run.metrics() == metrics
    reference = run(tiny(checkpoint_steps=(0, 8, 13)), tmp_path / "reference")
    assert_equal(reference.run.load_checkpoint(8).model, Run(tmp_path).load_checkpoint(8).model)


def test_a_different_configuration_in_the_run_directory_is_a_clear_error(tmp_path):
    run(tiny(), tmp_path)
    with pytest.raises(RunConfigError, match="lr: 0.05 in the run, 0.1 asked"):
        run(tiny(lr=0.1), tmp_path)
    with pytest.raises(RunConfigError, match="masks"):
        run(tiny(), tmp_path, masks={"head.weight": torch.ones(3, 8)})
    assert run(tiny(eval_every=10, checkpoint_every=3), tmp_path).resumed  # bookkeeping fields may change


def test_resuming_with_another_thread_count_warns_that_bit_identity_is_lost(tmp_path):
    run(tiny(checkpoint_steps=(0, 7)), tmp_path)
    Run(tmp_path).checkpoint_path(20).unlink()
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    with pytest.warns(UserWarning, match="threads 1 -> 2"):
        run(tiny(checkpoint_steps=(0, 7)), tmp_path)


def test_a_corrupt_checkpoint_or_a_directory_without_config_is_refused(tmp_path):
    run(tiny(), tmp_path / "a")
    path = Run(tmp_path / "a").checkpoint_path(20)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        run(tiny(), tmp_path / "a")
    (tmp_path / "a" / "config.json").unlink()
    with pytest.raises(RunConfigError, match="no config.json"):
        run(tiny(), tmp_path / "a")


def test_data_order_seed_changes_the_batches_but_not_the_initialisation(tmp_path):
    base = run(tiny(), tmp_path / "a")
    reordered = run(tiny(data_order_seed=1), tmp_path / "b")
    reinit = run(tiny(init_seed=1), tmp_path / "c")
    init = [Run(r.run.path).load_checkpoint(0).model for r in (base, reordered, reinit)]
    assert_equal(init[0], init[1])
    assert differs(init[0], init[2])
    assert differs(base.model.state_dict(), reordered.model.state_dict())


def test_spawned_copies_with_equal_data_order_seeds_end_identical(tmp_path, dropout_model):
    hp = tiny(model=dropout_model, model_kwargs={}, checkpoint_steps=(0, 8))
    run(hp, tmp_path / "parent")
    spawn = Start.spawn(tmp_path / "parent", 8)
    one = run(tiny(model=dropout_model, model_kwargs={}, data_order_seed=5), tmp_path / "one", start=spawn)
    two = run(tiny(model=dropout_model, model_kwargs={}, data_order_seed=5), tmp_path / "two", start=spawn)
    other = run(tiny(model=dropout_model, model_kwargs={}, data_order_seed=6), tmp_path / "other", start=spawn)
    assert_equal(one.model.state_dict(), two.model.state_dict())
    assert differs(one.model.state_dict(), other.model.state_dict())
    assert one.first_step == 8 and Run(tmp_path / "one").checkpoint_steps() == [8, 20]
    assert Run(tmp_path / "one").read_config()["start"]["optimizer"] is True


def test_spawning_with_the_parents_seed_continues_the_parent_exactly(tmp_path):
    hp = tiny(checkpoint_steps=(0, 8), milestones=(12,))
    parent = run(hp, tmp_path / "parent")
    child = run(hp, tmp_path / "child", start=Start.spawn(tmp_path / "parent", 8))
    assert_equal(parent.model.state_dict(), child.model.state_dict())
    assert parent.run.metrics()[-4:] == child.run.metrics()[-4:]


def test_rewinding_restores_the_state_with_a_fresh_optimizer_and_the_schedule_continued(tmp_path):
    bn = {"model": "cnn1d", "model_kwargs": {"channels": 4, "batchnorm": True}, "milestones": (12,)}
    parent = run(tiny(checkpoint_steps=(0, 6), **bn), tmp_path / "parent")
    saved = Run(tmp_path / "parent").load_checkpoint(6)
    rewound = run(tiny(**bn), tmp_path / "rewound", start=Start.rewind(tmp_path / "parent", 6))
    start = Run(tmp_path / "rewound").load_checkpoint(6)
    assert_equal(saved.model, start.model)  # BatchNorm running statistics included
    assert start.state["optimizer"]["state"] == {} and start.state["loader"]["position"] == 6
    assert saved.state["optimizer"]["state"] != {}
    assert differs(parent.model.state_dict(), rewound.model.state_dict())  # momentum restarted from zero
    # without momentum the optimizer is stateless: rewinding must then continue the parent exactly,
    # which holds only if the learning-rate schedule and the batch stream continue from step 6
    plain = tiny(momentum=0.0, checkpoint_steps=(0, 6), **bn)
    parent = run(plain, tmp_path / "plain")
    model = load_model(tmp_path / "plain", 6)
    for source in (tmp_path / "plain", model):
        child = run(plain, tmp_path / f"child{type(source).__name__}", start=Start.rewind(source, 6))
        assert_equal(parent.model.state_dict(), child.model.state_dict())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masked_weights_stay_exactly_zero_and_get_no_optimizer_state(tmp_path, optimizer):
    hp = tiny(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01, weight_decay=0.01,
              checkpoint_steps=(0, 5, 10))
    init = init_model(hp)
    g = torch.Generator().manual_seed(0)
    masks = {name: (torch.rand(init.state_dict()[name].shape, generator=g) > 0.5).float()
             for name in ("features.1.weight", "head.weight")}
    result = run(hp, tmp_path, masks=masks)
    r = Run(tmp_path)
    for step in r.checkpoint_steps():
        checkpoint = r.load_checkpoint(step)
        for name, mask in masks.items():
            assert torch.all(checkpoint.model[name][mask == 0] == 0), (step, name)
        names = [n for n, _ in init.named_parameters()]
        for index, slots in checkpoint.state["optimizer"]["state"].items():
            if names[index] in masks:
                for slot in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
                    if slot in slots:
                        assert torch.all(slots[slot][masks[names[index]] == 0] == 0), (step, slot)
    final = dict(result.model.named_parameters())
    for name, mask in masks.items():
        assert torch.all(final[name][mask == 0] == 0)
        assert torch.all(final[name][mask == 1] != dict(init.named_parameters())[name][mask == 1])
    assert r.read_config()["masks"]["density"] == pytest.approx(
        float(sum(m.sum() for m in masks.values()) / sum(m.numel() for m in masks.values())))
    assert (tmp_path / "masks.safetensors").is_file()


def test_bad_masks_are_rejected_by_name_shape_and_values(tmp_path):
    with pytest.raises(KeyError, match="unknown parameter 'nope'"):
        run(tiny(), tmp_path / "a", masks={"nope": torch.ones(3)})
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        run(tiny(), tmp_path / "b", masks={"head.weight": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="other than 0 and 1"):
        run(tiny(), tmp_path / "c", masks={"head.weight": torch.full((3, 8), 0.5)})


def test_callbacks_run_at_chosen_steps_with_model_step_and_run(tmp_path):
    calls = []

    def record(model, step, run_):
        calls.append((step, isinstance(model, nn.Module), run_.path))

    every = []
    run(tiny(), tmp_path, callbacks=[at_steps([0, 7, 20], record),
                                     at_steps(10, lambda model, step, run_: every.append(step))])
    assert calls == [(0, True, tmp_path), (7, True, tmp_path), (20, True, tmp_path)]
    assert every == [0, 10, 20]


def test_train_and_test_loss_and_accuracy_are_logged_at_evaluation_steps(tmp_path):
    result = run(tiny(), tmp_path)
    for split in ("train", "test"):
        records = Run(tmp_path).metrics(split)
        assert [r["step"] for r in records] == [0, 5, 10, 15, 20]
        assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in records)
    assert Run(tmp_path).metrics("test")[-1]["accuracy"] == result.test.accuracy
    assert Run(tmp_path).metrics("train")[-1]["samples"] == 96


def test_length_in_epochs_counts_full_batches(tmp_path):
    result = run(tiny(steps="2ep"), tmp_path)
    assert result.steps == 12 and Run(tmp_path).latest_step() == 12


def test_training_leaves_the_callers_random_states_untouched(tmp_path, dropout_model):
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    expected = (random.random(), np.random.rand(), torch.rand(2).tolist())
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    run(tiny(model=dropout_model, model_kwargs={}), tmp_path)
    assert (random.random(), np.random.rand(), torch.rand(2).tolist()) == expected


def test_float64_runs_train_and_checkpoint_in_float64(tmp_path):
    result = run(tiny(dtype="float64"), tmp_path)
    assert all(p.dtype == torch.float64 for p in result.model.parameters())
    assert Run(tmp_path).load_checkpoint(20).model["head.weight"].dtype == torch.float64


def test_a_diverging_loss_stops_with_a_clear_error(tmp_path):
    regression = {"data_kwargs": {"train_size": 96, "test_size": 32, "num_classes": None}, "lr": 1e8}
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        run(tiny(**regression), tmp_path)


def test_too_large_batches_and_bad_starts_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="batch_size must be between 1 and the number of samples"):
        run(tiny(batch_size=500), tmp_path / "a")
    with pytest.raises(ValueError, match="beyond the run's 20 steps"):
        run(tiny(), tmp_path / "b", start=Start.rewind(init_model(tiny()), 30))
    with pytest.raises(ValueError, match="beyond the run's 20 steps"):
        run(tiny(checkpoint_steps=(0, 50)), tmp_path / "c")


def test_load_model_returns_the_checkpointed_model(tmp_path):
    result = run(tiny(), tmp_path)
    assert_equal(load_model(tmp_path).state_dict(), result.model.state_dict())
    assert_equal(load_model(tmp_path, 0).state_dict(), init_model(tiny()).state_dict())


def test_hparams_validate_their_fields():
    for bad, match in [({"optimizer": "rmsprop"}, "optimizer must be one of"), ({"steps": "10 epochs"}, "3000it"),
                       ({"momentum": 1.0}, "momentum"), ({"milestones": (5, 3)}, "milestones"),
                       ({"dtype": "float16"}, "dtype"), ({"model_kwargs": {"f": object()}}, "JSON")]:
        with pytest.raises((ValueError, TypeError), match=match):
            Hparams(**bad)
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['learning_rate'\]"):
        Hparams.from_dict({"learning_rate": 0.1})


def test_hparams_identity_ignores_bookkeeping_and_round_trips():
    hp = tiny()
    assert hp.key == tiny(eval_every=1, checkpoint_steps=(0, 3), checkpoint_every=7).key
    assert hp.digest != tiny(lr=0.1).digest and hp.digest != tiny(data_order_seed=1).digest
    assert hp.name == f"mlp_teacher_student_{hp.digest}" and len(hp.digest) == 10
    assert Hparams.from_dict(hp.to_dict()) == hp and hash(Hparams.from_dict(hp.to_dict())) == hash(hp)
    assert all(f.metadata["help"] for f in dataclasses.fields(Hparams))


def test_learning_rate_schedule_warms_up_then_steps_at_milestones():
    hp = Hparams(lr=1.0, warmup_steps=4, milestones=(10, 20), gamma=0.5)
    assert [hp.lr_at(s) for s in (0, 1, 3, 4, 9, 10, 19, 20)] == [0.25, 0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert hp.total_steps(40) == 3000 and Hparams(steps="10ep").total_steps(40) == 400


def test_training_reads_the_loss_on_the_host_once_per_interval_not_per_step(tmp_path, host_syncs):
    quiet = dict(eval_every=0, checkpoint_every=0)
    run(tiny(steps="10it", **quiet), tmp_path / "a")
    short = host_syncs.count
    host_syncs.count = 0
    run(tiny(steps="49it", **quiet), tmp_path / "b")
    assert host_syncs.count - short <= 2, f"{host_syncs.count - short} more host reads for 39 more steps"


def test_a_loss_that_diverges_between_checks_names_its_first_step(tmp_path):
    regression = {"data_kwargs": {"train_size": 96, "test_size": 32, "num_classes": None}, "lr": 1e8}
    with pytest.raises(FloatingPointError, match=r"training loss is (nan|inf) at step \d+ .*lower the learning rate"):
        run(tiny(eval_every=0, steps="120it", **regression), tmp_path)
