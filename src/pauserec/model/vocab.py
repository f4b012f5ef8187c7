"""Vocabulary extension: SID tokens, pause tokens and other markers as new, never-split tokens.

Every new token is added as an *extra special token* (``AddedToken(special=True, normalized=False)``): the tokenizer
matches it as a whole before any pre-tokenization, so ``"<a_12><b_3>"`` is exactly two ids with nothing inserted
between them, and decoding gives the text back. (Being special, they are dropped by
``decode(..., skip_special_tokens=True)``: decode SIDs from ids, or with ``skip_special_tokens=False``.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import torch

from ..errors import ArtifactMismatchError

if TYPE_CHECKING:
    from ..sid.catalog import SIDCatalog

_SID_RE = re.compile(r"^<([a-p])_(\d+)>$")


def _reference_stats(weight: torch.Tensor, n_ref: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref = weight[:n_ref].detach().float()
    return ref.mean(dim=0), ref.std(dim=0)


@torch.no_grad()
def extend_vocabulary(
    model,
    tokenizer,
    new_tokens: list[str],
    *,
    init: Literal["mean", "mean_noise"] = "mean_noise",
    noise_std: float = 0.02,
    seed: int = 0,
) -> list[int]:
    """Add ``new_tokens`` to the tokenizer and the model; return their ids, in the order given.

    Tokens are added as extra special tokens (never split, never normalized). The embedding matrix is resized to
    ``max(current rows, len(tokenizer))`` (``mean_resizing=False``; it never shrinks, so a model whose matrix is
    padded beyond its tokenizer keeps its padding), and the rows of the newly added tokens are set here:

    * input embedding row = mean of the existing tokens' rows, plus (``init="mean_noise"``) Gaussian noise with
      per-dimension standard deviation ``noise_std`` x the standard deviation of the existing rows in that
      dimension, drawn from a generator seeded with ``seed``. The mean keeps the new tokens' initial logits and
      hidden states in the model's usual range (random rows at the init scale of a trained model can dominate the
      softmax); the small noise breaks the exact ties between the new tokens, so they are distinguishable (and
      receive different gradients) from the first step. ``init="mean"`` gives exact ties.
    * output (``lm_head``) row, only when untied: the same rule over the existing output rows (own noise draw);
      a bias, if any, gets the mean existing bias. When tied, the output rows are the input rows.

    Idempotent: tokens already in the tokenizer are not added again and their rows are not re-initialised
    (their ids are still returned).

    Returns:
        ids of ``new_tokens`` in order (duplicates in the input map to the same id).

    Raises:
        ValueError: a token does not encode to exactly its one id after adding (tokenizer misbehaves).
    """
    from tokenizers import AddedToken

    if init not in ("mean", "mean_noise"):
        raise ValueError(f"init must be 'mean' or 'mean_noise', got {init!r}")
    unique = list(dict.fromkeys(new_tokens))
    vocab = tokenizer.get_vocab()
    to_add = [t for t in unique if t not in vocab]
    emb = model.get_input_embeddings()
    n_rows_before = emb.weight.shape[0]
    n_ref = min(n_rows_before, len(tokenizer))  # rows of tokens that existed before this call
    if to_add:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False,
                                                 single_word=False) for t in to_add]},
            replace_extra_special_tokens=False,
        )
    vocab = tokenizer.get_vocab()
    ids = [vocab[t] for t in new_tokens]
    added_ids = sorted({vocab[t] for t in to_add})
    # rows beyond the old matrix must be initialised too (a tokenizer that already knew tokens the model did not)
    init_ids = sorted(set(added_ids) | {i for i in ids if i >= n_rows_before})
    new_size = max(n_rows_before, len(tokenizer))
    if new_size != n_rows_before:
        model.resize_token_embeddings(new_size, mean_resizing=False)

    if init_ids:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.tensor(init_ids, dtype=torch.long)
        in_w = model.get_input_embeddings().weight
        mean, std = _reference_stats(in_w, n_ref)
        rows = mean.expand(len(init_ids), -1).clone()
        if init == "mean_noise":
            rows += torch.randn(rows.shape, generator=gen) * std * noise_std
        in_w[idx] = rows.to(in_w.dtype)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != in_w.data_ptr():
            mean, std = _reference_stats(out.weight, n_ref)
            rows = mean.expand(len(init_ids), -1).clone()
            if init == "mean_noise":
                rows += torch.randn(rows.shape, generator=gen) * std * noise_std
            out.weight[idx] = rows.to(out.weight.dtype)
            if getattr(out, "bias", None) is not None:
                out.bias[idx] = out.bias[:n_ref].mean().to(out.bias.dtype)

    if to_add:
        _check_single_tokens(tokenizer, unique, [vocab[t] for t in unique])
    return ids


def _check_single_tokens(tokenizer, tokens: list[str], ids: list[int]) -> None:
    enc = tokenizer("".join(tokens), add_special_tokens=False)["input_ids"]
    if enc != ids:
        bad = next(
            (t for t, i in zip(tokens, ids) if tokenizer(t, add_special_tokens=False)["input_ids"] != [i]), None
        )
        raise ValueError(
            f"after adding, the new tokens do not encode one id each (first offender: {bad!r}); "
            "this tokenizer splits or normalizes added tokens"
        )


def token_ids_by_level(tokenizer, catalog: SIDCatalog) -> list[torch.Tensor]:
    """Per SID level, the token ids of codes ``0..C_level-1``: a list of ``LongTensor`` of shape ``(C_level,)``.

    Raises:
        ArtifactMismatchError: a level token is missing from the tokenizer.
    """
    vocab = tokenizer.get_vocab()
    out = []
    for level in range(catalog.n_levels):
        toks = catalog.level_tokens(level)
        missing = [t for t in toks if t not in vocab]
        if missing:
            raise ArtifactMismatchError(
                f"the tokenizer lacks {len(missing)} SID token(s) of level {level} (e.g. {missing[:3]}); "
                "extend the vocabulary with this catalogue, or use the checkpoint trained on it"
            )
        out.append(torch.tensor([vocab[t] for t in toks], dtype=torch.long))
    return out


def sid_level_sizes_in_tokenizer(tokenizer) -> list[int]:
    """Level sizes implied by the SID tokens (``<a_0>``, ``<b_17>``...) a tokenizer holds: ``max code + 1`` per
    level letter, in level order, up to the last level present."""
    max_code: dict[int, int] = {}
    for tok in tokenizer.get_vocab():
        m = _SID_RE.match(tok)
        if m:
            level = ord(m.group(1)) - ord("a")
            max_code[level] = max(max_code.get(level, -1), int(m.group(2)))
    if not max_code:
        return []
    return [max_code.get(level, -1) + 1 for level in range(max(max_code) + 1)]


def check_vocabulary(tokenizer, catalog: SIDCatalog, pause_tokens: list[str]) -> None:
    """Check that a (checkpoint's) tokenizer fits a catalogue and a pause setting.

    Raises:
        ArtifactMismatchError: an SID or pause token is missing, or the tokenizer's SID tokens describe other level
            sizes than the catalogue's (the checkpoint was trained on another catalogue).
    """
    vocab = tokenizer.get_vocab()
    have = sid_level_sizes_in_tokenizer(tokenizer)
    want = list(catalog.level_sizes)
    if have != want:
        raise ArtifactMismatchError(
            f"the checkpoint's tokenizer has SID levels of sizes {have or 'none'}, but the SID catalogue has {want}: "
            "the checkpoint was trained on another catalogue (or its vocabulary was never extended)"
        )
    missing = [t for t in catalog.all_tokens() if t not in vocab]
    if missing:
        raise ArtifactMismatchError(
            f"the checkpoint's tokenizer lacks {len(missing)} SID token(s) of the catalogue (e.g. {missing[:3]})"
        )
    missing = [t for t in pause_tokens if t not in vocab]
    if missing:
        raise ArtifactMismatchError(
            f"the checkpoint's tokenizer lacks pause token(s) {missing}: it was trained with another pause setting "
            "(number of distinct pause tokens)"
        )
