import pytest
import torch

from landscape.cli import main
from landscape.foundation.runs import load_checkpoint
from landscape.pruning import run_masks
from landscape.training import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "mlp", "--model-kwargs", "widths=[12]", "--data", "teacher_student", "--data-kwargs",
        "train_size=64", "test_size=32", "input_dim=8", "num_classes=3", "--batch-size", "16", "--steps", "6it",
        "--eval-every", "0", "--no-progress"]
TOTAL = 8 * 12 + 12 * 3   # prunable weights of the tiny MLP


def _rows(out):
    return {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ("pruned", "shuffle", "reinit", "dense", "supermask")}


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow", "magnitude_init", "random"])
def test_cli_prunes_at_init_to_the_exact_sparsity_and_trains_with_the_sanity_checks(method, tmp_path, capsys):
    extra = ["--synflow-iterations", "10"] if method == "synflow" else []
    assert main(["prune", *TINY, "--method", method, "--sparsity", "0.75", "--sanity", "shuffle,reinit",
                 "--out", str(tmp_path), *extra]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == {"pruned", "shuffle", "reinit"} and "allocation global" in out
    masks = run_masks(tmp_path / "pruned")
    assert sum(int(m.sum()) for m in masks.values()) == round(TOTAL * 0.25)
    shuffled = run_masks(tmp_path / "shuffle")
    assert all(int(shuffled[n].sum()) == int(masks[n].sum()) for n in masks)
    for name in ("pruned", "reinit"):   # trained, pruned weights still zero
        trained = dict(load_model(tmp_path / name).named_parameters())
        assert all(bool((trained[n][~m] == 0).all()) for n, m in masks.items())
    first = next(iter(masks))   # the sanity reinit starts from other weights under the same mask
    assert not torch.equal(load_model(tmp_path / "reinit", 0).state_dict()[first],
                           load_model(tmp_path / "pruned", 0).state_dict()[first])
    assert torch.equal(run_masks(tmp_path / "reinit")[first], masks[first])


@pytest.mark.parametrize("method", ["large_final", "large_final_same_sign", "magnitude_increase"])
def test_cli_zhou_criteria_train_dense_then_the_ticket_and_evaluate_the_supermask(method, tmp_path, capsys):
    assert main(["prune", *TINY, "--method", method, "--sparsity", "0.5", "--out", str(tmp_path)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {"dense", "supermask", "pruned"} and rows["pruned"][1] == "50.00%"
    assert [int(m.sum()) for m in run_masks(tmp_path / "pruned").values()] == [48, 18]   # layerwise default


def test_cli_edge_popup_saves_a_supermask_of_the_exact_sparsity(tmp_path, capsys):
    assert main(["prune", *TINY, "--method", "edge_popup", "--sparsity", "0.5", "--allocation", "global",
                 "--out", str(tmp_path)]) == 0
    assert _rows(capsys.readouterr().out)["supermask"][1] == "50.00%"
    masks = load_checkpoint(tmp_path / "masks.safetensors").model
    assert sum(int(m.sum()) for m in masks.values()) == TOTAL // 2


@pytest.mark.parametrize("method", ["signs_only", "sign_bit"])
def test_cli_sign_methods_train_with_fixed_signs(method, tmp_path, capsys):
    assert main(["prune", *TINY, "--method", method, "--sparsity", "0.5", "--out", str(tmp_path)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {"dense", "pruned"} and rows["pruned"][1] == "50.00%"


@pytest.mark.parametrize("argv, message", [
    (["--method", "snip"], "needs --sparsity"),
    (["--method", "imp", "--sparsity", "0.5"], "--sparsity apply to the one-shot methods"),
    (["--method", "edge_popup", "--sparsity", "0.5", "--sanity", "shuffle"], "--sanity checks pruning at init"),
    (["--method", "snip", "--sparsity", "0.5", "--rounds", "3"], "--rounds apply to --method imp only"),
    (["--method", "grasp", "--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
    (["--method", "random", "--sparsity", "0.5", "--synflow-iterations", "5"], "applies to synflow only"),
])
def test_cli_refuses_bad_combinations_by_name(argv, message, tmp_path, capsys):
    assert main(["prune", *TINY, *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "landscape prune: error:" in err and message in err and "Traceback" not in err
