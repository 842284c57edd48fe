import json
import os

import pytest
import torch
from torch import nn

from landscape.runs import (CheckpointError, Run, atomic_write_bytes, load_checkpoint, load_model_state,
                            save_checkpoint, sidecar_path)

pytestmark = pytest.mark.usefixtures("one_thread")


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def trained_state(model: nn.Module) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        optimizer.step()
    return {"optimizer": optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "loader": {"seed": 3, "position": 2}, "lr": 0.1}


def test_checkpoint_round_trip_restores_weights_buffers_and_training_state(tmp_path):
    model = bn_model()
    state = trained_state(model)
    path = save_checkpoint(tmp_path / "step_000002.safetensors", model.state_dict(), state, step=2)
    fresh = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    checkpoint = load_checkpoint(path, fresh)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert checkpoint.step == 2 and checkpoint.state["loader"] == {"seed": 3, "position": 2}
    assert torch.equal(checkpoint.state["rng"]["torch"], state["rng"]["torch"])
    restored = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(checkpoint.state["optimizer"])
    saved, loaded = state["optimizer"]["state"], restored.state_dict()["state"]
    assert len(saved) == len(loaded) == 6
    assert all(torch.equal(saved[i]["momentum_buffer"], loaded[i]["momentum_buffer"]) for i in saved)
    assert sidecar_path(path).name == "step_000002.state.safetensors"


def test_state_that_does_not_fit_names_missing_unexpected_and_misshaped_keys(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", bn_model().state_dict())
    other = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 3))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, other)
    message = str(info.value)
    assert "missing keys: 2.weight, 2.bias;" in message
    unexpected = message.split("unexpected keys: ")[1].split(";")[0].split(", ")
    assert sorted(unexpected) == ["1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"]
    assert "mis-shaped keys: 0.weight (saved (6, 4), model (5, 4))" in message


def test_corrupt_or_truncated_checkpoints_give_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", bn_model().state_dict(), {"lr": 0.1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    garbage = tmp_path / "b.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.safetensors")


class Payload:
    """A pickled object other than tensors: torch.load(weights_only=True) must refuse it."""


def test_pt_files_load_weights_only_and_refuse_pickled_code(tmp_path):
    model = bn_model()
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, wrapped)
    assert torch.equal(load_checkpoint(wrapped).model["0.weight"], model.state_dict()["0.weight"])
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": model.state_dict(), "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(evil)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(CheckpointError, match="no state dict"):
        load_checkpoint(empty)


def test_load_model_state_accepts_an_exact_fit():
    source, target = bn_model(), nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    load_model_state(target, source.state_dict())
    assert torch.equal(target[3].weight, source[3].weight)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    atomic_write_bytes(path, b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left behind


def test_run_lists_checkpoints_and_names_the_available_steps(tmp_path):
    run = Run(tmp_path / "run")
    assert run.checkpoint_steps() == [] and run.latest_step() is None and run.read_config() is None
    state = bn_model().state_dict()
    for step in (10, 0, 200):
        run.save_checkpoint(step, state, {"lr": 0.1})
    (run.checkpoints_dir / ".step_000300.safetensors.123.tmp").write_bytes(b"half")  # a crashed write
    assert run.checkpoint_steps() == [0, 10, 200] and run.latest_step() == 200
    assert run.checkpoint_path(10).name == "step_000010.safetensors"
    assert run.load_checkpoint().step == 200
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 5; it has steps \[0, 10, 200\]"):
        run.load_checkpoint(5)


def test_metrics_append_filter_and_truncate_after_a_step(tmp_path):
    run = Run(tmp_path)
    for step in (0, 5, 10):
        run.log({"step": step, "instrument": "train", "loss": 1.0 / (step + 1)})
        run.log({"step": step, "instrument": "test", "loss": 2.0})
    run.log({"instrument": "note", "text": "no step"})
    assert [r["step"] for r in run.metrics("train")] == [0, 5, 10]
    run.truncate_metrics(after_step=5)
    assert [(r.get("step"), r["instrument"]) for r in run.metrics()] == [
        (0, "train"), (0, "test"), (5, "train"), (5, "test"), (None, "note")]


def test_metrics_skip_a_last_line_cut_short_but_reject_corruption_inside(tmp_path):
    run = Run(tmp_path)
    run.log({"step": 0, "instrument": "train"})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 1, "instr')
    assert run.metrics() == [{"step": 0, "instrument": "train"}]
    run.metrics_path.write_text('{"step": 0}\n{broken\n{"step": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        run.metrics()


def test_config_round_trip_is_json(tmp_path):
    run = Run(tmp_path / "r")
    run.write_config({"hparams": {"lr": 0.1}, "name": "x"})
    assert run.read_config() == {"hparams": {"lr": 0.1}, "name": "x"}
    assert json.loads(run.config_path.read_text())["name"] == "x"


def test_cached_json_computes_once_and_reads_back(tmp_path):
    from landscape.runs import cached_json
    calls = []

    def compute():
        calls.append(1)
        return {"value": 1.5, "list": [1, 2]}

    first = cached_json(tmp_path / "a" / "m.json", compute)
    second = cached_json(tmp_path / "a" / "m.json", compute)
    assert first == second == {"value": 1.5, "list": [1, 2]} and len(calls) == 1
