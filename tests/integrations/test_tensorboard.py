"""The TensorBoard sink: real event files read back, scalars equal to metrics.jsonl, the density histogram's
range and count checked against the dense Hessian, and the jsonl still plotted by ``landscape plot``."""
import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from landscape import Hessian, Tracker, TrackerSettings
from landscape.cli import main
from landscape.integrations.tensorboard import TensorBoardSink


def test_tensorboard_sink_writes_scalars_and_the_density_histogram_alongside_metrics_jsonl(tmp_path, one_thread):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()   # 26 parameters
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    loss_fn = nn.functional.cross_entropy
    sink = TensorBoardSink(tmp_path / "tb", bins=20)
    tracker = Tracker(loss_fn, (x, y), instruments=("top_eigen", "density"), schedule=1, model=model,
                      run=tmp_path / "run", sinks=[sink],
                      settings=TrackerSettings(top_k=2, eig_tol=1e-10, density_steps=30, density_runs=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    dense = {}
    for step in range(3):
        if step:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        tracker.step(step)
        dense[step] = torch.linalg.eigvalsh(Hessian(model, loss_fn, (x, y)).to_dense())
    sink.close()

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    top = [(r["step"], r["eigenvalues"]) for r in records if r["instrument"] == "top_eigen"]
    for i in range(2):
        logged = [(e.step, e.value) for e in events.Scalars(f"landscape/top_eigen/eigenvalues_{i}")]
        assert [s for s, _ in logged] == [s for s, _ in top]
        torch.testing.assert_close(torch.tensor([v for _, v in logged]),
                                   torch.tensor([values[i] for _, values in top], dtype=torch.float32))
    histograms = events.Histograms("landscape/density/eigenvalues")
    assert [h.step for h in histograms] == [0, 1, 2]
    for h in histograms:
        value = h.histogram_value
        assert abs(value.num - 26) < 1e-9 and abs(sum(value.bucket) - 26) < 1e-9   # counts of all 26 eigenvalues
        # Lanczos with more steps than the dimension finds the extreme eigenvalues: the histogram's range
        torch.testing.assert_close(torch.tensor([value.min, value.max], dtype=torch.float64),
                                   dense[h.step][[0, -1]], rtol=1e-6, atol=1e-8)

    assert main(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "figures" / "tracking.png").is_file()
