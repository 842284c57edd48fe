"""`landscape analyze` on a user's own step_*.pt files, model and data, from the user's folder (issue 16, 3)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from landscape.analysis.analyze import AnalyzeSettings, analyze, checkpoint_files
from landscape.cli import main
from landscape.foundation.runs import checkpoint_step, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

BUDGET = ["--samples", "24", "--eigenvalues", "2", "--max-matvecs", "60", "--trace-matvecs", "6",
          "--density-steps", "8", "--density-runs", "2", "--points", "3", "--no-progress"]

USER_MODULE = '''
    import torch
    from torch import nn

    def make(width=8):
        return nn.Sequential(nn.Linear(6, width), nn.Tanh(), nn.Linear(width, 3))

    def data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 6, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        return {"train": (x[:32], y[:32]), "test": (x[32:], y[32:])}
'''


def _train_and_save(module, folder):
    """What the user's training script does: train, and save step_*.pt (a plain state dict, or a dict with the
    step beside the model)."""
    torch.manual_seed(0)
    model, (x, y) = module["make"](), module["data"]()["train"]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(301):
        if step in (0, 20, 100, 300):
            torch.save({"model": model.state_dict(), "step": step} if step == 20 else model.state_dict(),
                       folder / f"step_{step}.pt")
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.fixture
def user_folder(tmp_path, monkeypatch, request):
    """A folder with the user's module (a unique name per test, so no import is reused) and its checkpoints."""
    name = f"usermod_{request.node.name}"
    source = textwrap.dedent(USER_MODULE)
    (tmp_path / f"{name}.py").write_text(source)
    namespace: dict = {}
    exec(source, namespace)
    _train_and_save(namespace, tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path, name


def test_a_glob_of_user_checkpoints_is_analysed_in_step_order_with_the_users_module(user_folder, capsys):
    folder, name = user_folder
    glob = sorted(str(p.name) for p in folder.glob("step_*.pt"))     # what the shell passes: alphabetical
    assert glob == ["step_0.pt", "step_100.pt", "step_20.pt", "step_300.pt"]
    assert str(folder) not in sys.path
    code = main(["analyze", *glob, "--model", f"{name}:make", "--data", f"{name}:data", "--out", "out", *BUDGET])
    assert code == 0
    printed = capsys.readouterr().out
    assert "data:    user data from" in printed and "32 train, 8 test" in printed
    saved = json.loads((folder / "out" / "analysis.json").read_text())
    assert [c["step"] for c in saved["checkpoints"]] == [0, 20, 100, 300]
    assert [c["label"] for c in saved["checkpoints"]] == ["step 0", "step 20", "step 100", "step 300"]
    assert [(p["a"], p["b"]) for p in saved["pairs"]] == [("step 0", "step 20"), ("step 20", "step 100"),
                                                          ("step 100", "step 300")]
    assert saved["checkpoints"][-1]["train_loss"] < saved["checkpoints"][0]["train_loss"]
    assert "Data: user data from" in (folder / "out" / "report.md").read_text()


def test_the_console_script_imports_the_users_module_from_the_current_folder(user_folder):
    folder, name = user_folder
    result = subprocess.run(["landscape", "analyze", "step_300.pt", "--model", f"{name}:make",
                             "--model-kwargs", "width=8", "--data", f"{name}:data", "--out", "out", *BUDGET],
                            cwd=folder, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "analysed 1 checkpoints and 0 paths" in result.stdout


def test_without_model_and_data_the_error_names_the_options(user_folder, capsys):
    assert main(["analyze", "step_0.pt", "--out", "out", *BUDGET]) == 2
    error = capsys.readouterr().err
    assert "--model" in error and "--data" in error and "config.json" in error
    assert main(["analyze", "step_0.pt", "--model", f"{user_folder[1]}:make", "--out", "out", *BUDGET]) == 2
    assert "--data (data=) is missing" in capsys.readouterr().err
    assert main(["analyze", "step_0.pt", "--model", "no_such_module:make", "--data", "digits", "--out", "out"]) == 2
    assert "cannot import 'no_such_module:make'" in capsys.readouterr().err
    assert main(["analyze", "step_0.pt", "--model", f"{user_folder[1]}:nope", "--data", "digits", "--out", "o"]) == 2
    assert "has no 'nope'; it defines" in capsys.readouterr().err


def test_registry_data_say_whose_split_they_use_and_the_split_is_an_option(tmp_path, capsys):
    torch.manual_seed(0)
    from landscape.models.registry import build_model

    model = build_model("mlp", (64,), 10, widths=[4])
    torch.save(model.state_dict(), tmp_path / "step_5.pt")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "step_5.pt"), "--model", "mlp", "--model-kwargs", "widths=[4]", "--data",
                 "digits", "--split", "test", "--out", str(out), *BUDGET]) == 0
    printed = capsys.readouterr().out
    assert "the registry's split" in printed and "1438 train / 359 test" in printed
    assert "first 24 samples of the test split" in printed
    saved = json.loads((out / "analysis.json").read_text())
    assert saved["checkpoints"][0]["step"] == 5 and saved["settings"]["split"] == "test"
    assert main(["analyze", str(tmp_path / "step_5.pt"), "--model", "mlp", "--data", "digits", "--split", "val",
                 "--out", str(out)]) == 2
    assert "split must be 'train' or 'test'" in capsys.readouterr().err


def test_checkpoint_steps_are_read_from_the_file_or_its_name(tmp_path):
    state = torch.nn.Linear(2, 2).state_dict()
    torch.save(state, tmp_path / "step_300.pt")
    torch.save({"model": state, "step": 300}, tmp_path / "final.pt")
    torch.save({"state_dict": state, "step": torch.tensor(40)}, tmp_path / "ckpt-step12.pth")
    torch.save(state, tmp_path / "weights.pt")
    assert [load_checkpoint(tmp_path / f).step for f in ("step_300.pt", "final.pt", "ckpt-step12.pth", "weights.pt")] \
        == [300, 300, 40, None]
    assert [checkpoint_step(tmp_path / f) for f in ("step_300.pt", "final.pt", "ckpt-step12.pth", "weights.pt")] \
        == [300, 300, 40, None]
    files = [tmp_path / f for f in ("step_300.pt", "ckpt-step12.pth", "final.pt")]
    assert checkpoint_files(files)[:2] == [tmp_path / "ckpt-step12.pth", tmp_path / "step_300.pt"]
    with_unknown = [tmp_path / "step_300.pt", tmp_path / "weights.pt", tmp_path / "ckpt-step12.pth"]
    assert checkpoint_files(with_unknown) == with_unknown       # an unknown step: the order given


@pytest.mark.parametrize("model,model_kwargs,data,data_kwargs,blocks", [
    ("resnet18", {"width": 2}, "synthetic_cifar", {"train_size": 16, "test_size": 8}, ""),
    ("gpt2", {"n_layer": 2, "n_embd": 16, "n_head": 2}, "tokens",
     {"train_size": 8, "test_size": 4, "seq_len": 8, "vocab_size": 16}, "transformer"),
])
def test_registry_architectures_analyse_with_per_block_spectra(tmp_path, model, model_kwargs, data, data_kwargs,
                                                               blocks):
    from landscape.data import load_dataset
    from landscape.models.registry import build_model

    dataset = load_dataset(data, **data_kwargs)
    torch.manual_seed(0)
    net = build_model(model, dataset.input_shape, dataset.output_dim, **model_kwargs)
    torch.save(net.state_dict(), tmp_path / "step_0.pt")
    settings = AnalyzeSettings(samples=8, eigenvalues=2, eig_tol=1e-2, max_matvecs=60, trace_matvecs=6,
                               density_steps=6, density_runs=2, points=3, blocks=blocks)
    result = analyze(tmp_path / "step_0.pt", model=model, model_kwargs=model_kwargs, data=data,
                     data_kwargs=data_kwargs, out_dir=tmp_path / "out", settings=settings, progress=False)
    checkpoint, = result.checkpoints
    assert checkpoint["weights"] == sum(p.numel() for p in net.parameters()) and checkpoint["eigs_converged"]
    if not blocks:
        return
    names = [b["name"] for b in checkpoint["blocks"]["blocks"]]
    assert "lm.transformer.h.1 attention" in names
    assert sum(b["dim"] for b in checkpoint["blocks"]["blocks"]) == checkpoint["weights"]
    assert "block_spectra" in result.figures and "Per-block Hessian spectra" in result.report_path.read_text()


@pytest.mark.skipif(__import__("importlib").util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_data_without_torchvision_is_a_named_cli_error(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "step_0.pt")
    assert main(["analyze", str(tmp_path / "step_0.pt"), "--model", "resnet18", "--data", "torchvision:CIFAR10",
                 "--data-kwargs", f"root={tmp_path}", "--out", str(tmp_path / "out")]) == 2
    assert "needs torchvision, which cannot be imported" in capsys.readouterr().err


def test_barriers_without_class_labels_are_reported_in_nats_not_percentage_points():
    from landscape.analysis.report import _barrier

    loss_only = {"test_error": None, "train_error": None, "barrier": 0.5, "frankle_barrier": 0.25}
    classified = {"test_error": [0.1, 0.2], "train_error": None, "barrier": 0.05}
    assert _barrier(loss_only, "barrier") == "0.5 nats" and _barrier(loss_only, "frankle_barrier") == "0.25 nats"
    assert _barrier(classified, "barrier") == "5.00 pp"


def test_a_torch_dataset_is_data_for_analyze(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    torch.save(model.state_dict(), tmp_path / "step_1.pt")
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    settings = AnalyzeSettings(samples=20, eigenvalues=1, max_matvecs=30, trace_matvecs=4, density_steps=4,
                               density_runs=2, points=3)
    result = analyze(tmp_path / "step_1.pt", model=model, out_dir=tmp_path / "out", settings=settings, progress=False,
                     data={"train": torch.utils.data.TensorDataset(x, y), "test": (x[:5], y[:5])})
    checkpoint, = result.checkpoints
    expected = torch.nn.functional.cross_entropy(model(x), y).item()
    assert checkpoint["train_loss"] == pytest.approx(expected, rel=1e-6) and checkpoint["step"] == 1
    assert "user data from dict: 20 train, 5 test samples" in result.data


def test_user_token_sequences_get_the_next_token_loss(tmp_path):
    from landscape.models.language import next_token_loss
    from landscape.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("gpt2", (6,), 12, n_layer=1, n_embd=8, n_head=2)
    torch.save(model.state_dict(), tmp_path / "step_3.pt")
    ids = torch.randint(0, 12, (10, 6), generator=torch.Generator().manual_seed(0))
    settings = AnalyzeSettings(samples=10, eigenvalues=1, max_matvecs=30, trace_matvecs=4, density_steps=4,
                               density_runs=2, points=3)
    result = analyze(tmp_path / "step_3.pt", model=model, data=(ids, ids), out_dir=tmp_path / "out",
                     settings=settings, progress=False)
    with torch.no_grad():
        expected = next_token_loss(model.eval()(ids), ids).item()
    assert result.checkpoints[0]["train_loss"] == pytest.approx(expected, rel=1e-5)
