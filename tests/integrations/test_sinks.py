"""Sinks: the records as scalars, a tracker writing only to sinks, and the errors for bad ones."""
import pytest
import torch
from torch import nn

from landscape import Tracker, TrackerSettings
from landscape.training.sinks import scalar_metrics


class ListSink:
    def __init__(self):
        self.records = []

    def log(self, record):
        self.records.append(dict(record))


def test_scalar_metrics_names_each_number_and_leaves_out_text_and_the_density_quadrature():
    record = {"step": 3, "instrument": "top_eigen", "tracker": "fisher", "eigenvalues": [2.0, 1.0],
              "converged": True, "method": "lanczos", "nodes": [[0.1, 0.2]], "weights": [[0.5, 0.5]], "matvecs": 7}
    assert scalar_metrics(record, "curv") == {
        "curv/fisher/top_eigen/eigenvalues_0": 2.0, "curv/fisher/top_eigen/eigenvalues_1": 1.0,
        "curv/fisher/top_eigen/converged": 1.0, "curv/fisher/top_eigen/matvecs": 7.0}


def test_a_tracker_with_sinks_and_no_run_writes_each_record_to_every_sink_once(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    model = nn.Linear(3, 2)
    first, second = ListSink(), ListSink()
    tracker = Tracker(nn.functional.cross_entropy, (torch.randn(8, 3), torch.arange(8) % 2), model=model,
                      instruments=("top_eigen",), schedule=2, sinks=[first, second],
                      settings=TrackerSettings(top_k=1))
    returned = [r for step in range(5) for r in tracker.step(step)] + tracker.step(4)   # step 4 asked twice
    assert [r["step"] for r in first.records] == [0, 2, 4]
    assert first.records == second.records == returned
    assert list(tmp_path.iterdir()) == []   # no file written anywhere


def test_tracker_refuses_a_sink_without_log_and_a_tracker_with_nowhere_to_write():
    data = (torch.randn(4, 3), torch.arange(4) % 2)
    with pytest.raises(TypeError, match="log"):
        Tracker(nn.functional.cross_entropy, data, sinks=[print])
    with pytest.raises(ValueError, match="sinks"):
        Tracker(nn.functional.cross_entropy, data, model=nn.Linear(3, 2)).step(0)
