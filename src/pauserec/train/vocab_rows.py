"""Train only the vocabulary rows that can receive a gradient (``train.vocab_rows=active``).

Under the SID loss (``train.loss`` = level or trie) and with SID labels only (``direct``, ``pause``), the tied
vocabulary matrix ``W`` (V, H) of a full fine-tune gets a gradient on few rows: the tokens of the training inputs
(the chat template and the SID tokens, ~1% of SmolLM2's 49,921 rows) and the level codes the loss normalises over.
Autograd still builds that gradient dense, every step: a zeroed (V, H) fp32 tensor for the embedding's backward, the
head's (V, n) x (n, H) weight gradient, their sum, autocast's bf16 copy of ``W`` and AdamW over all V rows. On 2 CPU
cores that is ~0.5 s of a ~1.2 s default step (``benchmarks/results/profile-step.md``).

Here those rows live in one small parameter ``rows`` (R, H) (:class:`TrainedRows`), ``W`` itself is frozen and
stays the model's weight: the input embedding's output at the selected tokens comes from ``rows`` (a forward hook),
the training loss (:func:`pauserec.train.packing.tree_nll`) computes the logits of the SID codes from ``rows``,
and after every optimizer step ``rows`` is written back into ``W`` (:meth:`TrainedRows.write_back`), so validation,
checkpoints and the saved model read ``W`` unchanged. It is exact, not an approximation: a row outside the set
never has a gradient, so under AdamW without weight decay its update is exactly zero, and every selected row gets
the update it would get as part of ``W``. Where that does not hold (weight decay, a full-vocabulary loss, labels
that are not SID tokens such as a cot rationale, a policy other than ``full``, padded batches whose head is the
model's own), :func:`rows_to_train` answers None and the whole matrix trains as before.

PEFT's trainable tokens (``TrainableTokensLayer``, used by the lora/new_rows policies) are the library form of the
same idea, but they rebuild the merged (V, H) matrix in every forward, so its gradient is as dense as ``W``'s.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..arms.base import IGNORE
from ..model.head import apply_softcap
from ..model.params import embeddings_tied

ATTRIBUTE = "pauserec_trained_rows"  # the submodule's name on the model (its state is in Trainer checkpoints)


class TrainedRows(nn.Module):
    """Rows ``ids`` (R,) of the tied vocabulary matrix ``weight`` (V, H) as a trainable parameter ``rows`` (R, H).

    ``slot`` (V,) maps a token id to its row in ``rows``, or -1. ``weight`` is referenced, not registered: the
    model owns it (and saves it); this module's state is ``rows`` and its index buffers. ``padding_idx``: the
    embedding's (``nn.Embedding`` gives that token's lookups no gradient; so does :meth:`embed`)."""

    def __init__(self, weight: nn.Parameter, ids: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        self.padding_idx = padding_idx
        ids = torch.unique(ids.to(torch.long))
        self.weight = [weight]  # a list: not a registered parameter of this module
        self.rows = nn.Parameter(weight.detach()[ids].clone())
        self.register_buffer("ids", ids, persistent=True)
        slot = torch.full((weight.shape[0],), -1, dtype=torch.long)
        slot[ids] = torch.arange(len(ids))
        self.register_buffer("slot", slot, persistent=True)

    def embed(self, input_ids: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """``embedded`` (..., H), the frozen lookup of ``input_ids`` (...), with the selected tokens' rows taken
        from ``rows`` (so their gradient lands there)."""
        slot = self.slot[input_ids]
        trained = slot >= 0 if self.padding_idx is None else (slot >= 0) & (input_ids != self.padding_idx)
        picked = self.rows[slot.clamp(min=0)].to(embedded.dtype)
        return torch.where(trained.unsqueeze(-1), picked, embedded)

    def logits(self, hidden: torch.Tensor, columns: torch.Tensor, softcap: float | None = None) -> torch.Tensor:
        """``hidden`` (n, H) -> logits (n, V): the vocabulary ``columns`` (C,) (all selected) computed from
        ``rows`` (then the architecture's ``softcap``, as its head applies it), every other column ``-inf`` (the
        loss reads only ``columns``)."""
        slot = self.slot[columns]
        if bool((slot < 0).any()):
            raise ValueError("a loss column outside the trained rows: train.vocab_rows=active does not apply")
        sub = apply_softcap(hidden @ self.rows[slot].to(hidden.dtype).T, softcap)  # (n, C)
        out = torch.full((hidden.shape[0], self.slot.shape[0]), float("-inf"), dtype=sub.dtype, device=sub.device)
        return out.index_copy(1, columns, sub)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy ``rows`` into the vocabulary matrix (after every optimizer step)."""
        self.weight[0].index_copy_(0, self.ids, self.rows.to(self.weight[0].dtype))


def trained_rows(model: nn.Module) -> TrainedRows | None:
    """The model's :class:`TrainedRows`, or None where the whole vocabulary matrix trains."""
    return getattr(getattr(model, "module", model), ATTRIBUTE, None)


def rows_to_train(model: nn.Module, units: Iterable[Iterable[dict[str, list[int]]]], softmax, *,
                  policy: str, weight_decay: float, packed: bool) -> torch.Tensor | None:
    """The vocabulary rows that can receive a gradient over a whole training set, or None where the exact
    restriction does not apply (see the module docstring): every token of every input, and every SID code of
    the loss (``softmax.columns``). ``units``: the training units (lists of ``{"input_ids", "labels"}`` rows)."""
    if policy != "full" or weight_decay != 0.0 or softmax is None or not packed or not embeddings_tied(model):
        return None
    tokens: set[int] = set()
    labels: set[int] = set()
    for unit in units:
        for row in unit:
            tokens.update(row["input_ids"])
            labels.update(row["labels"])
    labels.discard(IGNORE)
    if labels and not bool(softmax.is_sid(torch.tensor(sorted(labels), dtype=torch.long)).all()):
        return None  # a label under the full-vocabulary softmax: every row gets a gradient
    codes = softmax.codes()
    return torch.unique(torch.cat([torch.tensor(sorted(tokens), dtype=torch.long), codes]))


def attach(model: nn.Module, ids: torch.Tensor) -> TrainedRows:
    """Freeze the model's tied vocabulary matrix and train its rows ``ids`` as :class:`TrainedRows` (registered on
    the model as :data:`ATTRIBUTE`, so Trainer checkpoints and resume carry them). Detach with :func:`detach`."""
    embedding = model.get_input_embeddings()
    table = TrainedRows(embedding.weight, ids, getattr(embedding, "padding_idx", None))
    embedding.weight.requires_grad_(False)
    setattr(model, ATTRIBUTE, table)

    def embed_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if not torch.is_grad_enabled():
            return None  # no gradient wanted (validation, decoding): W holds the same values
        return table.embed(args[0], output)

    table.hook = embedding.register_forward_hook(embed_hook)
    return table


def detach(model: nn.Module) -> None:
    """Write the rows back, remove the table and its hook, and make the vocabulary matrix trainable again: the
    model is the plain one (what is saved as ``RUN/model``)."""
    table = trained_rows(model)
    if table is None:
        return
    table.write_back()
    table.hook.remove()
    model.get_input_embeddings().weight.requires_grad_(True)
    delattr(getattr(model, "module", model), ATTRIBUTE)
