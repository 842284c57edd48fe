import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from landscape.connectivity.instability import (RESULTS_FILE, InstabilityResult, child_name, child_seeds, instability)
from landscape.connectivity.interpolation import interpolated_state
from landscape.foundation.runs import Run
from landscape.plots import save_figure
from landscape.plots.instability import plot_instability
from landscape.pruning import magnitude_masks
from landscape.training import Hparams, Start, init_model, tensors_digest, train
import landscape.cli.instability as cli
import landscape.connectivity.instability as instability_module

pytestmark = pytest.mark.usefixtures("one_thread")

HP = Hparams(model="mlp", model_kwargs={"widths": [12]}, data="teacher_student",
             data_kwargs={"train_size": 64, "test_size": 32, "input_dim": 5, "num_classes": 3},
             batch_size=16, steps="12it", lr=0.2, eval_every=0)
POINTS = 5


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return Run(run_dir).load_checkpoint().model


def children(out: Path, pair) -> tuple[dict, dict]:
    return final_state(out / pair.children[0]), final_state(out / pair.children[1])


@pytest.fixture
def train_calls(monkeypatch):
    """Every train() call of the analysis as (run directory name, first step, total steps)."""
    calls = []

    def counted(hparams, run_dir, **kwargs):
        result = train(hparams, run_dir, **kwargs)
        calls.append((Path(run_dir).name, result.first_step, result.steps))
        return result

    monkeypatch.setattr(instability_module, "train", counted)
    return calls


def test_copies_with_the_same_data_order_end_identical_with_zero_instability(tmp_path):
    result = instability(HP, [4], tmp_path, replicates=[(5, 5)], points=POINTS, progress=False)
    (pair,) = result.pairs
    assert pair.children == ("k000004_r0a_seed5", "k000004_r0b_seed5")  # two runs, not one run twice
    a, b = children(tmp_path, pair)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for split in ("train", "test"):
        for quantity in ("error", "loss"):
            for definition in ("frankle", "entezari"):
                assert pair.barrier(split, quantity, definition).height == 0.0


def test_copies_differ_only_in_data_order_and_end_apart(tmp_path):
    result = instability(HP, [4], tmp_path, replicates=2, points=POINTS, progress=False)
    assert [p.seeds for p in result.pairs] == [child_seeds(HP.data_order_seed, 0), child_seeds(HP.data_order_seed, 1)]
    assert len({s for p in result.pairs for s in p.seeds} | {HP.data_order_seed}) == 5
    for pair in result.pairs:
        configs = [json.loads((tmp_path / name / "config.json").read_text()) for name in pair.children]
        idents = [Hparams.from_dict(c["hparams"]).identity() for c in configs]
        assert [i.pop("data_order_seed") for i in idents] == list(pair.seeds)
        assert idents[0] == idents[1] == {k: v for k, v in HP.identity().items() if k != "data_order_seed"}
        assert configs[0]["start"] == configs[1]["start"] and configs[0]["start"]["step"] == 4
        a, b = children(tmp_path, pair)
        assert any(not torch.equal(a[k], b[k]) for k in a)


def test_the_trunk_is_shared_and_resuming_retrains_nothing(tmp_path, train_calls):
    first = instability(HP, [0, 3, 6], tmp_path, replicates=2, points=POINTS, progress=False)
    names = [name for name, _, _ in train_calls]
    assert names.count("trunk_000006") == 1 and len(names) == 1 + 3 * 2 * 2
    assert [d.name for d in tmp_path.glob("trunk_*")] == ["trunk_000006"]
    trunk = Run(tmp_path / "trunk_000006")
    assert {0, 3, 6} <= set(trunk.checkpoint_steps())
    for pair in first.pairs:  # every child continues the trunk's checkpoint at its spawn step
        for name in pair.children:
            start = json.loads((tmp_path / name / "config.json").read_text())["start"]
            assert start["step"] == pair.step
            assert start["model_digest"] == tensors_digest(trunk.load_checkpoint(pair.step).model)
    checkpoints = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoints/*")}

    train_calls.clear()
    again = instability(HP, [0, 3, 6], tmp_path, replicates=2, points=POINTS, progress=False)
    assert train_calls == [] and again.to_dict() == first.to_dict()

    (tmp_path / RESULTS_FILE).unlink()  # finished children, but no record of their pairs: re-measured only
    remeasured = instability(HP, [0, 3, 6], tmp_path, replicates=2, points=POINTS, progress=False)
    assert len(train_calls) == 13 and all(begun == steps for _, begun, steps in train_calls)
    assert remeasured.to_dict() == first.to_dict()
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoints/*")} == checkpoints

    train_calls.clear()  # a new spawn step inside the trunk: the trunk is replayed from step 3, not retrained
    extended = instability(HP, [0, 3, 5, 6], tmp_path, replicates=2, points=POINTS, progress=False)
    assert [d.name for d in tmp_path.glob("trunk_*")] == ["trunk_000006"]
    assert train_calls[0] == ("trunk_000006", 3, 6)
    assert sorted(name for name, _, _ in train_calls[1:]) == sorted(
        child_name(5, r, c, s) for r in range(2) for c, s in zip("ab", child_seeds(0, r)))
    assert extended.steps == [0, 3, 5, 6] and len(InstabilityResult.load(tmp_path / RESULTS_FILE).pairs) == 8


def test_results_json_round_trips_with_mean_and_spread(tmp_path):
    result = instability(HP, [0, 4], tmp_path, replicates=3, splits=("test",), points=POINTS, progress=False)
    loaded = InstabilityResult.load(tmp_path / RESULTS_FILE)
    assert loaded.to_dict() == result.to_dict()
    assert loaded.hparams == HP and loaded.steps == [0, 4] and loaded.splits == ["test"]
    values = loaded.barriers("test", "error", "frankle")
    assert values.shape == (2, 3)
    np.testing.assert_allclose(loaded.mean("test"), values.mean(axis=1))
    np.testing.assert_allclose(loaded.std("test"), values.std(axis=1, ddof=1))
    assert loaded.pairs[0].paths["test"].alphas.tolist() == np.linspace(0, 1, POINTS).tolist()
    row = next(r for r in json.loads((tmp_path / RESULTS_FILE).read_text())["summary"]
               if (r["quantity"], r["definition"], r["step"]) == ("loss", "entezari", 4))
    assert row["values"] == pytest.approx(list(loaded.barriers("test", "loss", "entezari")[1]))


def test_masked_subnetworks_keep_pruned_weights_at_zero_along_the_whole_analysis(tmp_path):
    masks = magnitude_masks(init_model(HP), fraction=0.6)
    dense = tmp_path / "dense"
    train(dataclasses.replace(HP, checkpoint_steps=(4,)), dense, progress=False, device="cpu")
    out = tmp_path / "ticket"
    result = instability(HP, [4], out, replicates=1, masks=masks, start=Start.rewind(dense, 4), points=POINTS,
                         progress=False)
    (pair,) = result.pairs
    trunk = Run(out / pair.trunk)
    assert pair.trunk == "trunk_000004" and trunk.checkpoint_steps() == [4]  # the rewound ticket itself
    assert result.masks["density"] == pytest.approx(float(sum(m.sum() for m in masks.values())
                                                          / sum(m.numel() for m in masks.values())))
    a, b = children(out, pair)
    states = [trunk.load_checkpoint(4).model, a, b] + [
        interpolated_state(a, b, float(alpha)) for alpha in pair.paths["test"].alphas]
    for state in states:
        for name, mask in masks.items():
            assert torch.all(state[name][~mask] == 0)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="masks"):
        instability(HP, [4], out, replicates=1, masks=magnitude_masks(init_model(HP), fraction=0.3),
                    start=Start.rewind(dense, 4), points=POINTS, progress=False)


def test_another_run_or_steps_outside_the_run_are_refused(tmp_path):
    instability(HP, [6], tmp_path, replicates=1, splits=("test",), points=POINTS, progress=False)
    with pytest.raises(ValueError, match="lr: 0.2 there, 0.1 asked"):
        instability(dataclasses.replace(HP, lr=0.1), [6], tmp_path, replicates=1, progress=False)
    with pytest.raises(ValueError, match=r"outside \[0, 12\]"):
        instability(HP, [6, 13], tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match=r"outside \[4, 12\]"):
        instability(HP, [2], tmp_path / "other", start=Start.rewind(init_model(HP), 4), progress=False)


def test_the_figure_is_a_png_of_barrier_against_k(tmp_path):
    result = instability(HP, [0, 2, 6], tmp_path, replicates=2, points=POINTS, progress=False)
    for name, fig in (("one", plot_instability(result)),
                      ("two", plot_instability({"a": result, "b": result}, quantity="loss", definitions=("frankle",)))):
        path = save_figure(fig, tmp_path / f"{name}.png", dpi=50)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).ndim == 3
    axes = plot_instability(result).axes
    assert len(axes) == 2 and axes[0].get_xscale() == "symlog"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["0", "2", "6"]


def test_cli_runs_the_analysis_end_to_end(tmp_path, capsys):
    assert "\n" not in cli.HELP
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "analysis"
    argv = ["--model", "mlp", "--model-kwargs", "widths=[12]", "--data", "teacher_student",
            "--data-kwargs", "train_size=64", "test_size=32", "input_dim=5", "num_classes=3",
            "--batch-size", "16", "--steps", "8it", "--eval-every", "0", "--spawn", "0,4",
            "--replicates", "2", "--points", str(POINTS), "--out", str(out), "--no-progress"]
    assert cli.run(parser.parse_args(argv)) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "error barrier" in lines[0] and lines[1].split() == ["k", "train", "test"]
    assert lines[2].split()[0] == "0" and lines[3].split()[0] == "4" and "±" in lines[3]
    result = InstabilityResult.load(out / RESULTS_FILE)
    assert result.steps == [0, 4] and result.barriers().shape == (2, 2)
    assert (out / "instability.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.run(parser.parse_args(argv)) == 0  # resumed: the same table
    assert capsys.readouterr().out == printed

