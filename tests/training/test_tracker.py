import json
import math
import random
import re
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from landscape.foundation.runs import Run
from landscape.models import registry as models
from landscape.training import Hparams, train
from landscape.training import tracker as tracker_module
from landscape.training.tracker import INSTRUMENTS, Tracker, TrackerSettings, log_steps

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(model="tracker_dropout_mlp", data="teacher_student",
            data_kwargs={"train_size": 96, "test_size": 32, "input_dim": 6, "num_classes": 3},
            batch_size=16, steps="20it", eval_every=5, checkpoint_every=0)
CHEAP = TrackerSettings(top_k=3, bottom_k=3, saddle_k=3, flatness_k=3, overlap_k=2, density_steps=12,
                        density_runs=2, trace_matvecs=6)


@pytest.fixture(autouse=True)
def dropout_model():
    """A registry MLP with dropout, so that training draws random numbers a measurement must not disturb."""
    @models.register_model("tracker_dropout_mlp")
    def factory(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.Tanh(), nn.Dropout(0.2),
                             nn.Linear(8, num_classes))

    yield
    models._MODELS.unregister("tracker_dropout_mlp")


def tracker(hp: Hparams, instruments=("top_eigen", "trace", "fisher_trace"), **kwargs) -> Tracker:
    return Tracker.for_hparams(hp, samples=32, instruments=instruments, schedule=5, settings=CHEAP, **kwargs)


def tracked(run: Run) -> list[tuple[int, str]]:
    return [(r["step"], r["instrument"]) for r in run.metrics() if r["instrument"] in INSTRUMENTS]


def test_a_tracked_run_ends_bit_identical_to_an_untracked_one(tmp_path):
    hp = Hparams(**TINY)
    plain = train(hp, tmp_path / "plain", progress=False)
    measured = train(hp, tmp_path / "tracked", callbacks=[tracker(hp, INSTRUMENTS)], progress=False)
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, measured.model.state_dict()[k]), k
    final = [Run(tmp_path / name).load_checkpoint(20).state for name in ("plain", "tracked")]
    for group_a, group_b in zip(final[0]["optimizer"]["state"].values(), final[1]["optimizer"]["state"].values()):
        assert all(torch.equal(group_a[k], group_b[k]) for k in group_a)
    assert torch.equal(final[0]["rng"]["torch"], final[1]["rng"]["torch"])
    evaluations = [r for r in measured.run.metrics() if r["instrument"] not in INSTRUMENTS]
    assert evaluations == plain.run.metrics()
    assert tracked(measured.run) == [(s, name) for s in (0, 5, 10, 15, 20) for name in INSTRUMENTS]
    for record in measured.run.metrics():
        if record["instrument"] in INSTRUMENTS:
            assert record["seconds"] >= 0 and record["matvecs"] >= 0
            assert all(math.isfinite(v) for v in record.values() if isinstance(v, float)), record


class Crash(Exception):
    pass


def test_a_resumed_tracked_run_repeats_no_measurement_and_loses_none(tmp_path):
    hp = Hparams(**(TINY | {"checkpoint_steps": (0, 10)}))
    full = train(hp, tmp_path / "full", callbacks=[tracker(hp)], progress=False).run

    def crash(model, step, run):
        if step == 15:
            raise Crash
    same = tracker(hp)   # the same tracker object carries on after the crash, and a fresh one too
    for path, resumed in ((tmp_path / "same", same), (tmp_path / "fresh", tracker(hp))):
        with pytest.raises(Crash):
            train(hp, path, callbacks=[same, crash], progress=False)
        assert (15, "trace") in tracked(Run(path))   # measured before the crash, dropped on resuming
        train(hp, path, callbacks=[resumed], progress=False)
        assert tracked(Run(path)) == tracked(full)
        exact = {(r["step"]): r["value"] for r in Run(path).metrics() if r["instrument"] == "fisher_trace"}
        assert exact == {r["step"]: r["value"] for r in full.metrics() if r["instrument"] == "fisher_trace"}


def test_a_new_tracker_measures_only_what_the_metrics_file_lacks(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    data = (torch.randn(24, 4), torch.randint(0, 3, (24,)))
    path = tmp_path / "metrics.jsonl"
    first = Tracker(nn.CrossEntropyLoss(), data, instruments=("top_eigen", "fisher_trace"), schedule=[0, 3],
                    model=model, run=path, settings=CHEAP)
    assert [len(first.step(s)) for s in range(4)] == [2, 0, 0, 2]
    assert first.step(3) == []   # asked twice: nothing repeated
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")   # a crash lost the last record
    again = Tracker(nn.CrossEntropyLoss(), data, instruments=("top_eigen", "fisher_trace"), schedule=[0, 3],
                    model=model, run=path, settings=CHEAP)
    assert again.step(0) == []
    assert [r["instrument"] for r in again.step(3)] == [json.loads(lines[-1])["instrument"]]
    assert len(path.read_text().splitlines()) == 4


def test_a_measurement_leaves_modes_gradients_and_random_states_untouched(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.5), nn.Tanh(), nn.Linear(5, 3)).train()
    model[3].eval()
    data = (torch.randn(24, 4), torch.randint(0, 3, (24,)))
    nn.CrossEntropyLoss()(model(data[0]), data[1]).backward()
    grads = [(p.grad, p.grad.clone()) for p in model.parameters()]
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    measure = Tracker(nn.CrossEntropyLoss(), data, instruments=INSTRUMENTS, schedule=1, model=model,
                      run=tmp_path, settings=CHEAP)
    assert len(measure.step(1)) == len(INSTRUMENTS)
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
    assert all(p.grad is g and torch.equal(g, v) for p, (g, v) in zip(model.parameters(), grads))
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_eigen_solves_start_warm_from_the_previous_measurement(tmp_path):
    hp = Hparams(**TINY)
    run = train(hp, tmp_path, callbacks=[tracker(hp, ("top_eigen",))], progress=False).run
    assert [r["warm"] for r in run.metrics("top_eigen")] == [False, True, True, True, True]


def test_schedules():
    assert log_steps(1000, 4) == (0, 1, 10, 100, 1000)
    every = Tracker(nn.MSELoss(), (torch.zeros(2, 1), torch.zeros(2, 1)), schedule=50)
    listed = Tracker(nn.MSELoss(), (torch.zeros(2, 1), torch.zeros(2, 1)), schedule=log_steps(100, 3))
    assert [s for s in range(201) if every.due(s)] == [0, 50, 100, 150, 200]
    assert [s for s in range(201) if listed.due(s)] == [0, 1, 10, 100]


@pytest.mark.parametrize("kwargs, match", [({"instruments": ("hessian_norm",)}, "unknown instruments"),
                                           ({"schedule": 0}, "positive period")])
def test_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tracker(nn.MSELoss(), (torch.zeros(2, 1), torch.zeros(2, 1)), **kwargs)
    with pytest.raises(ValueError, match="no model"):
        Tracker(nn.MSELoss(), (torch.zeros(2, 1), torch.zeros(2, 1)), run="x").step(0)


def test_named_trackers_share_a_run_without_skipping_each_other(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    data = (torch.randn(24, 4), torch.randint(0, 3, (24,)))

    def fisher(kind, name):
        return Tracker(nn.CrossEntropyLoss(), data, instruments=("fisher_trace",), schedule=[0, 3], model=model,
                       run=tmp_path, settings=TrackerSettings(fisher_kind=kind, fisher_samples=4), name=name)
    empirical, true = fisher("empirical", "empirical"), fisher("true", "true")
    for step in range(4):
        empirical.step(step)
        true.step(step)
    kinds = sorted((r["step"], r["tracker"], r["kind"]) for r in Run(tmp_path).metrics())
    assert kinds == [(0, "empirical", "empirical"), (0, "true", "true"), (3, "empirical", "empirical"),
                     (3, "true", "true")]
    again = fisher("true", "true")   # a fresh tracker of one name finds its own records, not the other's
    assert again.step(3) == []
    assert len(fisher("true", None).step(3)) == 1   # the unnamed tracker has none yet


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slq_records_carry_a_total_error_that_covers_the_dense_truth(tmp_path, seed):
    """The density and saddle_index records of a float64 tanh MLP (57 parameters): value ± total error holds
    the exact fraction from the dense Hessian, and ``reliable`` follows the stated rule (error at most half the
    value, or below one eigenvalue)."""
    from landscape.operators import Hessian
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    data = (torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,)))
    settings = TrackerSettings(saddle_k=3, density_steps=20, density_runs=4, saddle_tol=1e-3, seed=seed)
    Tracker(nn.CrossEntropyLoss(), data, instruments=("density", "saddle_index"), schedule=1, model=model,
            run=tmp_path / "m.jsonl", settings=settings).step(0)
    records = {r["instrument"]: r for r in map(json.loads, (tmp_path / "m.jsonl").read_text().splitlines())}
    eigenvalues = torch.linalg.eigvalsh(Hessian(model, nn.CrossEntropyLoss(), data).to_dense())
    n = eigenvalues.numel()
    saddle, dens = records["saddle_index"], records["density"]
    exact = float((eigenvalues < -saddle["threshold"]).double().mean())
    assert abs(saddle["fraction"] - exact) <= saddle["error"]
    assert saddle["reliable"] == (saddle["error"] <= 0.5 * saddle["fraction"] or saddle["error"] <= 1 / n)
    assert saddle["reliable"] or saddle["reason"]
    assert saddle["error"] >= saddle["stderr"] and (saddle["quadrature_error"] is not None or saddle["complete"])
    assert abs(dens["negative_fraction"] - float((eigenvalues < 0).double().mean())) <= dens["negative_fraction_error"]
    value = dens["negative_fraction"]
    assert dens["negative_fraction_error"] == pytest.approx(min(dens["negative_fraction_quadrature_error"]
                                                                + 3.182 * dens["negative_fraction_stderr"],
                                                                max(value, 1 - value)), rel=1e-3)
    assert dens["negative_fraction_reliable"] or dens["negative_fraction_reason"]


def _crash_at(step: int):
    def callback(model, s, run):
        if s == step:
            raise Crash
    return callback


@pytest.mark.parametrize("fresh_tracker", [False, True], ids=["same tracker object", "new process"])
def test_a_resumed_tracked_run_records_exactly_what_an_uninterrupted_one_records(tmp_path, fresh_tracker):
    hp = Hparams(**(TINY | {"dtype": "float64", "checkpoint_every": 5}))
    instruments = ("top_eigen", "bottom_eigen", "trace")

    def records(path):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in Run(path).metrics()
                if r["instrument"] in instruments]

    train(hp, tmp_path / "whole", callbacks=[tracker(hp, instruments)], progress=False)
    first = tracker(hp, instruments)
    with pytest.raises(Crash):   # killed after the step-10 checkpoint, with step 12's evaluation logged
        train(hp, tmp_path / "cut", callbacks=[first, _crash_at(12)], progress=False)
    resumed = tracker(hp, instruments) if fresh_tracker else first
    train(hp, tmp_path / "cut", callbacks=[resumed], progress=False)
    whole, cut = records(tmp_path / "whole"), records(tmp_path / "cut")
    assert [r["step"] for r in whole if r["instrument"] == "top_eigen"] == [0, 5, 10, 15, 20]
    assert all(r["warm"] for r in whole if r["instrument"] == "top_eigen" and r["step"] > 0)
    assert cut == whole   # eigenvalues, residuals and matvec counts bit for bit (float64, from JSON)
    saved = Run(tmp_path / "cut").load_checkpoint(10).state["callbacks"]["tracker"]["warm"]
    assert saved["largest"].dtype == torch.float64 and saved["largest"].shape[1] == CHEAP.top_k


def test_a_metrics_file_that_is_not_utf8_is_a_named_error(tmp_path):
    from landscape.foundation.runs import FileFormatError
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\xff\xfe\n")
    model = nn.Linear(2, 1)
    measure = Tracker(nn.MSELoss(), (torch.randn(4, 2), torch.randn(4, 1)), instruments=("trace",), schedule=1,
                      model=model, run=path, settings=CHEAP)
    with pytest.raises(FileFormatError, match="metrics.jsonl is not UTF-8 text"):
        measure.step(0)


def _costing(monkeypatch, seconds: dict[str, float]) -> None:
    """Stand-ins for instruments that take the given wall seconds and measure nothing (the cost is under test)."""
    for instrument, wait in seconds.items():
        monkeypatch.setitem(tracker_module._MEASURES, instrument, lambda session, wait=wait: time.sleep(wait) or {})


def _saddle_tracker(tmp_path) -> Tracker:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    data = (torch.randn(24, 4), torch.randint(0, 3, (24,)))
    return Tracker(nn.CrossEntropyLoss(), data, instruments=("fisher_trace", "saddle_index"), schedule=1, model=model,
                   run=tmp_path, settings=CHEAP)


def test_saddle_index_warns_once_with_its_share_when_it_dominates_the_tracker(tmp_path, monkeypatch):
    _costing(monkeypatch, {"saddle_index": 0.05, "fisher_trace": 0.0})
    measure = _saddle_tracker(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measure.step(0)
        measure.step(1)
    about_saddle = [str(w.message) for w in caught if "saddle_index took" in str(w.message)]
    assert len(about_saddle) == 1 and re.search(r"took (9\d|100)% of the tracker's time by step 0", about_saddle[0])
    summary = measure.cost_summary()
    assert summary.startswith("tracker cost") and summary.index("saddle_index") < summary.index("fisher_trace")
    assert re.search(r"saddle_index 0\.1 s \((9\d|100)%, 0 matvecs, 2x\)", summary), summary


def test_saddle_index_is_quiet_when_it_costs_less_than_half(tmp_path, monkeypatch):
    _costing(monkeypatch, {"saddle_index": 0.0, "fisher_trace": 0.05})
    measure = _saddle_tracker(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measure.step(0)
    assert not [w for w in caught if "saddle_index took" in str(w.message)]
    assert measure.cost_summary().index("fisher_trace") < measure.cost_summary().index("saddle_index")


def test_a_tracked_training_ends_with_the_trackers_cost_per_instrument(tmp_path, capsys):
    hp = Hparams(**TINY)
    assert _saddle_tracker(tmp_path).cost_summary() is None
    train(hp, tmp_path / "run", callbacks=[tracker(hp)], progress=True)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("tracker cost")
    assert all(f"{name} " in last for name in ("top_eigen", "trace", "fisher_trace"))
