"""The README's "Use it with your own training" snippets run as written (in order, in one namespace, in a
temporary directory) and leave the records they promise."""
import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Use it with your own training"


def _snippets() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end if end >= 0 else None], re.S)


def _steps(path: Path, instrument: str) -> list[int]:
    return [r["step"] for r in map(json.loads, path.open()) if r["instrument"] == instrument]


def test_readme_training_snippets_run_and_write_their_records(tmp_path, monkeypatch, one_thread):
    snippets = _snippets()
    assert len(snippets) == 4, "plain loop, TensorBoard, Lightning, Hugging Face"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in snippets:
        exec(compile(code, str(README), "exec"), namespace)

    plain = tmp_path / "curvature" / "metrics.jsonl"
    assert _steps(plain, "top_eigen") == [0, 10, 20, 30, 30]   # the second is the TensorBoard tracker's
    assert _steps(plain, "trace") == [0, 10, 20, 30] and _steps(plain, "density") == [30]
    assert list((tmp_path / "curvature" / "tensorboard").glob("events.out.tfevents.*"))
    assert _steps(tmp_path / "lightning_logs" / "version_0" / "metrics.jsonl", "top_eigen") == [0, 10, 20, 30]
    assert _steps(tmp_path / "gpt2-run" / "metrics.jsonl", "top_eigen") == [0, 10, 20]
