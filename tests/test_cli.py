import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from landscape.cli import commands, main
from landscape.foundation.runs import Run

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "mlp", "--model-kwargs", "widths=[8]", "--data", "teacher_student",
        "--data-kwargs", "train_size=64", "test_size=16", "input_dim=5", "num_classes=3",
        "--batch-size", "16", "--steps", "6it", "--eval-every", "3"]


def test_help_lists_every_command_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in commands():
        assert "\n" not in command.help
        line = next(l for l in out.splitlines() if l.strip().startswith(command.name + " "))
        assert command.help.split()[0] in line


@pytest.mark.parametrize("command", ["train", "analyze"])
def test_command_help_usage_names_the_command(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: landscape {command} [-h] ")


def test_python_m_landscape_is_the_landscape_command():
    done = subprocess.run([sys.executable, "-m", "landscape", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "list" in done.stdout


def test_train_runs_end_to_end_with_a_progress_bar(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "loss=" in captured.err and "acc=" in captured.err  # the progress bar's postfix
    assert f"run directory: {out}" in captured.out and "test accuracy" in captured.out
    config = json.loads((out / "config.json").read_text())
    assert config["hparams"]["model_kwargs"] == {"widths": [8]} and config["hparams"]["data_kwargs"]["num_classes"] == 3
    assert Run(out).checkpoint_steps() == [0, 6]
    assert {r["instrument"] for r in Run(out).metrics()} == {"train", "test"}
    assert main(["train", *TINY, "--out", str(out), "--no-progress"]) == 0  # finished: resumes at the end
    assert "resumed" in capsys.readouterr().out


def test_train_without_out_names_the_run_by_its_hyperparameters(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--no-progress", "--milestones", "2,4"]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("mlp_teacher_student_")
    assert json.loads((runs[0] / "config.json").read_text())["hparams"]["milestones"] == [2, 4]


def test_bad_arguments_exit_with_code_2_and_a_clear_message(tmp_path, capsys):
    assert main(["train", "--model", "vgg", "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'vgg'; known models:" in err and "cnn1d" in err and "Traceback" not in err
    assert main(["train", *TINY, "--model-kwargs", "widths", "--out", str(tmp_path / "b")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", *TINY, "--out", str(tmp_path / "c"), "--no-progress"]) == 0
    assert main(["train", *TINY, "--lr", "0.2", "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "holds a different run" in capsys.readouterr().err


def test_list_prints_models_and_data_sets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn1d", "lenet300", "resnet1d", "mnist1d", "digits", "teacher_student"):
        assert f"  {name} " in out


# --- one writer per directory, byte-for-byte reproduction, named errors instead of tracebacks (issue 15) ---

def landscape(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "landscape", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


KILL_AT_STEP_9 = """
import os, signal, sys
import landscape.cli

def kill(model, step, run):
    if step == 9:
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup of any kind, as a real kill

train = landscape.cli.train
landscape.cli.train = lambda *args, callbacks=(), **kwargs: train(*args, callbacks=[*callbacks, kill], **kwargs)
landscape.cli.main(sys.argv[1:])
"""


def test_two_train_processes_write_the_same_bytes_and_a_killed_and_resumed_one_too(tmp_path):
    args = [*TINY[:-2], "--steps", "12it", "--checkpoint-every", "4", "--optimizer", "adam", "--no-progress"]
    for name in ("a", "b"):
        assert landscape("train", *args, "--out", str(tmp_path / name)).returncode == 0
    killed = subprocess.run([sys.executable, "-c", KILL_AT_STEP_9, "train", *args, "--out", str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -signal.SIGKILL and Run(tmp_path / "c").checkpoint_steps() == [0, 4, 8]
    resumed = landscape("train", *args, "--out", str(tmp_path / "c"))
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    a = digests(tmp_path / "a")
    assert sorted(a) == ["checkpoints/step_0000" + f"{s:02d}.{kind}" for s in (0, 4, 8, 12)
                         for kind in ("safetensors", "state.safetensors")] + ["config.json", "metrics.jsonl"]
    assert digests(tmp_path / "b") == a
    assert digests(tmp_path / "c") == a


def test_a_second_train_on_a_directory_in_use_is_refused_naming_it_and_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from landscape.foundation.locking import "
                               "locked_directory\nwith locked_directory(sys.argv[1]):\n print('locked', flush=True); "
                               "time.sleep(60)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", *TINY, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"{out} is being written by another process (pid {holder.pid})" in err
        assert not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", *TINY, "--out", str(out), "--no-progress"]) == 0   # the killed holder blocks nothing


def write_config(run: Path, content: bytes) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_bytes(content)


BAD_CONFIGS = {
    "not UTF-8": (b'{"hparams": {"model": "\xe9"}}', "is not UTF-8"),
    "not JSON": (b'{"hparams": ', "is not valid JSON"),
    "a JSON list": (b"[1, 2]", "holds a JSON list where a JSON object was expected"),
    "hparams null": (b'{"hparams": null}', "has no 'hparams' object"),
    "wrong-typed field": (b'{"hparams": {"lr": "fast", "batch_size": "16"}}', "lr='fast' (expected a number)"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run, to copy."""
    out = tmp_path_factory.mktemp("trained") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["train", *TINY, "--out", str(out), "--no-progress"]) == 0
    torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_a_bad_config_json_is_a_named_error_in_train_analyze_and_load_model(tmp_path, capsys, trained, case):
    content, problem = BAD_CONFIGS[case]
    run = tmp_path / "run"
    write_config(run, content)
    assert main(["train", *TINY, "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(run / "config.json") in err and "Traceback" not in err
    good = shutil.copytree(trained, tmp_path / "good")   # a run with checkpoints, whose config.json is damaged
    write_config(good, content)
    assert main(["analyze", str(good), "--out", str(tmp_path / "analysis"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(good / "config.json") in err
    from landscape.foundation.runs import RunConfigError
    from landscape.training import load_model
    with pytest.raises(RunConfigError, match=re.escape(problem)):
        load_model(good)


def test_resuming_without_the_latest_training_state_names_the_file_and_the_fix(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--checkpoint-every", "3", "--out", str(out), "--no-progress"]) == 0
    state = out / "checkpoints" / "step_000006.state.safetensors"
    state.unlink()
    capsys.readouterr()
    assert main(["train", *TINY, "--checkpoint-every", "3", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {out} from step 6: its training-state file {state} is missing" in err
    assert f"restore it, or delete {out / 'checkpoints' / 'step_000006.safetensors'} to resume from step 3" in err


def test_an_out_that_is_a_file_or_under_one_is_a_named_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "file"), "--no-progress"]) == 2
    assert f"{tmp_path / 'file'} is an existing file, not a directory" in capsys.readouterr().err
    assert main(["train", *TINY, "--out", str(tmp_path / "file" / "run"), "--no-progress"]) == 2
    assert f"lies under {tmp_path / 'file'}, which is a file" in capsys.readouterr().err


@pytest.mark.parametrize("device, problem", [("bogus", "device 'bogus' is not a torch device name"),
                                             ("cuda:7", "device 'cuda:7'")])
def test_a_device_that_does_not_exist_is_a_named_error(tmp_path, capsys, device, problem):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert main(["train", *TINY, "--device", device, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err


@pytest.mark.parametrize("content, problem", [(b"[]", "holds a JSON list"), (b"\xff\xfe", "is not UTF-8")])
def test_a_leftover_analysis_json_that_is_no_analysis_is_a_named_error(tmp_path, capsys, trained, content, problem):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "analysis.json").write_bytes(content)
    assert main(["analyze", str(trained), "--out", str(tmp_path / "analysis"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(tmp_path / "analysis" / "analysis.json") in err
