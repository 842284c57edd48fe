"""The Lightning callback: real Lightning training on the CPU, records checked against dense Hessians of the
weights at each measured step, the training unchanged by the measurements, and the numbers in the trainer's
own loggers (CSV, TensorBoard)."""
import json

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from landscape import Hessian, Tracker, TrackerSettings
from landscape.integrations.lightning import LandscapeCallback
from landscape.integrations.tensorboard import TensorBoardSink

SETTINGS = TrackerSettings(top_k=2, eig_tol=1e-8, eig_max_matvecs=300, trace_matvecs=4)


class Classifier(pl.LightningModule):
    """A small MLP with dropout (so that the random state matters to training)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class Snapshots(pl.Callback):
    """The weights and the module's mode after each step, seen after the landscape callback ran."""

    def __init__(self):
        self.weights, self.modes = {}, []

    def on_train_start(self, trainer, pl_module):
        self.weights[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.modes.append(pl_module.training)


def _fit(tmp_path, callbacks, steps=6):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Classifier()
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=CSVLogger(tmp_path), callbacks=callbacks,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(module, loader)
    return module, trainer


def test_lightning_callback_records_the_top_eigenvalues_of_the_weights_at_each_scheduled_step(tmp_path, one_thread):
    held = (torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3)
    tracker = Tracker(nn.functional.cross_entropy, held, instruments=("top_eigen", "trace"), schedule=2,
                      settings=SETTINGS, dtype=torch.float64)
    snapshots = Snapshots()
    module, trainer = _fit(tmp_path, [LandscapeCallback(tracker), snapshots])

    records = [json.loads(line) for line in (tmp_path / "lightning_logs" / "version_0" / "metrics.jsonl").open()]
    assert [(r["step"], r["instrument"]) for r in records] == [
        (s, name) for s in (0, 2, 4, 6) for name in ("top_eigen", "trace")]
    for record in records:
        if record["instrument"] != "top_eigen":
            continue
        probe = Classifier().double()
        probe.load_state_dict(snapshots.weights[record["step"]])
        dense = Hessian(probe.eval(), nn.functional.cross_entropy, held).to_dense()
        exact = torch.linalg.eigvalsh(dense).flip(0)[:2]
        torch.testing.assert_close(torch.tensor(record["eigenvalues"], dtype=torch.float64), exact,
                                   rtol=1e-6, atol=1e-8)
    assert all(snapshots.modes), "the module left in eval mode after a measurement"

    logged = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = logged[0].split(",")
    column, steps = header.index("landscape/top_eigen/eigenvalues_0"), header.index("step")
    logged_values = {int(row.split(",")[steps]): float(row.split(",")[column])
                     for row in logged[1:] if row.split(",")[column]}
    assert logged_values == {r["step"]: r["eigenvalues"][0] for r in records if r["instrument"] == "top_eigen"}


def test_lightning_training_with_the_callback_ends_bit_identical_to_training_without(tmp_path, one_thread):
    held = (torch.randn(16, 4), torch.arange(16) % 3)
    tracker = Tracker(nn.functional.cross_entropy, held, instruments=("top_eigen",), schedule=1,
                      settings=SETTINGS)
    tracked, _ = _fit(tmp_path / "tracked", [LandscapeCallback(tracker)])
    plain, _ = _fit(tmp_path / "plain", [])
    for (name, a), b in zip(tracked.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name


def test_lightning_tensorboard_logger_gets_the_scalars_and_a_tensorboard_sink_the_density(tmp_path, one_thread):
    logger = TensorBoardLogger(tmp_path)
    held = (torch.randn(16, 4), torch.arange(16) % 3)
    tracker = Tracker(nn.functional.cross_entropy, held, instruments=("top_eigen", "density"), schedule=3,
                      settings=TrackerSettings(top_k=1, density_steps=10, density_runs=2),
                      sinks=[TensorBoardSink(logger.experiment)])
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(32, 4), torch.arange(32) % 3),
                                         batch_size=8)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=logger, callbacks=[LandscapeCallback(tracker)],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Classifier(), loader)
    logger.experiment.flush()

    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    records = [json.loads(line) for line in (tmp_path / "lightning_logs" / "version_0" / "metrics.jsonl").open()]
    top = {r["step"]: r["eigenvalues"][0] for r in records if r["instrument"] == "top_eigen"}
    logged = {e.step: e.value for e in events.Scalars("landscape/top_eigen/eigenvalues_0")}
    assert logged.keys() == top.keys() == {0, 3}
    assert all(abs(logged[s] - top[s]) <= 1e-6 * abs(top[s]) for s in top)
    assert [h.step for h in events.Histograms("landscape/density/eigenvalues")] == [0, 3]


def test_lightning_with_gradient_accumulation_measures_each_optimizer_step_once_and_warm(tmp_path, one_thread):
    held = (torch.randn(16, 4), torch.arange(16) % 3)
    tracker = Tracker(nn.functional.cross_entropy, held, instruments=("top_eigen",), schedule=1,
                      settings=TrackerSettings(top_k=1), run=tmp_path / "curvature")
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(32, 4), torch.arange(32) % 3),
                                         batch_size=4)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", accumulate_grad_batches=2, logger=False,
                         callbacks=[LandscapeCallback(tracker)], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Classifier(), loader)
    records = [json.loads(line) for line in (tmp_path / "curvature" / "metrics.jsonl").open()]
    assert [(r["step"], r["warm"]) for r in records] == [(0, False), (1, True), (2, True), (3, True)]
