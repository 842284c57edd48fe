"""Every case of ``analyses/audit_edges.py`` ends as a named error or a correct number: none is silently
wrong, none is a traceback."""
import pytest

from audit.common import classify   # analyses/ is on the path (tests/analyses/conftest.py)
from audit_edges import all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_audit_case_is_named_error_or_correct(case):
    outcome, detail = classify(case)
    assert outcome in ("named error", "correct"), f"{case.name}: {outcome} ({detail})"


def test_audit_script_prints_totals(run_script, capsys):
    with pytest.raises(SystemExit) as done:
        run_script("audit_edges", "--only", "no case has this name")
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "totals: 0 named error, 0 correct, 0 silent wrong, 0 traceback"
