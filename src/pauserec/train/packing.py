"""Prefix-tree packing: train many examples in one forward pass, sharing every common prefix.

A user's sliding-window examples are ``prompt(h[:1]) + sid(h[1])``, ``prompt(h[:2]) + sid(h[2])``, ...: their
prompts share the chat template's head and the history up to each other's end, and every user's prompt shares
the head. Training them one by one recomputes those prefixes over and over (on Scientific, ~4 examples of ~56
tokens per user re-read the same ~25-token head and history). Here the sequences of a batch are merged into a
**prefix tree** (one node per distinct prefix), flattened so that every node follows its parent, and run as one
row with

* a tree attention mask: node ``j`` attends to itself and its ancestors only, and
* position ids = depth in the tree, i.e. the position the token has in each of its sequences.

Each sequence therefore sees exactly the tokens, at exactly the positions, it would see alone: the loss equals
the per-example loss up to floating point (``tests/test_packing.py``), while the shared prefixes are computed
once. Training and inference formats stay identical: the decoder still reads ``prompt + arm lead`` per user.
Nothing here knows about arms: a rationale (``cot``) or pauses are just more branch tokens.

The token at node ``j`` is predicted by the logits at its parent, not at ``j - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..arms.base import IGNORE
from ..model.head import head_logits, logit_softcap
from .batches import LabelSites
from .vocab_rows import trained_rows

ROOT = -1  # parent index of a first token


@dataclass
class PrefixTree:
    """Distinct prefixes of several ``(input_ids, labels)`` sequences, in insertion order (parents first).

    ``label_weight[j]`` counts the sequences that put a loss on node ``j`` (two users with the same history
    and the same first SID code share that labelled node; its weight keeps the loss equal to the per-example mean).
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    label_weight: list[int] = field(default_factory=list)
    _children: dict[tuple[int, int], int] = field(default_factory=dict)
    n_sequences: int = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def new_nodes(self, ids: Sequence[int]) -> int:
        """How many nodes inserting ``ids`` would add."""
        node = ROOT
        for d, token in enumerate(ids):
            child = self._children.get((node, token))
            if child is None:
                return len(ids) - d
            node = child
        return 0

    def add(self, ids: Sequence[int], labels: Sequence[int]) -> None:
        """Insert one sequence; ``labels[t]`` is ``IGNORE`` or ``ids[t]`` (the token itself is the target)."""
        if len(ids) != len(labels):
            raise ValueError(f"input_ids and labels differ in length ({len(ids)} vs {len(labels)})")
        node = ROOT
        for d, (token, label) in enumerate(zip(ids, labels)):
            child = self._children.get((node, token))
            if child is None:
                child = len(self.tokens)
                self._children[(node, token)] = child
                self.tokens.append(token)
                self.parents.append(node)
                self.depths.append(d)
                self.labels.append(IGNORE)
                self.label_weight.append(0)
            if label != IGNORE:
                if label != token:
                    raise ValueError(f"label {label} at position {d} is not the token there ({token})")
                self.labels[child] = label
                self.label_weight[child] += 1
            node = child
        self.n_sequences += 1

    def ancestor_mask(self) -> torch.Tensor:
        """``(N, N)`` bool: ``[j, i]`` is True where node ``i`` is ``j`` or one of its ancestors."""
        n = len(self.tokens)
        mask = torch.zeros((n, n), dtype=torch.bool)
        for j, parent in enumerate(self.parents):
            if parent != ROOT:
                mask[j] = mask[parent]
            mask[j, j] = True
        return mask


def pack_sequences(rows: Sequence[dict[str, list[int]]], max_row_tokens: int) -> list[PrefixTree]:
    """Merge sequences into prefix trees of at most ``max_row_tokens`` nodes each (a sequence is never split;
    one longer than the cap gets a tree of its own). Consecutive sequences go to the same tree, so callers put
    the sequences that share the most (one user's prefixes) next to each other."""
    trees = [PrefixTree()]
    for r in rows:
        tree = trees[-1]
        if len(tree) and len(tree) + tree.new_nodes(r["input_ids"]) > max_row_tokens:
            tree = PrefixTree()
            trees.append(tree)
        tree.add(r["input_ids"], r["labels"])
    return trees


def pack_balanced(rows: Sequence[dict[str, list[int]]], max_row_tokens: int) -> list[PrefixTree]:
    """:func:`pack_sequences` into as few rows as the cap allows, with the rows as even as possible.

    Rows are padded to the widest, so greedy filling (full rows, then a short last one) computes padding: with
    16 Scientific users per step, about a quarter of the positions. Here the cap is lowered, by bisection, to the
    smallest that still packs into the same number of rows (the row count, hence the head recomputed per row,
    never grows)."""
    trees = pack_sequences(rows, max_row_tokens)
    n_rows, width = len(trees), max(len(t) for t in trees)
    best = trees
    low, high = -(-sum(len(t) for t in trees) // n_rows), width  # ceil(nodes / rows) .. the greedy width
    while low < high:
        mid = (low + high) // 2
        candidate = pack_sequences(rows, mid)
        if len(candidate) <= n_rows:
            high, best = mid, candidate
        else:
            low = mid + 1
    # a sequence longer than the cap gets a row of its own, so a lower cap does not always mean narrower rows
    return best if max(len(t) for t in best) < width else trees


@dataclass
class PrefixTreeCollator:
    """A batch of sequences -> one or more right-padded prefix-tree rows (``pack``: :func:`pack_balanced`, or
    :func:`pack_sequences` for greedy rows).

    Returns ``input_ids``, ``labels`` (IGNORE where no loss), ``label_weights`` (float), ``position_ids``,
    ``parents`` (index of each node's parent in its row, -1 for first tokens and padding): each ``(R, T)``;
    ``attention_mask``: ``(R, 1, T, T)`` bool, the tree mask (padding attends to itself only, so no query row is
    fully masked); ``n_sequences``, ``real_tokens``.
    """

    pad_token_id: int
    max_row_tokens: int = 2048
    pack: Callable[[Sequence[dict[str, list[int]]], int], list[PrefixTree]] = pack_balanced

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        trees = self.pack(rows, self.max_row_tokens)
        width = max(len(t) for t in trees)
        n = len(trees)
        ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        weights = torch.zeros((n, width), dtype=torch.float32)
        positions = torch.zeros((n, width), dtype=torch.long)
        parents = torch.full((n, width), ROOT, dtype=torch.long)
        mask = torch.eye(width, dtype=torch.bool).repeat(n, 1, 1, 1)
        for r, t in enumerate(trees):
            k = len(t)
            ids[r, :k] = torch.tensor(t.tokens)
            labels[r, :k] = torch.tensor(t.labels)
            weights[r, :k] = torch.tensor(t.label_weight, dtype=torch.float32)
            positions[r, :k] = torch.tensor(t.depths)
            parents[r, :k] = torch.tensor(t.parents)
            mask[r, 0, :k, :k] = t.ancestor_mask()
        return {
            "input_ids": ids,
            "labels": labels,
            "label_weights": weights,
            "position_ids": positions,
            "parents": parents,
            "attention_mask": mask,
            "n_sequences": torch.tensor(sum(t.n_sequences for t in trees)),
            "real_tokens": torch.tensor(sum(len(t) for t in trees)),
        }


def tree_attention_masks(model, mask: torch.Tensor, positions: torch.Tensor):
    """The tree mask as the model's layers need it: unchanged without a sliding window; with one (Mistral, Gemma-2/3,
    Qwen2 with ``use_sliding_window``) the sliding layers see only the ancestors less than ``sliding_window``
    positions back, as they would in each sequence alone (a custom 4-D mask is used as given, so Hugging Face does
    not apply the window to it). Models with both kinds of layers (``layer_types``) get a ``{layer type: mask}``
    dict, which their forward accepts; a model whose every layer slides (Mistral) gets the banded mask.

    mask: ``(R, 1, T, T)`` bool tree mask; positions: ``(R, T)`` depths."""
    config = getattr(model, "module", model).config.get_text_config(decoder=True)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not window or (layer_types is not None and "sliding_attention" not in layer_types):
        return mask
    near = (positions[:, None, :, None] - positions[:, None, None, :]) < window  # (R, 1, T, T): q - kv < window
    banded = mask & near.to(mask.device)
    if layer_types is None:
        return banded
    return {"full_attention": mask, "sliding_attention": banded}


def tree_loss(model, batch: dict[str, torch.Tensor], softmax=None) -> tuple[torch.Tensor, int]:
    """Weighted mean next-token NLL over the labelled nodes of prefix-tree rows (:class:`PrefixTreeCollator`).
    Returns the loss and the number of labelled tokens it averages (counting shared nodes once per sequence)."""
    nll, _, w = tree_nll(model, batch, softmax)
    return (nll * w).sum() / w.sum(), int(w.sum())


def tree_nll(model, batch: dict[str, torch.Tensor], softmax=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per labelled node of prefix-tree rows: ``(nll, target, weight)``, each ``(n,)``; the weight counts the
    sequences that share the node.

    The LM head runs only at the parents of labelled nodes: the last hidden states are gathered there, ``(n, H)``,
    before the head, so packed rows whose labels sit in different columns cost ``n`` head rows, not rows x the
    union of their label columns (on grounding batches 8x fewer; ~20% of a step). The forward still goes through
    the top-level model (DDP's and PEFT's hooks run). With ``softmax`` (:class:`~pauserec.train.batches.LevelSoftmax`
    or ``TrieSoftmax``) SID labels are normalised over their level's codes, or over those their SID prefix allows.
    """
    labels = batch["labels"]
    rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
    if rows.numel() == 0:
        raise ValueError("a training batch without any label")
    src = batch["parents"][rows, cols]  # (n,) the positions whose logits predict the labels
    if bool((src < 0).any()):
        raise ValueError("a labelled first token has no position to be predicted from")
    mask = tree_attention_masks(model, batch["attention_mask"], batch["position_ids"])
    if getattr(getattr(model, "module", model).config, "_attn_implementation", None) == "eager":
        additive = lambda m: torch.zeros(m.shape, dtype=torch.float32, device=m.device).masked_fill(~m, float("-inf"))  # noqa: E731
        mask = {k: additive(m) for k, m in mask.items()} if isinstance(mask, dict) else additive(mask)
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=mask,
        position_ids=batch["position_ids"],
        logits_to_keep=1,  # the model's own logits are not used: one column is the least it computes
        output_hidden_states=True,
        use_cache=False,
    )
    hidden = out.hidden_states[-1][rows, src]  # (n, H)
    table = trained_rows(model)
    if table is not None:  # train.vocab_rows=active: the SID codes' logits from the trained rows, the rest -inf
        logits = table.logits(hidden, softmax.codes().to(hidden.device), logit_softcap(model)).float()
    else:
        logits = head_logits(model, hidden).float()  # (n, V)
    target = labels[rows, cols]
    if softmax is not None:
        nll = softmax.nll(logits, target, LabelSites(batch["input_ids"], batch["parents"], rows, cols))
    else:
        nll = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    return nll, target, batch["label_weights"][rows, cols].to(nll.dtype)


@contextmanager
def attention_implementation(model: torch.nn.Module, name: str | None) -> Iterator[None]:
    """Within the block the model's attention layers use ``name`` (a Hugging Face attention implementation, e.g.
    ``eager`` or ``sdpa``; None: unchanged); the previous setting comes back on exit. The autograd graph built inside
    does not depend on it, so only the training forward needs to be inside (``train.attention``)."""
    if name is None:
        yield
        return
    configs = {id(c): c for m in model.modules() if hasattr(c := getattr(m, "config", None), "_attn_implementation")}
    before = {k: c._attn_implementation for k, c in configs.items()}
    for c in configs.values():
        c._attn_implementation = name
    try:
        yield
    finally:
        for k, c in configs.items():
            c._attn_implementation = before[k]


class UserChunkDataset(torch.utils.data.Dataset):
    """Training units for prefix-tree packing: each item is one user's examples (consecutive prefixes, which
    share the most), at most ``max_examples`` of them; longer users are cut into several chunks.

    The Trainer samples these units at random, ``train.batch_size`` per step, so a step trains every target
    of ``batch_size`` users (the SASRec / HSTU way of using a sequence) for about the compute that
    ``batch_size`` single examples cost without packing.
    """

    def __init__(self, rows_by_user: Sequence[Sequence[dict[str, list[int]]]], max_examples: int):
        self.units = [list(rows[i : i + max_examples]) for rows in rows_by_user for i in range(0, len(rows), max_examples)]
        self.n_examples = sum(len(u) for u in self.units)

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, i: int) -> list[dict[str, list[int]]]:
        return self.units[i]

    def n_tokens(self) -> int:
        """Tokens of the examples one by one (what unpacked training would process)."""
        return sum(len(r["input_ids"]) for u in self.units for r in u)


@dataclass
class UnitCollator:
    """The Trainer hands a list of units (lists of sequences); pack all their sequences."""

    inner: PrefixTreeCollator

    def __call__(self, units: list[list[dict[str, list[int]]]]) -> dict[str, torch.Tensor]:
        return self.inner([row for unit in units for row in unit])
