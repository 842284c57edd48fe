import json

import pytest
import torch
from torch import nn

from landscape.foundation.runs import Run, RunConfigError
from landscape.operators import Hessian
from landscape.pruning import (PruningHparams, control_dir, iterative_magnitude_pruning, load_imp, prune_to_density,
                               pruning_distance, round_dir, run_masks)
from landscape.training import Hparams, load_model
import landscape.pruning.imp as imp_module

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = {"train_size": 64, "test_size": 32, "input_dim": 8, "num_classes": 3}


def _hparams(**changes):
    values = dict(model="mlp", model_kwargs={"widths": [12]}, data="teacher_student", data_kwargs=DATA, batch_size=16,
                  steps="8it", lr=0.1, momentum=0.9, weight_decay=0.01, eval_every=0, checkpoint_every=0)
    return Hparams(**{**values, **changes})


def test_densities_are_exactly_round_n_times_0_8_to_the_n(tmp_path):
    for scope in ("global", "layer"):
        result = iterative_magnitude_pruning(_hparams(), PruningHparams(rounds=4, scope=scope, rewind="2it"),
                                             tmp_path / scope, progress=False)
        total = result.dense.total
        assert total == 8 * 12 + 12 * 3
        for r in result.tickets:
            masks = run_masks(r.run_dir)
            if scope == "global":
                assert r.kept == int(sum(m.sum() for m in masks.values())) == round(total * 0.8 ** r.round)
            else:
                for m in masks.values():
                    assert int(m.sum()) == round(m.numel() * 0.8 ** r.round)
            assert r.density == r.kept / total
        # each round prunes among the survivors of the previous one
        for a, b in zip(result.tickets, result.tickets[1:]):
            ma, mb = run_masks(a.run_dir), run_masks(b.run_dir)
            assert not any((mb[n] & ~ma[n]).any() for n in ma)


def test_prune_to_density_keeps_the_largest_weights_and_refuses_to_revive():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
    masks = prune_to_density(model, 0.5)
    w = torch.cat([model[0].weight.abs().reshape(-1), model[2].weight.abs().reshape(-1)])
    m = torch.cat([masks["0.weight"].reshape(-1), masks["2.weight"].reshape(-1)])
    assert int(m.sum()) == round(91 * 0.5) and w[m].min() >= w[~m].max()
    with pytest.raises(ValueError, match="cannot revive"):
        prune_to_density(model, 0.6, masks)


def test_masked_weights_and_their_momentum_stay_zero_through_training(tmp_path):
    iterative_magnitude_pruning(_hparams(checkpoint_every=1), PruningHparams(rounds=2, rewind="0it"), tmp_path,
                                progress=False)
    run = Run(round_dir(tmp_path, 2))
    masks = run_masks(run.path)
    steps = run.checkpoint_steps()
    assert steps == list(range(9))
    for step in steps:
        checkpoint = run.load_checkpoint(step)
        for name, m in masks.items():
            assert torch.equal(checkpoint.model[name][~m], torch.zeros(int((~m).sum())))
        if step > 0:  # SGD momentum buffers, in parameter order (weight, bias per layer)
            buffers = checkpoint.state["optimizer"]["state"]
            for index, name in ((0, "features.1.weight"), (2, "head.weight")):
                assert torch.equal(buffers[index]["momentum_buffer"][~masks[name]],
                                   torch.zeros(int((~masks[name]).sum())))
    first, last = run.load_checkpoint(0).model, run.load_checkpoint(8).model
    assert all(not torch.equal(first[name][m], last[name][m]) for name, m in masks.items())  # kept weights trained


def test_rewinding_restores_the_step_k_state_with_batchnorm_buffers_and_a_fresh_optimizer(tmp_path):
    hp = _hparams(model="cnn1d", model_kwargs={"channels": 4, "batchnorm": True}, lr=0.05, milestones=(3,))
    k = 4
    iterative_magnitude_pruning(hp, PruningHparams(rounds=1, rewind=f"{k}it"), tmp_path, progress=False)
    dense = Run(round_dir(tmp_path, 0)).load_checkpoint(k)
    start = Run(round_dir(tmp_path, 1)).load_checkpoint(k)
    masks = run_masks(round_dir(tmp_path, 1))
    assert any("running_var" in name for name in dense.model)
    assert float(dense.model["features.1.running_mean"].abs().sum()) > 0  # the buffers moved off their init
    for name, value in dense.model.items():
        expected = value * masks[name] if name in masks else value
        assert torch.equal(start.model[name], expected), name
    assert start.state["optimizer"]["state"] == {}  # fresh optimizer: no momentum carried over
    assert start.state["lr"] == pytest.approx(hp.lr_at(k)) and hp.lr_at(k) < hp.lr  # schedule continued from k
    assert start.state["loader"]["position"] == k


def test_controls_keep_the_tickets_per_layer_sparsity(tmp_path):
    result = iterative_magnitude_pruning(
        _hparams(), PruningHparams(rounds=2, rewind="2it", scope="global", controls=("reinit", "random", "signs",
                                                                                      "supermask")),
        tmp_path, progress=False)
    for r in result.tickets:
        ticket = run_masks(r.run_dir)
        assert set(r.controls) == {"reinit", "random", "signs", "supermask"}
        for name in ("reinit", "random", "signs"):
            control = run_masks(control_dir(tmp_path, r.round, name))
            assert {n: int(m.sum()) for n, m in control.items()} == {n: int(m.sum()) for n, m in ticket.items()}
            assert r.controls[name].density == r.density
            trained = load_model(control_dir(tmp_path, r.round, name))
            params = dict(trained.named_parameters())
            for n, m in control.items():
                assert torch.equal(params[n][~m], torch.zeros(int((~m).sum())))
        random = run_masks(control_dir(tmp_path, r.round, "random"))
        assert not all(torch.equal(random[n], ticket[n]) for n in ticket)
        signs_start = Run(control_dir(tmp_path, r.round, "signs")).load_checkpoint(2).model["head.weight"]
        kept = signs_start[ticket["head.weight"]]
        assert torch.allclose(kept.abs(), kept.abs()[0].expand_as(kept))  # one magnitude per layer
        assert r.controls["supermask"].run_dir is None and r.controls["supermask"].test.accuracy is not None


def test_rerunning_skips_finished_rounds_and_adds_only_what_is_missing(tmp_path, monkeypatch):
    pruning = PruningHparams(rounds=2, rewind="2it")
    first = iterative_magnitude_pruning(_hparams(), pruning, tmp_path, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p.name != "imp.json"}
    trained = []
    real_train = imp_module.train
    monkeypatch.setattr(imp_module, "train", lambda hp, run_dir, **kw: trained.append(run_dir) or real_train(hp, run_dir, **kw))
    again = iterative_magnitude_pruning(_hparams(), pruning, tmp_path, progress=False)
    assert trained == [] and again.rounds == first.rounds
    more = iterative_magnitude_pruning(_hparams(), PruningHparams(rounds=3, rewind="2it", controls=("random",)),
                                       tmp_path, progress=False)
    assert trained == [control_dir(tmp_path, 1, "random"), control_dir(tmp_path, 2, "random"), round_dir(tmp_path, 3),
                       control_dir(tmp_path, 3, "random")]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.name != "round.json")
    assert [r.round for r in more.rounds] == [0, 1, 2, 3] and more.rounds[1].test == first.rounds[1].test
    assert load_imp(tmp_path).rounds == more.rounds
    with pytest.raises(RunConfigError, match="rewind"):
        iterative_magnitude_pruning(_hparams(), PruningHparams(rounds=3, rewind="3it"), tmp_path, progress=False)


def test_target_density_sets_the_number_of_rounds():
    assert PruningHparams(target_density=0.5).total_rounds == 4      # 0.8^3 = 0.512 > 0.5 >= 0.8^4
    assert PruningHparams(target_density=0.64).total_rounds == 2     # 0.8^2 = 0.64 exactly
    assert PruningHparams(rounds=3).total_rounds == 3
    with pytest.raises(ValueError, match="unknown controls"):
        PruningHparams(controls=("lucky",))


def test_pruning_distance_is_the_masked_l2_distance():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    masks = {"weight": torch.rand(3, 4) > 0.5}
    got = pruning_distance(a, b, masks)
    m = masks["weight"].double()
    squared = (((a.weight - b.weight).double() * m) ** 2).sum() + ((a.bias - b.bias).double() ** 2).sum()
    norm = ((b.weight.double() * m) ** 2).sum() + (b.bias.double() ** 2).sum()
    assert got.distance == pytest.approx(float(squared.sqrt()), rel=1e-12)
    assert got.relative == pytest.approx(float(squared.sqrt() / norm.sqrt()), rel=1e-12)
    assert pruning_distance(a, a, masks).distance == 0.0


def test_restricted_hessian_is_the_principal_submatrix_on_surviving_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    masks = prune_to_density(model, 0.6)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in masks:
                p.mul_(masks[name])
    loss_fn = nn.CrossEntropyLoss()
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(flat):
        pieces = dict(zip(names, torch.split(flat, [params[n].numel() for n in names])))
        return loss_fn(torch.func.functional_call(model, {n: pieces[n].reshape(params[n].shape) for n in names}, (x,)), y)

    full = torch.func.hessian(loss)(torch.cat([params[n].reshape(-1) for n in names]))
    keep = torch.cat([masks[n].reshape(-1) if n in masks else torch.ones(params[n].numel(), dtype=torch.bool)
                      for n in names])
    restricted = Hessian(model, loss_fn, (x, y), masks=masks).to_dense()
    assert restricted.shape == (int(keep.sum()),) * 2 and int(keep.sum()) < keep.numel()
    torch.testing.assert_close(restricted, full[keep][:, keep], rtol=1e-10, atol=1e-12)


def test_cli_prune_runs_end_to_end_and_resumes(tmp_path, capsys):
    from landscape.cli import main
    from landscape.cli import prune
    assert "\n" not in prune.HELP
    argv = ["--model", "mlp", "--model-kwargs", "widths=[12]", "--data", "teacher_student", "--data-kwargs",
            "train_size=64", "test_size=32", "input_dim=8", "num_classes=3", "--batch-size", "16", "--steps", "6it",
            "--eval-every", "0", "--rounds", "2", "--rewind", "2it", "--controls", "random,supermask",
            "--scope", "layer", "--out", str(tmp_path / "imp"), "--no-progress"]
    assert main(["prune", *argv]) == 0
    out = capsys.readouterr().out
    assert "rewind to step 2" in out and "random" in out and "supermask" in out
    lines = [l for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert [l.split()[0] for l in lines] == ["0", "1", "2"] and "63.64%" in lines[2]  # 61 of 96 + 23 of 36
    result = load_imp(tmp_path / "imp")
    assert result.pruning.scope == "layer" and result.rewind_step == 2
    assert set(result.rounds[2].controls) == {"random", "supermask"}
    saved = json.loads((tmp_path / "imp" / "imp.json").read_text())
    assert saved["hparams"]["model_kwargs"] == {"widths": [12]} and saved["pruning"]["rounds"] == 2
    assert main(["prune", *argv]) == 0
    assert capsys.readouterr().out == out


def test_imp_never_moves_a_model_to_the_host_in_place(tmp_path, monkeypatch):
    moved = []
    real = nn.Module.cpu
    monkeypatch.setattr(nn.Module, "cpu", lambda self: moved.append(type(self).__name__) or real(self))
    iterative_magnitude_pruning(_hparams(), PruningHparams(rounds=1, rewind="2it"), tmp_path, progress=False)
    assert not moved, f"Module.cpu() called on {moved}"


def test_pruning_distance_and_pruning_leave_the_models_tensors_where_and_what_they_were():
    torch.manual_seed(0)
    a, b = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    before = [(p, p.device, p.dtype, p.data_ptr(), p.detach().clone()) for p in (*a.parameters(), *b.parameters())]
    masks = prune_to_density(a, 0.5)
    pruning_distance(a, b, masks)
    after = list((*a.parameters(), *b.parameters()))
    for (p, device, dtype, pointer, values), q in zip(before, after):
        assert q is p and q.device == device and q.dtype == dtype and q.data_ptr() == pointer
        assert torch.equal(q, values)
