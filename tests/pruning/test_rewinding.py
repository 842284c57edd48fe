"""The rewinding-step sweep: IMP rewound to several steps from one shared dense run, instabilities, matching."""
import numpy as np
import pytest
import torch

import landscape.connectivity.instability as instability_module
import landscape.pruning.imp as imp_module
from landscape.foundation.runs import Run, RunConfigError
from landscape.pruning import PruningHparams, iterative_magnitude_pruning, load_imp, round_dir, run_masks
from landscape.pruning.imp import dense_run_dir
from landscape.pruning.rewinding import (STABLE_BARRIER, judge_matching, rewind_dir, rewind_sweep, rewind_sweeps,
                                         summarize, summary_table, ticket_instability_dir)
from landscape.training import Hparams, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = {"train_size": 64, "test_size": 32, "input_dim": 8, "num_classes": 3}   # 4 batches of 16 per epoch


def _hparams(**changes):
    values = dict(model="mlp", model_kwargs={"widths": [12]}, data="teacher_student", data_kwargs=DATA, batch_size=16,
                  steps="8it", lr=0.1, momentum=0.9, weight_decay=0.01, eval_every=0, checkpoint_every=0,
                  dtype="float64")
    return Hparams(**{**values, **changes})


def _same_weights(a, b):
    sa, sb = load_model(a).state_dict(), load_model(b).state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[n], sb[n]) for n in sa)


def test_imp_on_a_shared_dense_run_is_bit_identical_to_imp_with_its_own(tmp_path):
    pruning = PruningHparams(rounds=2, rewind="2it", controls=("reinit",))
    own = iterative_magnitude_pruning(_hparams(), pruning, tmp_path / "own", progress=False)
    shared = iterative_magnitude_pruning(_hparams(), pruning, tmp_path / "sweep" / "imp",
                                         dense=tmp_path / "sweep" / "dense", progress=False)
    assert dense_run_dir(shared.path) == tmp_path / "sweep" / "imp" / ".." / "dense"
    assert shared.dense.run_dir.resolve() == (tmp_path / "sweep" / "dense").resolve()
    assert not (round_dir(shared.path, 0) / "config.json").exists()   # round_00 holds only its summary
    assert _same_weights(own.dense.run_dir, shared.dense.run_dir)
    for a, b in zip(own.tickets, shared.tickets):
        ma, mb = run_masks(a.run_dir), run_masks(b.run_dir)
        assert all(torch.equal(ma[n], mb[n]) for n in ma)
        assert _same_weights(a.run_dir, b.run_dir) and _same_weights(a.controls["reinit"].run_dir,
                                                                     b.controls["reinit"].run_dir)
        assert a.test == b.test and a.stability == b.stability
    assert load_imp(shared.path).rounds == shared.rounds
    with pytest.raises(RunConfigError, match="dense run"):
        iterative_magnitude_pruning(_hparams(), pruning, shared.path, progress=False)


def test_sweep_shares_one_dense_run_and_each_step_equals_imp_rewound_there(tmp_path):
    pruning = PruningHparams(rounds=2, controls=("reinit",))
    sweep = rewind_sweep(_hparams(), pruning, ["0it", "1ep"], tmp_path / "sweep", points=3, progress=False)
    assert sweep.steps == [0, 4]
    assert Run(tmp_path / "sweep" / "dense").checkpoint_steps() == [0, 4, 8]
    assert [p.name for p in (tmp_path / "sweep").rglob("config.json") if p.parent.name.startswith("round_00")] == []
    for k in sweep.steps:
        alone = iterative_magnitude_pruning(_hparams(), PruningHparams(rounds=2, rewind=f"{k}it", controls=("reinit",)),
                                            tmp_path / f"alone{k}", progress=False)
        assert sweep.imps[k].rewind_step == k and sweep.imps[k].path == rewind_dir(tmp_path / "sweep", k)
        for a, b in zip(alone.tickets, sweep.imps[k].tickets):
            assert _same_weights(a.run_dir, b.run_dir) and a.test == b.test
        np.testing.assert_array_equal(sweep.accuracy(k), [t.test.accuracy for t in alone.tickets])
        np.testing.assert_array_equal(sweep.accuracy(k, "reinit"),
                                      [t.controls["reinit"].test.accuracy for t in alone.tickets])
    first = [run_masks(sweep.imps[k].tickets[0].run_dir) for k in sweep.steps]   # round 1 prunes the dense weights
    assert all(torch.equal(first[0][n], first[1][n]) for n in first[0])
    assert np.array_equal(sweep.densities, [t.density for t in sweep.imps[0].tickets])
    with pytest.raises(KeyError, match="random"):
        sweep.accuracy(0, "random")


def test_sweep_measures_the_dense_network_at_every_step_and_each_ticket_rewound(tmp_path):
    sweep = rewind_sweep(_hparams(), PruningHparams(rounds=2), ["0it", "2it"], tmp_path, points=3, progress=False)
    assert sweep.dense_instability.steps == [0, 2] and sweep.dense_instability.masks is None
    assert sweep.dense_barriers().shape == (2,) and np.all(sweep.dense_barriers() >= -1e-12)
    assert set(sweep.ticket_instability) == {(0, 1), (0, 2), (2, 1), (2, 2)}
    for (k, n), result in sweep.ticket_instability.items():
        masks = run_masks(round_dir(rewind_dir(tmp_path, k), n))
        assert result.steps == [k] and result.start["step"] == k
        assert result.masks["density"] == pytest.approx(sweep.densities[n - 1])
        trunk = next(ticket_instability_dir(tmp_path, k, n).glob("trunk_*"))   # the ticket rewound: m ⊙ θ_k
        start, dense = Run(trunk).load_checkpoint(k).model, Run(tmp_path / "dense").load_checkpoint(k).model
        for name, value in dense.items():
            assert torch.equal(start[name], value * masks[name] if name in masks else value), name
    barriers = sweep.ticket_barriers(2)
    assert barriers.shape == (2,) and np.all(np.isfinite(barriers))
    assert barriers[1] == sweep.ticket_instability[(2, 2)].barriers("test", "error")[0, 0]


def test_rerunning_a_sweep_trains_nothing_and_returns_the_same_numbers(tmp_path, monkeypatch):
    args = (_hparams(), PruningHparams(rounds=1, controls=("reinit",)), ["0it", "2it"], tmp_path)
    first = rewind_sweep(*args, points=3, progress=False)
    calls = []
    for module in (imp_module, instability_module):
        real = module.train
        monkeypatch.setattr(module, "train",
                            lambda hp, run_dir, real=real, **kw: calls.append(run_dir) or real(hp, run_dir, **kw))
    again = rewind_sweep(*args, points=3, progress=False)
    assert calls == []
    np.testing.assert_array_equal(again.dense_barriers(), first.dense_barriers())
    np.testing.assert_array_equal(again.ticket_barriers(2), first.ticket_barriers(2))
    assert all(again.imps[k].rounds == first.imps[k].rounds for k in first.steps)


def test_bad_rewind_steps_are_refused_by_name(tmp_path):
    pruning = PruningHparams(rounds=1)
    for steps, message in ((["4it", "1ep"], "both step 4"), (["8it"], "not before the end"), ([], "non-empty"),
                           ("0it", "non-empty"), (["soon"], "rewind must look like")):
        with pytest.raises(ValueError, match=message):
            rewind_sweep(_hparams(), pruning, steps, tmp_path, progress=False)
    with pytest.raises(ValueError, match="replicates"):
        rewind_sweep(_hparams(), pruning, ["0it"], tmp_path, replicates=0, progress=False)
    assert not tmp_path.joinpath("dense").exists()


def test_matching_is_within_one_dense_standard_deviation_over_seeds():
    dense = np.array([0.90, 0.92, 0.94])                      # mean 0.92, s.d. 0.02
    accuracies = np.array([[0.93, 0.905, 0.85], [0.91, 0.90, 0.87], [0.92, 0.895, 0.86]])   # means .92 .90 .86
    judged = judge_matching(accuracies, dense)
    assert judged.tolerance == pytest.approx(0.02) and judged.dense_mean == pytest.approx(0.92)
    assert judged.matching.tolist() == [True, True, False]
    np.testing.assert_allclose(judged.sd, accuracies.std(axis=0, ddof=1))
    assert judged.matching_down_to([0.8, 0.64, 0.512]) == 0.64
    assert judge_matching(accuracies, dense, tolerance=0.0).matching.tolist() == [True, False, False]
    assert judge_matching(accuracies, dense, tolerance=0.0).matching_down_to([0.8, 0.64, 0.512]) == 0.8
    assert judge_matching([[0.5]], [0.9], tolerance=0.01).matching_down_to([0.8]) is None
    with pytest.raises(ValueError, match="one dense seed"):
        judge_matching([[0.9]], [0.9])
    with pytest.raises(ValueError, match="NaN"):
        judge_matching([[np.nan]], [0.9, 0.8])
    with pytest.raises(ValueError, match="non-negative"):
        judge_matching([[0.9]], [0.9, 0.8], tolerance=-0.1)


def test_summary_puts_seeds_side_by_side_and_refuses_different_sweeps(tmp_path):
    pruning = PruningHparams(rounds=1, controls=("reinit",))
    results = rewind_sweeps(_hparams(), pruning, ["0it", "2it"], tmp_path / "a", seeds=2, points=3, progress=False)
    assert results[1].imps[0].hparams.init_seed == 1 and results[1].path == tmp_path / "a" / "seed1"
    summary = summarize(results)
    dense = np.array([r.dense.test.accuracy for r in results])
    assert summary.steps == (0, 2) and summary.dense_instability.shape == (2, 2)
    assert set(summary.accuracy) == {(0, "ticket"), (0, "reinit"), (2, "ticket"), (2, "reinit")}
    assert summary.matching[(2, "ticket")].tolerance == pytest.approx(dense.std(ddof=1))
    assert summary.dense_stable().tolist() == (summary.dense_instability.mean(axis=0) < STABLE_BARRIER).tolist()
    numbers = summary.to_dict()
    assert numbers["steps"] == [0, 2] and len(numbers["networks"]) == 4
    assert "dense instability at k=2" in summary_table(summary)
    other = rewind_sweep(_hparams(), pruning, ["0it"], tmp_path / "b", points=3, progress=False)
    with pytest.raises(ValueError, match="sweeps differ"):
        summarize([results[0], other])
    with pytest.raises(ValueError, match="one dense seed"):
        summarize(results[:1])


TINY = ["--model", "mlp", "--model-kwargs", "widths=[12]", "--data", "teacher_student", "--data-kwargs",
        "train_size=64", "test_size=32", "input_dim=8", "num_classes=3", "--batch-size", "16", "--steps", "6it",
        "--eval-every", "0", "--no-progress"]


def test_cli_rewind_sweep_prints_matching_and_instability_and_resumes(tmp_path, capsys):
    from landscape.cli import main
    argv = ["prune", *TINY, "--rounds", "1", "--controls", "reinit", "--rewind-sweep", "0it,2it", "--seeds", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rewinding sweep over 2 seed(s)" in out and "dense instability at k=2" in out
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in ("0", "2")]
    assert [r[0] for r in rows] == ["0", "2"] and all(r[1] == "80.30%" for r in rows)   # 106 of 132 weights
    assert (tmp_path / "seed1" / "rewind_000002" / "round_01" / "round.json").is_file()
    assert main(argv) == 0
    assert capsys.readouterr().out == out


@pytest.mark.parametrize("extra, message", [
    (["--rewind-sweep", "0it,2it", "--rewind", "2it"], "both set the rewind"),
    (["--seeds", "3"], "add --rewind-sweep"),
    (["--rewind-sweep", "0it"], "one seed has no spread"),
    (["--rewind-sweep", "0it", "--seeds", "0"], "--seeds must be at least 1"),
    (["--rewind-sweep", "0it", "--seeds", "2", "--match-tolerance", "5"], "accuracy fraction"),
    (["--rewind-sweep", "0it", "--seeds", "2", "--method", "snip", "--sparsity", "0.5"], "--method imp only"),
])
def test_cli_rewind_sweep_refuses_options_that_do_not_fit(extra, message, tmp_path, capsys):
    from landscape.cli import main
    assert main(["prune", *TINY, "--out", str(tmp_path), *extra]) != 0
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
