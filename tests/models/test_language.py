"""The causal-LM adapter: the Hessian of a GPT-2's next-token loss is exact, tied weights counted once."""
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from landscape.data import load_dataset
from landscape.models.language import lm_batch, next_token_loss
from landscape.models.registry import build_model
from landscape.operators import Hessian

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, SEQ = 20, 6


def tiny_gpt2(n_layer: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return build_model("gpt2", (SEQ,), VOCAB, n_layer=n_layer, n_embd=8, n_head=2).double().eval()


def test_next_token_loss_is_the_loss_transformers_computes():
    model = tiny_gpt2(2)
    ids = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(1))
    ours = next_token_loss(model(ids), ids)
    theirs = model.lm(input_ids=ids, labels=ids).loss   # transformers upcasts the logits to float32
    assert torch.allclose(ours, theirs.double(), rtol=1e-6)
    labels = ids.clone()
    labels[:, 3] = -100
    assert torch.allclose(next_token_loss(model(ids), labels), model.lm(input_ids=ids, labels=labels).loss.double(),
                          rtol=1e-6)


def test_gpt2_hessian_of_next_token_loss_matches_dense_with_the_tied_embedding_counted_once():
    """Truth: the Hessian of the next-token loss written out by hand, on an untied copy of the model (separate wte
    and lm_head holding the same values), folded onto the shared weight: H_tied = S^T H S. It is computed by
    torch.autograd.functional.hessian (one double-backward per coordinate): torch.func.hessian and
    jacrev(jacrev) (vmap) return a wrong, asymmetric d(dL/dweight)/dinput block through layer_norm in
    torch 2.13, while double backward and finite differences agree."""
    model = tiny_gpt2(1)
    ids = torch.randint(0, VOCAB, (5, SEQ), generator=torch.Generator().manual_seed(2))
    H = Hessian(model, next_token_loss, (ids, ids), dtype=torch.float64)
    names = H.space.names
    assert "lm.lm_head.weight" not in names and "lm.transformer.wte.weight" in names
    assert H.shape[0] == sum(p.numel() for p in model.parameters())     # each weight once
    dense = H.to_dense()

    lm = model.lm
    params = {n.removeprefix("lm."): p.detach() for n, p in model.named_parameters()}
    params["lm_head.weight"] = params["transformer.wte.weight"]
    untied = list(params)
    sizes = [params[n].numel() for n in untied]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        values = {n: t.reshape(params[n].shape) for n, t in zip(untied, flat.split(sizes))}
        logits = functional_call(lm, values, (), {"input_ids": ids, "use_cache": False}, tie_weights=False).logits
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        return -logp.gather(-1, ids[:, 1:, None]).mean()

    with sdpa_kernel(SDPBackend.MATH):   # the fused CPU attention kernel has no forward-mode AD
        full = torch.autograd.functional.hessian(loss, torch.cat([params[n].reshape(-1) for n in untied]))
    # S: tied coordinates -> untied coordinates (the shared weight feeds both wte and lm_head)
    offsets = dict(zip(untied, torch.tensor([0, *sizes]).cumsum(0).tolist()))
    S = torch.zeros(full.shape[0], H.shape[0], dtype=torch.float64)
    column = 0
    for n in names:
        size = params[n.removeprefix("lm.")].numel()
        for target in ([n.removeprefix("lm.")] + (["lm_head.weight"] if n == "lm.transformer.wte.weight" else [])):
            S[offsets[target]:offsets[target] + size, column:column + size] = torch.eye(size, dtype=torch.float64)
        column += size
    truth = S.T @ full @ S
    assert torch.allclose(dense, truth, rtol=1e-8, atol=1e-10 * truth.abs().max())


def test_token_data_set_trains_a_gpt2_and_its_loss_is_next_token():
    data = load_dataset("tokens", train_size=64, test_size=16, seq_len=8, vocab_size=16)
    assert data.next_token and data.train[0].dtype == torch.int64 and data.train[0].shape == (64, 8)
    torch.manual_seed(0)
    model = build_model("gpt2", data.input_shape, data.output_dim, n_layer=2, n_embd=16, n_head=2)
    loss_fn = data.loss_fn()
    x, y = data.train
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.5


def test_lm_batch_takes_dict_batches_and_refuses_padding():
    ids = torch.randint(0, VOCAB, (2, SEQ))
    assert lm_batch({"input_ids": ids})[1] is ids
    labels = ids.clone()
    assert lm_batch({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})[1] is labels
    mask = torch.ones_like(ids)
    mask[0, -1] = 0
    with pytest.raises(ValueError, match="padded"):
        lm_batch({"input_ids": ids, "attention_mask": mask})
    with pytest.raises(ValueError, match="input_ids"):
        lm_batch({"ids": ids})


def test_landscape_train_runs_a_registry_gpt2_on_token_data(tmp_path):
    from landscape.training import Hparams, train

    hparams = Hparams(model="gpt2", model_kwargs={"n_layer": 1, "n_embd": 16, "n_head": 2}, data="tokens",
                      data_kwargs={"train_size": 32, "test_size": 8, "seq_len": 8, "vocab_size": 16},
                      batch_size=8, steps="4it", eval_every=0, checkpoint_every=0, optimizer="adam", lr=1e-2)
    result = train(hparams, tmp_path / "run", progress=False)
    assert result.steps == 4 and result.train.accuracy is None      # next-token loss: no class accuracy
    assert 0 < result.train.loss < 1.1 * torch.log(torch.tensor(16.0)).item()


class TinyLM(nn.Module):
    """Embedding then a linear map to the vocabulary: ``(N, T) ids -> (N, T, V) logits``."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 3)
        self.out = nn.Linear(3, VOCAB)

    def forward(self, ids):
        return self.out(torch.tanh(self.embed(ids)))


def test_hessian_over_batches_with_uneven_ignored_labels_is_that_of_the_mean_over_all_predicted_tokens():
    """Batches of 3, 2 and 1 sequences whose -100 labels leave 13, 3 and 2 predicted tokens: the operator's matrix
    is the Hessian of (1/18) sum over all 18 predicted tokens, not a mean of batch means weighted by sequences."""
    torch.manual_seed(0)
    model = TinyLM().double()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (6, SEQ), generator=gen)
    labels = ids.clone()
    labels[3:5, 2:] = -100        # the second batch predicts 3 tokens
    labels[5, 3:] = -100          # the third predicts 2
    labels[0, 4] = -100           # the first predicts 15 - 2 = 13
    batches = [(ids[:3], labels[:3]), (ids[3:5], labels[3:5]), (ids[5:], labels[5:])]
    names = [n for n, _ in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def total_mean(theta):
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[offset:offset + shape.numel()].view(shape)
            offset += shape.numel()
        logits = functional_call(model, params, (ids,))
        kept = labels[:, 1:] != -100
        per_token = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1),
                                                ignore_index=-100, reduction="none")
        return per_token.sum() / kept.sum()

    dense = torch.autograd.functional.hessian(total_mean, flat)
    H = Hessian(model, next_token_loss, batches, dtype=torch.float64)
    ours = H.matmat(torch.eye(H.shape[0], dtype=torch.float64))
    assert torch.allclose(ours, dense, rtol=1e-9, atol=1e-11)
