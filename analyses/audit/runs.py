"""Edge cases of run directories, checkpoints and training (``landscape.foundation.runs``,
``landscape.foundation.locking``, ``landscape.training``): a resumed run (tracked or not) must write exactly the bytes
and records of an uninterrupted one, one writer per directory, a killed writer's leftovers cleaned, every file with the
umask's permissions, and unreadable files, absent devices and bad output directories refused by name.

The runs are tiny (a 6-8-3 MLP on 48 teacher-student samples, float64), a few seconds each.
"""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from audit.common import Case, copy_of_finished_run, finished_run, scratch
from landscape.analysis.analyze import AnalyzeSettings, analyze
from landscape.foundation.runs import Run
from landscape.training import Hparams, load_model, train
from landscape.training.tracker import Tracker, TrackerSettings

TINY = Hparams(model="mlp", model_kwargs={"widths": [8]}, data="teacher_student",
               data_kwargs={"train_size": 48, "test_size": 16, "input_dim": 6, "num_classes": 3},
               batch_size=16, steps="12it", eval_every=3, checkpoint_every=4, optimizer="adam", dtype="float64")
BAD_CONFIGS = {   # config.json content, what the refusal must say
    "not UTF-8": (b'{"hparams": {"model": "\xe9"}}', "not UTF-8"),
    "not JSON": (b'{"hparams": ', "not valid JSON"),
    "a JSON list": (b"[1, 2]", "JSON list"),
    "hparams null": (b'{"hparams": null}', "no 'hparams' object"),
    "a wrong-typed field": (b'{"hparams": {"lr": "fast"}}', "lr='fast' (expected a number)"),
}


class Interrupt(Exception):
    """Stands for a kill: raised by a callback after a checkpoint."""


def interrupt_at(step: int) -> Callable:
    def callback(model, s, run):
        if s == step:
            raise Interrupt
    return callback


def digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def same_bytes_after_a_resume() -> str | None:
    """Two runs, and a run interrupted after its step-8 checkpoint and resumed: every file byte for byte."""
    root = scratch("bytes")
    for name in ("a", "b"):
        train(TINY, root / name, progress=False, device="cpu")
    try:
        train(TINY, root / "c", callbacks=[interrupt_at(10)], progress=False, device="cpu")
    except Interrupt:
        pass
    train(TINY, root / "c", progress=False, device="cpu")
    a = digests(root / "a")
    differ = sorted({k for other in ("b", "c") for k, v in digests(root / other).items() if a.get(k) != v})
    return f"files differ: {differ}" if differ else None


def tracked_resume_records_exactly() -> str | None:
    """A tracked float64 run interrupted after its step-8 checkpoint and resumed records the uninterrupted
    run's eigenvalues, residuals, traces and matvec counts bit for bit (the warm starts are restored)."""
    root = scratch("tracked")
    settings = TrackerSettings(top_k=2, trace_matvecs=4)

    def tracker() -> Tracker:
        return Tracker.for_hparams(TINY, samples=24, instruments=("top_eigen", "trace"), schedule=4,
                                   settings=settings)

    def records(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in Run(path).metrics()
                if r["instrument"] in ("top_eigen", "trace")]

    train(TINY, root / "whole", callbacks=[tracker()], progress=False, device="cpu")
    try:
        train(TINY, root / "cut", callbacks=[tracker(), interrupt_at(10)], progress=False, device="cpu")
    except Interrupt:
        pass
    train(TINY, root / "cut", callbacks=[tracker()], progress=False, device="cpu")
    whole, cut = records(root / "whole"), records(root / "cut")
    wrong = [f"step {w['step']} {w['instrument']}: {c} != {w}" for w, c in zip(whole, cut) if w != c]
    if len(whole) != len(cut) or wrong:
        return f"{len(cut)} records against {len(whole)}; " + "; ".join(wrong[:2])
    return None


def bad_config_in_load_model(content: bytes) -> Callable[[], str | None]:
    def run() -> str | None:
        path = copy_of_finished_run(TINY, "config")
        (path / "config.json").write_bytes(content)
        load_model(path)
        return "load_model accepted a damaged config.json"
    return run


def resume_without_training_state() -> str | None:
    path = copy_of_finished_run(TINY, "state")
    (path / "checkpoints" / "step_000012.state.safetensors").unlink()
    train(TINY, path, progress=False, device="cpu")
    return "resumed without the optimizer state"


def out_is_a_file() -> str | None:
    path = scratch("file") / "out"
    path.write_text("not a directory")
    train(TINY, path, progress=False, device="cpu")
    return "trained into an existing file"


def out_under_a_file() -> str | None:
    path = scratch("under") / "file"
    path.write_text("not a directory")
    train(TINY, path / "run", progress=False, device="cpu")
    return "trained under an existing file"


def device(spec: str) -> Callable[[], str | None]:
    def run() -> str | None:
        train(TINY, scratch("device") / "run", progress=False, device=spec)
        return f"trained on device {spec!r}"
    return run


def leftover_analysis(content: bytes) -> Callable[[], str | None]:
    def run() -> str | None:
        out = scratch("analysis")
        (out / "analysis.json").write_bytes(content)
        analyze(finished_run(TINY), out_dir=out, settings=AnalyzeSettings(samples=8), progress=False, device="cpu")
        return "analysed over a leftover analysis.json that is no analysis"
    return run


HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('locked', flush=True); time.sleep(60)")


def holder_of(directory: Path) -> subprocess.Popen:
    """Another process holding ``directory``'s lock (as a training process does)."""
    directory.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory / ".lock")], stdout=subprocess.PIPE,
                              text=True)
    holder.stdout.readline()
    return holder


def second_writer_refused() -> str | None:
    path = scratch("lock") / "run"
    holder = holder_of(path)
    try:
        train(TINY, path, progress=False, device="cpu")
    finally:
        holder.kill()
        holder.wait()
    return "a second process trained into a directory in use"


def second_writer_refusal_names_pid() -> str | None:
    path = scratch("pid") / "run"
    holder = holder_of(path)
    try:
        train(TINY, path, progress=False, device="cpu")
    except OSError as e:
        return None if f"pid {holder.pid}" in str(e) and str(path) in str(e) else f"refusal names no pid: {e}"
    finally:
        holder.kill()
        holder.wait()
    return "a second process trained into a directory in use"


def killed_holder_does_not_block() -> str | None:
    path = scratch("killed") / "run"
    holder = holder_of(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    half = path / "checkpoints" / ".step_000150.safetensors.k2j4.tmp"
    half.parent.mkdir()
    half.write_bytes(b"half a checkpoint")
    train(TINY, path, progress=False, device="cpu")
    if half.exists():
        return f"{half.name} left behind after the next run opened the directory"
    if (path / ".lock").exists():
        return "the lock file stays after a clean exit"
    return None


def permissions_follow_the_umask() -> str | None:
    path = scratch("modes") / "run"
    previous = os.umask(0o022)
    try:
        train(TINY, path, progress=False, device="cpu")
    finally:
        os.umask(previous)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in path.rglob("*") if p.is_file()}
    other = {name: mode for name, mode in modes.items() if mode != oct(0o644)}
    return f"files not 0644 under umask 022: {other}" if other else None


def metrics_not_utf8() -> str | None:
    path = copy_of_finished_run(TINY, "metrics")
    path.joinpath("metrics.jsonl").write_bytes(b'{"step": 0, "instrument": "\xff"}\n')
    Run(path).metrics()
    return "read a metrics file that is not UTF-8"


CASES = [
    Case("runs: two trainings and an interrupted+resumed one write the same bytes (checkpoints, state, "
         "config, metrics)", same_bytes_after_a_resume),
    Case("runs: a tracked run resumed after a kill records bit for bit what an uninterrupted one records",
         tracked_resume_records_exactly),
    *[Case(f"runs: load_model with a config.json that is {name}", bad_config_in_load_model(content),
           ("config.json", problem)) for name, (content, problem) in BAD_CONFIGS.items()],
    Case("runs: resuming when the latest training-state file is missing", resume_without_training_state,
         ("step_000012.state.safetensors", "missing", "delete")),
    Case("runs: train into a run directory that is an existing file", out_is_a_file, ("existing file",)),
    Case("runs: train into a run directory under a file", out_under_a_file, ("lies under", "which is a file")),
    Case("runs: train on --device bogus", device("bogus"), ("bogus", "not a torch device name")),
    Case("runs: train on cuda:7 without that device", device("cuda:7"), ("cuda:7",)),
    Case("runs: analyze over a leftover analysis.json that is a JSON list", leftover_analysis(b"[]"),
         ("analysis.json", "JSON list")),
    Case("runs: analyze over a leftover analysis.json that is not UTF-8", leftover_analysis(b"\xff\xfe"),
         ("analysis.json", "not UTF-8")),
    Case("runs: a second writer of a run directory is refused", second_writer_refused,
         ("being written by another process", "pid")),
    Case("runs: the refusal names the directory and the holder's pid", second_writer_refusal_names_pid),
    Case("runs: a killed writer's lock does not block, its temporary files go", killed_holder_does_not_block),
    Case("runs: every file of a run gets 0644 under umask 022", permissions_follow_the_umask),
    Case("runs: metrics.jsonl that is not UTF-8", metrics_not_utf8, ("metrics.jsonl", "not UTF-8")),
]
