import json
import subprocess
import sys

import pytest

from landscape.cli import commands, main
from landscape.runs import Run

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
