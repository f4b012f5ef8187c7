"""Language-model scoring shared by the probes: chat prompts, option log-likelihoods, greedy one-line answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model.chat import chat_text

SYSTEM = "You are a helpful assistant."


def chat_ids(tokenizer, question: str, system: str = SYSTEM) -> list[int]:
    """Token ids of ``question`` as one user turn through the tokenizer's chat template, ready for the answer."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    text = chat_text(tokenizer, messages, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids, mask


@torch.no_grad()
def continuation_logprobs(model, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
                          pad_token_id: int, batch_size: int = 16) -> list[float]:
    """Sum of log-probabilities of each ``continuations[i]``'s tokens after ``prompts[i]`` (one float per pair).

    Pairs are left-padded in length-sorted batches (position ids count real tokens only), and the LM head runs on
    the last ``max continuation + 1`` positions only.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if any(len(c) == 0 for c in continuations):
        raise ValueError("an empty continuation has no likelihood to score")
    device = next(model.parameters()).device
    seqs = [[*p, *c] for p, c in zip(prompts, continuations)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = [0.0] * len(seqs)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = _left_pad([seqs[i] for i in chunk], pad_token_id)
        keep = max(len(continuations[i]) for i in chunk) + 1
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=keep).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, keep-1, V): position j predicts the token after it
        for row, i in enumerate(chunk):
            n = len(continuations[i])
            targets = torch.tensor(continuations[i], device=device)
            out[i] = float(logp[row, keep - 1 - n :].gather(1, targets[:, None]).sum())
    return out


@torch.no_grad()
def greedy_answers(model, tokenizer, questions: Sequence[str], max_new_tokens: int = 24) -> list[str]:
    """Greedy answers (no sampling) to each question, cut at the end-of-turn token; special tokens (SID codes a
    model may emit) are kept in the text."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    ids, mask = _left_pad([chat_ids(tokenizer, q) for q in questions], tokenizer.pad_token_id)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config)
    answers = []
    for row in gen[:, ids.shape[1]:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id)]
        answers.append(tokenizer.decode(row, skip_special_tokens=False).strip())
    return answers


@torch.no_grad()
def option_logprobs(model, prompts: Sequence[Sequence[int]], options: Sequence[Sequence[Sequence[int]]],
                    pad_token_id: int, batch_size: int = 16) -> list[list[float]]:
    """Per prompt, the sum of log-probabilities of each of its options' tokens after it: ``options[i][j]`` is option
    ``j`` of prompt ``i``; returns ``[[float] * len(options[i])]``.

    The same numbers as :func:`continuation_logprobs` over every (prompt, option) pair, but each prompt is prefilled
    once (left-padded, length-sorted batches of ``batch_size`` prompts) and its KV cache copied to its options,
    which are then run right-padded after it.
    """
    from transformers import DynamicCache

    if len(prompts) != len(options):
        raise ValueError(f"{len(prompts)} prompts but {len(options)} option lists")
    if any(len(o) == 0 for opts in options for o in opts):
        raise ValueError("an empty option has no likelihood to score")
    device = next(model.parameters()).device
    body, head = model.base_model, model.get_output_embeddings()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[float]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = (t.to(device) for t in _left_pad([prompts[i] for i in chunk], pad_token_id))
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        res = body(input_ids=ids, attention_mask=mask, position_ids=positions, cache=DynamicCache(config=model.config),
                   use_cache=True)
        first = torch.log_softmax(head(res.last_hidden_state[:, -1]).float(), -1)  # (B, V): an option's 1st token
        rows = [(b, o) for b, i in enumerate(chunk) for o in options[i]]
        rep = torch.tensor([b for b, _ in rows], device=device)
        cache = res.cache
        cache.reorder_cache(rep)
        width = max(len(o) for _, o in rows)
        cids = torch.full((len(rows), width), pad_token_id, dtype=torch.long, device=device)
        cmask = torch.zeros_like(cids)
        for m, (_, o) in enumerate(rows):
            cids[m, : len(o)] = torch.tensor(list(o), device=device)
            cmask[m, : len(o)] = 1
        cpos = positions[rep, -1:] + 1 + torch.arange(width, device=device)[None, :]
        hidden = body(input_ids=cids, attention_mask=torch.cat([mask[rep], cmask], 1), position_ids=cpos,
                      cache=cache, use_cache=True).last_hidden_state  # (M, width, H)
        rest = torch.log_softmax(head(hidden[:, :-1]).float(), -1)  # (M, width-1, V): token k+1 of each option
        for m, (b, o) in enumerate(rows):
            tail = rest[m, : len(o) - 1].gather(1, cids[m, 1 : len(o), None]).sum() if len(o) > 1 else 0.0
            out[chunk[b]].append(float(first[b, o[0]] + tail))
    return out
