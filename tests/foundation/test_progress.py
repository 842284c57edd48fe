"""What long work prints: bounded lines when the stream is not a terminal, bars that end with the final values."""
import io


from landscape.foundation.progress import LOG_LINES, Progress, phase
from landscape.training import Hparams, train


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_title_and_a_few_lines_however_many_updates():
    stream = io.StringIO()
    with Progress("dense training", 1000, stream=stream) as bar:
        for step in range(1000):
            bar.update(1)
            bar.set_postfix({"loss": f"{1 / (step + 1):.3f}"})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "dense training (1000 it)"
    assert 2 <= len(lines) <= 1 + LOG_LINES
    assert lines[-1].startswith("dense training: 1000/1000 it") and lines[-1].endswith("loss=0.001")
    assert "\r" not in stream.getvalue()


def test_a_phase_resumed_at_its_end_prints_its_title_and_one_line():
    stream = io.StringIO()
    Progress("training", 30, initial=30, stream=stream).close()
    assert stream.getvalue().splitlines() == ["training (30 it)", "training: 30/30 it [0 s]"]


def test_a_terminal_gets_a_bar_that_ends_with_the_last_values():
    stream = Terminal()
    bar = Progress("pruning round 2/3", 50, stream=stream)
    for step in range(50):
        bar.update(1)
        bar.set_postfix({"acc": step})
    bar.close()
    final = stream.getvalue().replace("\n", "\r").strip("\r").split("\r")[-1]
    assert "50/50" in final and final.endswith("acc=49]")


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    with Progress("x", 10, enabled=False, stream=stream) as bar:
        bar.update(10)
    phase("y", enabled=False, stream=stream)
    assert stream.getvalue() == ""


def test_training_log_is_bounded_and_ends_with_the_last_steps_test_values(tmp_path, capsys, one_thread):
    hparams = Hparams(model="mlp", model_kwargs={"widths": [8]}, data="teacher_student",
                      data_kwargs={"train_size": 96, "test_size": 32, "input_dim": 6, "num_classes": 3},
                      batch_size=16, steps="200it", eval_every=70, checkpoint_every=0)
    result = train(hparams, tmp_path / "run", progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) <= 1 + LOG_LINES
    assert f"test_loss={result.test.loss:.3f}" in lines[-1] and f"test_acc={result.test.accuracy:.3f}" in lines[-1]
