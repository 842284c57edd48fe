"""Causal language models in the toolkit's ``(inputs, targets)`` convention.

Every instrument evaluates ``loss_fn(model(inputs), targets)``. A Hugging Face causal LM instead takes a dict
(``input_ids``, ``attention_mask``, ``labels``) and returns an output object with its own loss. This module is
the one adapter between the two (the training integrations reuse it):

* :class:`CausalLM` wraps the LM as ``input_ids (N, T) -> logits (N, T, V)``;
* :func:`next_token_loss` is the LM's loss on those logits: with ``targets`` the labels (normally the
  input ids themselves),

      L = (1 / |P|) Σ_{(i, t) ∈ P} −log softmax(logits[i, t])[labels[i, t + 1]],

  ``P`` the positions ``t < T − 1`` whose label ``labels[i, t + 1]`` is not ``-100``: exactly the shift of
  ``transformers``' ``ForCausalLMLoss`` (token ``t`` predicts token ``t + 1``), computed in the logits' dtype
  (``transformers`` casts the logits to float32 first, which would cap a float64 Hessian at float32 precision);
* :func:`lm_batch` turns a dict batch into ``(input_ids, labels)``.

Both carry ``normaliser(labels)``, the number ``|P|`` of a batch's predicted tokens, so the operators weight
batch ``b`` by ``|P_b| / Σ|P|`` (:mod:`landscape.operators.reduction`): the curvature is exactly that of the
mean over all predicted tokens of the data, whatever the batches' sizes and ``-100`` labels. Batches padded
through an ``attention_mask`` are refused by :func:`lm_batch` (label the padding ``-100`` instead).
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

IGNORE_INDEX = -100


class CausalLM(nn.Module):
    """``input_ids (N, T) -> logits (N, T, V)`` for a causal LM whose ``forward(input_ids=...)`` returns an
    object with ``.logits`` (Hugging Face ``*ForCausalLM``) or a tuple starting with the logits. The wrapped
    model is ``self.lm`` (its parameter names gain the prefix ``lm.``); tied weights (GPT-2's ``lm_head`` and
    ``wte``) stay one parameter."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: Tensor) -> Tensor:
        if input_ids.is_floating_point():
            raise TypeError(f"a causal LM takes integer token ids, got {input_ids.dtype} inputs")
        out = self.lm(input_ids=input_ids, use_cache=False)
        return out.logits if hasattr(out, "logits") else out[0]


def next_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy of ``logits (N, T, V)`` against ``labels (N, T)`` (see the module
    docstring; labels ``-100`` are skipped), in nats per predicted token."""
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"next_token_loss takes logits (N, T, V) and labels (N, T), got shapes "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[1] < 2:
        raise ValueError("sequences of one token have no next token to predict (T must be at least 2)")
    vocab = logits.shape[-1]
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1),
                                       ignore_index=IGNORE_INDEX)


def predicted_tokens(labels: Tensor) -> Tensor:
    """``|P|``: how many tokens :func:`next_token_loss` averages over in a batch of ``labels (N, T)``."""
    return (labels[:, 1:] != IGNORE_INDEX).sum()


next_token_loss.normaliser = predicted_tokens


class NextTokenLoss(nn.Module):
    """:func:`next_token_loss` as a module (what ``Dataset.loss_fn()`` returns for token data)."""

    normaliser = staticmethod(predicted_tokens)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return next_token_loss(logits, labels)


def lm_batch(batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``(input_ids, labels)`` of a dict batch (``labels`` default to ``input_ids``).

    Raises:
        ValueError: no ``input_ids``, or an ``attention_mask`` with padding (see the module docstring).
    """
    if "input_ids" not in batch:
        raise ValueError(f"a language-model batch needs 'input_ids'; got keys {sorted(batch)}")
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    if mask is not None and not bool((mask != 0).all()):
        raise ValueError("the batch is padded (attention_mask has zeros): pass packed sequences of one length, or "
                         "right-pad with labels -100 and no attention_mask (a causal model's earlier tokens never "
                         "see right padding)")
    labels = batch.get("labels")
    return ids, ids if labels is None else labels
