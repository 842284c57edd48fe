"""The README's "Curvature in a few lines" snippet runs as written and prints each SLQ count as value ± total
error, or marked unreliable with the reason."""
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Curvature in a few lines"
ESTIMATE = r"-?\d[\d.e+-]* ± \d[\d.e+-]*( \(unreliable: .+\))?"


def _snippet() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.slow
def test_readme_curvature_snippet_prints_slq_counts_with_their_total_error(one_thread):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_snippet(), str(README), "exec"), {})
    lines = out.getvalue().splitlines()
    for name in ("negative mass", "saddle index"):
        line = next(line for line in lines if line.startswith(name))
        assert re.fullmatch(f"{name} {ESTIMATE}", line), line
