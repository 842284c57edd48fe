"""Edge cases of the ``landscape`` command: each bad input must end in a named refusal (exit 2, a message
naming the file or value and the fix), never a traceback. Each case runs ``python -m landscape`` once
(:func:`~audit.common.landscape_cli`), on a tiny teacher-student run made in-process.
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from audit.common import Case, copy_of_finished_run, finished_run, landscape_cli, scratch
from landscape.training import Hparams

TINY_ARGS = ("--model", "mlp", "--model-kwargs", "widths=[8]", "--data", "teacher_student", "--data-kwargs",
             "train_size=48", "test_size=16", "input_dim=6", "num_classes=3", "--batch-size", "16",
             "--steps", "8it", "--checkpoint-every", "4", "--no-progress")
TINY = Hparams(model="mlp", model_kwargs={"widths": [8]}, data="teacher_student",
               data_kwargs={"train_size": 48, "test_size": 16, "input_dim": 6, "num_classes": 3},
               batch_size=16, steps="8it", checkpoint_every=4)
BAD_CONFIGS = {   # config.json content, what the refusal must say
    "not UTF-8": (b'{"hparams": {"model": "\xe9"}}', "not UTF-8"),
    "not JSON": (b'{"hparams": ', "not valid JSON"),
    "a JSON list": (b"[1, 2]", "JSON list"),
    "hparams null": (b'{"hparams": null}', "no 'hparams' object"),
    "a wrong-typed field": (b'{"hparams": {"lr": "fast"}}', "lr='fast' (expected a number)"),
}


def train_with_config(content: bytes) -> Callable[[], str | None]:
    def run() -> str | None:
        out = scratch("config") / "run"
        out.mkdir()
        (out / "config.json").write_bytes(content)
        landscape_cli("train", *TINY_ARGS, "--out", str(out), cwd=out.parent)
        return "landscape train accepted a damaged config.json"
    return run


def analyze_with_config(content: bytes) -> Callable[[], str | None]:
    def run() -> str | None:
        path = copy_of_finished_run(TINY, "analyze-config")
        (path / "config.json").write_bytes(content)
        landscape_cli("analyze", str(path), "--out", str(path.parent / "analysis"), "--no-progress",
                      cwd=path.parent)
        return "landscape analyze accepted a damaged config.json"
    return run


def resume_without_training_state() -> str | None:
    path = copy_of_finished_run(TINY, "state")
    (path / "checkpoints" / "step_000008.state.safetensors").unlink()
    landscape_cli("train", *TINY_ARGS, "--out", str(path), cwd=path.parent)
    return "landscape train resumed without the optimizer state"


def out(kind: str) -> Callable[[], str | None]:
    def run() -> str | None:
        root = scratch("out")
        (root / "file").write_text("not a directory")
        target = root / "file" if kind == "file" else root / "file" / "run"
        landscape_cli("train", *TINY_ARGS, "--out", str(target), cwd=root)
        return f"landscape train wrote to {target}"
    return run


def train_on(device: str) -> Callable[[], str | None]:
    def run() -> str | None:
        root = scratch("device")
        landscape_cli("train", *TINY_ARGS, "--device", device, "--out", str(root / "run"), cwd=root)
        return f"landscape train ran on --device {device}"
    return run


def leftover_analysis(content: bytes) -> Callable[[], str | None]:
    def run() -> str | None:
        analysis = scratch("analysis")
        (analysis / "analysis.json").write_bytes(content)
        landscape_cli("analyze", str(finished_run(TINY)), "--out", str(analysis), "--no-progress",
                      "--samples", "8", cwd=analysis)
        return "landscape analyze wrote over a leftover analysis.json that is no analysis"
    return run


HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('locked', flush=True); time.sleep(120)")


def locked(command: str) -> Callable[[], str | None]:
    """``landscape train`` or ``analyze --out`` into a directory another process holds."""
    def run() -> str | None:
        target = scratch("locked") / "out"
        target.mkdir()
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target / ".lock")], stdout=subprocess.PIPE,
                                  text=True)
        holder.stdout.readline()
        try:
            if command == "train":
                landscape_cli("train", *TINY_ARGS, "--out", str(target), cwd=target.parent)
            else:
                landscape_cli("analyze", str(finished_run(TINY)), "--out", str(target), "--no-progress",
                              "--samples", "8", cwd=target.parent)
        finally:
            holder.kill()
            holder.wait()
        return f"landscape {command} wrote into a directory another process holds"
    return run


def plot_metrics_not_utf8() -> str | None:
    path = copy_of_finished_run(TINY, "plot")
    path.joinpath("metrics.jsonl").write_bytes(b'{"step": 0, "instrument": "\xff"}\n')
    landscape_cli("plot", str(path), cwd=path.parent)
    return "landscape plot drew a metrics file that is not UTF-8"


CASES = [
    *[Case(f"cli: train with a config.json that is {name}", train_with_config(content), ("config.json", problem))
      for name, (content, problem) in BAD_CONFIGS.items()],
    Case("cli: analyze a run whose config.json is a JSON list", analyze_with_config(b"[1, 2]"),
         ("config.json", "JSON list")),
    Case("cli: analyze a run whose config.json has hparams null", analyze_with_config(b'{"hparams": null}'),
         ("config.json", "no 'hparams' object")),
    Case("cli: train resumes a run whose latest training-state file is missing", resume_without_training_state,
         ("step_000008.state.safetensors", "missing", "delete")),
    Case("cli: train --out that is an existing file", out("file"), ("is an existing file",)),
    Case("cli: train --out under a file", out("under"), ("lies under", "which is a file")),
    Case("cli: train --device bogus", train_on("bogus"), ("'bogus'", "not a torch device name")),
    Case("cli: train --device cuda:7 without that device", train_on("cuda:7"), ("cuda:7",)),
    Case("cli: analyze --out with a leftover analysis.json that is a JSON list", leftover_analysis(b"[]"),
         ("analysis.json", "JSON list")),
    Case("cli: analyze --out with a leftover analysis.json that is not UTF-8", leftover_analysis(b"\xff\xfe"),
         ("analysis.json", "not UTF-8")),
    Case("cli: train --out into a directory another process is writing", locked("train"),
         ("being written by another process", "pid")),
    Case("cli: analyze --out into a directory another process is writing", locked("analyze"),
         ("being written by another process", "pid")),
    Case("cli: plot a run whose metrics.jsonl is not UTF-8", plot_metrics_not_utf8, ("metrics.jsonl", "UTF-8")),
]
