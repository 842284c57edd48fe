"""The transformers callback: a real Trainer on a 2-layer GPT-2 (random init, no download) on the CPU, its
records checked against the dense Hessian of the model's own loss, and the training unchanged."""
import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from landscape import Hessian, TrackerSettings
from landscape.integrations.huggingface import LandscapeCallback
from landscape.models.language import CausalLM, next_token_loss

SETTINGS = TrackerSettings(top_k=2, eig_tol=1e-8, eig_max_matvecs=400)


def _gpt2():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=12, n_positions=8, n_embd=4, n_layer=2, n_head=2)   # dropout 0.1 (default)
    return GPT2LMHeadModel(config)


def _train(output_dir, callbacks, steps=4):
    model = _gpt2()
    ids = torch.randint(0, 12, (16, 6), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=4,
                             learning_rate=1e-2, report_to="none", use_cpu=True, save_strategy="no", seed=0,
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.train()
    return model, trainer


class Snapshots(TrainerCallback):
    """The weights and the model's mode after each step, seen after the landscape callback ran."""

    def __init__(self):
        self.weights, self.modes = {}, []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step] = {k: v.clone() for k, v in model.state_dict().items()}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step] = {k: v.clone() for k, v in model.state_dict().items()}
        self.modes.append(model.training)


def test_hf_callback_measures_the_hessian_of_the_models_own_loss_at_scheduled_steps(tmp_path, one_thread):
    held = torch.randint(0, 12, (3, 6), generator=torch.Generator().manual_seed(2))
    callback = LandscapeCallback.for_causal_lm({"input_ids": held, "labels": held}, instruments=("top_eigen",),
                                               schedule=2, settings=SETTINGS, dtype=torch.float64)
    snapshots = Snapshots()
    model, trainer = _train(tmp_path, [callback, snapshots])

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [0, 2, 4]
    for record in records[-1:]:   # the trained weights (a dense Hessian of 576 parameters takes a few seconds)
        probe = _gpt2().double()
        probe.load_state_dict(snapshots.weights[record["step"]])
        probe.eval()
        lm = CausalLM(probe)
        with torch.no_grad():   # the loss measured is the model's own output loss
            assert float(next_token_loss(lm(held), held)) == pytest.approx(
                float(probe(input_ids=held, labels=held).loss), rel=1e-6)
        dense = Hessian(lm, next_token_loss, (held, held)).to_dense()
        exact = torch.linalg.eigvalsh(dense).flip(0)[:2]
        torch.testing.assert_close(torch.tensor(record["eigenvalues"], dtype=torch.float64), exact,
                                   rtol=1e-6, atol=1e-8)
    assert all(snapshots.modes), "the model left in eval mode after a measurement"
    logged = {entry["step"]: entry["landscape/top_eigen/eigenvalues_0"] for entry in trainer.state.log_history
              if "landscape/top_eigen/eigenvalues_0" in entry}
    assert logged == {r["step"]: r["eigenvalues"][0] for r in records}


def test_hf_training_with_the_callback_ends_bit_identical_to_training_without(tmp_path, one_thread):
    held = torch.randint(0, 12, (2, 6))
    callback = LandscapeCallback.for_causal_lm({"input_ids": held}, instruments=("top_eigen",), schedule=1,
                                               settings=TrackerSettings(top_k=1, eig_max_matvecs=40))
    tracked, _ = _train(tmp_path / "tracked", [callback])
    plain, _ = _train(tmp_path / "plain", [])
    for (name, a), b in zip(tracked.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
