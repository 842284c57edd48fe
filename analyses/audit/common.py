"""What every audit case shares: the case record, the outcome classes, and a way to call the CLI.

Outcomes, one per case:

- ``named error``: bad input refused with an exception (or a CLI exit with no traceback) whose message
  names the problem: every string of ``Case.mentions`` occurs in it (case-insensitive);
- ``correct``: the case ran and its number agrees with the dense float64 truth within the stated error,
  or a result that cannot be trusted said so itself;
- ``silent wrong``: a wrong number, or a bad input accepted, with nothing saying so;
- ``traceback``: any other exception (an error that does not name the problem, or a crash).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from landscape.training import Hparams, train

OUTCOMES = ("named error", "correct", "silent wrong", "traceback")


@dataclass(frozen=True)
class Case:
    """One edge case: ``run()`` returns ``None`` when right, a description of the wrong result otherwise.

    ``mentions``: strings a refusal must contain to count as a named error (empty: no refusal expected, any
    exception is a traceback).
    """
    name: str
    run: Callable[[], str | None]
    mentions: tuple[str, ...] = field(default=())


class CliTraceback(Exception):
    """The CLI died with a Python traceback on stderr."""


class CliRefused(Exception):
    """The CLI exited non-zero with an error message and no traceback (the message is the exception's)."""


def landscape_cli(*args: str, cwd: Path | str, env: dict[str, str] | None = None,
                  timeout: float = 300) -> str:
    """Run ``python -m landscape ARGS`` in ``cwd``; its stdout when it exits 0, else :class:`CliRefused`
    (a message, no traceback) or :class:`CliTraceback`."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "landscape", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode == 0:
        return done.stdout
    if "Traceback (most recent call last)" in done.stderr:
        raise CliTraceback(done.stderr[-2000:])
    raise CliRefused(done.stderr.strip() or done.stdout.strip())


def scratch(name: str) -> Path:
    """A fresh empty directory, removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=f"audit-{name}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


_FINISHED: dict[str, Path] = {}


def finished_run(hparams: Hparams) -> Path:
    """The run of ``hparams``, trained once per process on the CPU; cases copy it before damaging it."""
    key = repr(hparams)
    if key not in _FINISHED:
        _FINISHED[key] = scratch("finished") / "run"
        train(hparams, _FINISHED[key], progress=False, device="cpu")
    return _FINISHED[key]


def copy_of_finished_run(hparams: Hparams, name: str) -> Path:
    """A private copy of :func:`finished_run`'s directory, in a fresh scratch directory named after ``name``."""
    return Path(shutil.copytree(finished_run(hparams), scratch(name) / "run"))


def classify(case: Case) -> tuple[str, str]:
    """Run ``case`` and return its outcome (one of :data:`OUTCOMES`) and a one-line detail."""
    try:
        wrong = case.run()
    except CliTraceback as error:
        return "traceback", _last_line(str(error))
    except Exception as error:   # noqa: BLE001 - classifying every exception is this function's job
        message = f"{type(error).__name__}: {error}"
        if case.mentions and all(m.lower() in str(error).lower() for m in case.mentions):
            return "named error", _last_line(message)
        return "traceback", _last_line(message)
    if wrong is None:
        return "correct", ""
    return "silent wrong", wrong


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""
