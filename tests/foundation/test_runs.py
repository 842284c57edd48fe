import json
import math
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from landscape.foundation.locking import DirectoryLockedError, check_output_directory, locked_directory
from landscape.foundation.runs import (CheckpointError, FileFormatError, Run, atomic_write_bytes, cached_json,
                                       decode_state, encode_state, load_checkpoint, load_model_state, load_state,
                                       read_json, save_checkpoint, save_state, sidecar_path)

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
    from landscape.foundation.runs import cached_json
    calls = []

    def compute():
        calls.append(1)
        return {"value": 1.5, "list": [1, 2]}

    first = cached_json(tmp_path / "a" / "m.json", compute)
    second = cached_json(tmp_path / "a" / "m.json", compute)
    assert first == second == {"value": 1.5, "list": [1, 2]} and len(calls) == 1


# --- byte-for-byte checkpoints, the training-state format, permissions, locks (issue 15) ---

def test_safetensors_metadata_is_sorted_so_two_processes_write_the_same_bytes(tmp_path):
    code = ("import sys, torch; from landscape.foundation.runs import deterministic_safetensors as d; "
            "sys.stdout.buffer.write(d({'w': torch.arange(6.).reshape(2, 3), 'b': torch.ones(2, dtype=torch.int64)}, "
            "{k: str(i) for i, k in enumerate('hgfedcba')}))")
    blobs = {subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).stdout for _ in range(2)}
    assert len(blobs) == 1
    blob = blobs.pop()
    length = int.from_bytes(blob[:8], "little")
    assert list(json.loads(blob[8:8 + length])["__metadata__"]) == sorted("hgfedcba") and length % 8 == 0


def adam_state() -> dict:
    model = bn_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        optimizer.step()
    return {"optimizer": optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}, "lr": 0.1,
            "odd": {"nan": math.nan, "inf": -math.inf, "none": None, "flag": True, "pair": (1, 2.5),
                    "__tensor__": "a key that looks like a tag"}}


def assert_same_state(a, b, where="state"):
    assert type(a) is type(b), where
    if isinstance(a, Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert sorted(a, key=repr) == sorted(b, key=repr), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def test_training_state_round_trips_exactly_and_rewrites_to_the_same_bytes(tmp_path):
    state = adam_state()
    assert_same_state(decode_state(*encode_state(state)), state)
    first = save_state(tmp_path / "a.state.safetensors", state)
    loaded = load_state(first)
    assert_same_state(loaded, state)
    again = save_state(tmp_path / "b.state.safetensors", loaded)   # what a resumed run writes
    assert first.read_bytes() == again.read_bytes()
    restored = torch.optim.Adam(bn_model().parameters(), lr=0.1)
    restored.load_state_dict(loaded["optimizer"])


def test_training_state_refuses_objects_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match=r"state\.optimizer\.fn is a builtin_function"):
        save_state(tmp_path / "x.state.safetensors", {"optimizer": {"fn": len}})


def test_checkpoints_of_older_runs_with_a_torch_save_sidecar_still_load(tmp_path):
    path = save_checkpoint(tmp_path / "step_000002.safetensors", bn_model().state_dict(), step=2)
    torch.save({"step": 2, "loader": {"position": 2}}, tmp_path / "step_000002.state.pt")
    assert load_checkpoint(path).state == {"loader": {"position": 2}}


def test_every_file_gets_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        run = Run(tmp_path / "run")
        run.save_checkpoint(0, bn_model().state_dict(), {"lr": 0.1})
        run.log({"step": 0})
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert modes.pop("private.json") == 0o600
    assert set(modes.values()) == {0o644}, modes


def test_read_json_names_the_file_and_the_problem(tmp_path):
    (tmp_path / "latin1.json").write_bytes('{"a": "\xe9"}'.encode("latin-1"))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, problem in (("latin1.json", "not UTF-8"), ("broken.json", "not valid JSON"),
                          ("list.json", "holds a JSON list where a JSON object was expected")):
        with pytest.raises(FileFormatError, match=problem) as info:
            read_json(tmp_path / name, dict, fix="delete it")
        assert str(tmp_path / name) in str(info.value) and "delete it" in str(info.value)
    with pytest.raises(FileFormatError, match="delete it to measure again"):
        cached_json(tmp_path / "latin1.json", dict)


@pytest.mark.parametrize("config", [b"\xff\xfe not utf-8", b"{not json", b"[1, 2]"])
def test_unreadable_config_is_a_run_config_error_naming_the_file(tmp_path, config):
    from landscape.foundation.runs import RunConfigError
    run = Run(tmp_path)
    run.config_path.write_bytes(config)
    with pytest.raises(RunConfigError, match="config.json") as info:
        run.read_config()
    assert str(run.config_path) in str(info.value)


HOLD = ("import sys, time; from landscape.foundation.locking import locked_directory\n"
        "with locked_directory(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)")


def _holder(directory: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_directory_refuses_a_second_process_naming_it_and_the_holder(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        with pytest.raises(DirectoryLockedError) as info:
            with locked_directory(tmp_path / "run"):
                pass
        assert str(tmp_path / "run") in str(info.value) and f"pid {holder.pid}" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_does_not_block_and_its_temporaries_go(tmp_path):
    holder = _holder(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / ".lock").is_file()   # left behind by the kill
    half = tmp_path / "run" / "checkpoints" / ".step_000150.safetensors.abc123.tmp"
    half.parent.mkdir()
    half.write_bytes(b"half")
    figure = tmp_path / "run" / "figures" / ".tracking.png.tmp4242"
    figure.parent.mkdir()
    figure.write_bytes(b"half")
    other = tmp_path / "run" / "child"   # another writer's directory: its own lock cleans it
    other.mkdir()
    (other / ".lock").write_text("1\n")
    (other / ".x.tmp").write_bytes(b"")
    with locked_directory(tmp_path / "run"):
        assert not half.exists() and not figure.exists() and (other / ".x.tmp").exists()
        with locked_directory(tmp_path / "run"):   # re-entrant within a process
            pass
        assert (tmp_path / "run" / ".lock").read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / "run" / ".lock").exists()


def test_an_output_directory_that_is_a_file_or_under_one_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is an existing file"):
        check_output_directory(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=r"lies under .*file, which is a file"):
        with locked_directory(tmp_path / "file" / "run"):
            pass


def test_a_metrics_file_that_is_not_utf8_or_holds_no_records_is_named(tmp_path):
    run = Run(tmp_path)
    run.metrics_path.write_bytes(b'{"step": 0}\n\xff\n')
    with pytest.raises(FileFormatError, match="metrics.jsonl is not UTF-8 text"):
        run.metrics()
    run.metrics_path.write_text('[1, 2]\n{"step": 0}\n')
    with pytest.raises(FileFormatError, match="metrics.jsonl, line 1, holds a JSON list, not a record"):
        run.truncate_metrics(after_step=0)
