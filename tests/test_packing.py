"""Prefix-tree packing: the tree by hand, and the packed loss and gradients against one-example-at-a-time training."""

import pytest
import torch
from helpers import BACKBONE_FAMILIES

from pauserec.arms.base import IGNORE
from pauserec.model.tiny import make_tiny_backbone
from pauserec.train.batches import LevelSoftmax, RightPadCollator, label_window_loss
from pauserec.train.packing import (
    ROOT,
    PrefixTree,
    PrefixTreeCollator,
    pack_balanced,
    pack_sequences,
    UnitCollator,
    UserChunkDataset,
    attention_implementation,
    tree_loss,
)


def row(ids, n_labels=3):
    return {"input_ids": ids, "labels": [IGNORE] * (len(ids) - n_labels) + ids[-n_labels:]}


def user_rows():
    # two "users" with a common head [5, 6]; user A has two prefixes ([7] and [7, 8]); user B shares A's
    # first history and first SID code (20), so node 20 after [5, 6, 7] is labelled by two sequences.
    return [
        row([5, 6, 7, 20, 21, 22]),
        row([5, 6, 7, 8, 23, 24, 25]),
        row([5, 6, 7, 20, 24, 21]),
        row([5, 6, 9, 9, 22, 21, 20]),
    ]


def test_tree_by_hand():
    tree = PrefixTree()
    for r in user_rows():
        tree.add(r["input_ids"], r["labels"])
    # 6 + 4 ([8, 23, 24, 25]) + 2 ([24, 21] under 20) + 5 ([9, 9, 22, 21, 20] under 6)
    assert len(tree) == 17
    assert tree.tokens[:6] == [5, 6, 7, 20, 21, 22]
    assert tree.parents[:6] == [ROOT, 0, 1, 2, 3, 4]
    assert tree.depths == [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 4, 5, 2, 3, 4, 5, 6]
    assert tree.label_weight[3] == 2  # the shared SID code 20, a target of two sequences
    assert sum(tree.label_weight) == 12  # 4 sequences x 3 SID tokens
    assert tree.labels[6] == IGNORE  # 8 is history, not a target
    mask = tree.ancestor_mask()
    assert mask[9].nonzero().squeeze(1).tolist() == [0, 1, 2, 6, 7, 8, 9]  # 25 sees its own path only
    assert not mask[12, 2]  # user B's history does not see user A's
    assert tree.n_sequences == 4


def test_label_must_be_the_token_itself():
    with pytest.raises(ValueError, match="not the token"):
        PrefixTree().add([1, 2, 3], [IGNORE, 5, IGNORE])


def test_rows_respect_the_token_cap_without_splitting_a_sequence():
    rows = [row([1, 2, 3, 10 + i, 20, 21]) for i in range(10)]
    trees = pack_sequences(rows, max_row_tokens=12)
    assert [len(t) for t in trees] == [12, 12, 12, 6]  # three sequences (6 + 3 + 3) per row, then one
    assert sum(t.n_sequences for t in trees) == 10


def test_collator_pads_rows_so_every_query_sees_a_key():
    rows = [row([1, 2, 3, 10 + i, 20, 21]) for i in range(4)] + [row([5, 6, 7])]
    batch = PrefixTreeCollator(pad_token_id=0, max_row_tokens=12)(rows)
    assert batch["input_ids"].shape == (2, 12)  # balanced: rows of 12 (3 sequences) and 6 + 3
    assert batch["attention_mask"].shape == (2, 1, 12, 12)
    assert batch["attention_mask"].any(dim=-1).all()  # padding attends to itself
    assert batch["labels"][1, 9:].eq(IGNORE).all() and batch["label_weights"][1, 9:].eq(0).all()
    assert int(batch["real_tokens"]) == 21 and int(batch["n_sequences"]) == 5


def test_balanced_rows_keep_the_row_count_and_shed_the_padding():
    rows = [row([1, 2, 3, 10 + i, 20, 21]) for i in range(4)]
    assert [len(t) for t in pack_sequences(rows, max_row_tokens=12)] == [12, 6]  # greedy: 24 positions for 18
    balanced = pack_balanced(rows, max_row_tokens=12)
    assert [len(t) for t in balanced] == [9, 9] and sum(t.n_sequences for t in balanced) == 4
    rows = [row([1, 2, 3, 10 + i, 20, 21]) for i in range(10)]  # rows of 12, 12, 12, 6: no 4 rows of 11 exist
    assert [len(t) for t in pack_balanced(rows, max_row_tokens=12)] == [12, 12, 12, 6]


def model_and_softmax(tmp_path):
    from transformers import AutoModelForCausalLM

    path = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    softmax = LevelSoftmax([torch.tensor([20, 21, 22]), torch.tensor([23, 24, 25])], model.config.vocab_size)
    return model, softmax


@pytest.mark.parametrize("cap", [2048, 10])
def test_packed_loss_and_gradients_equal_one_by_one(tmp_path, cap):
    model, softmax = model_and_softmax(tmp_path)
    rows = user_rows()
    for sm in (None, softmax):
        assert_packed_equals_padded(model, rows, PrefixTreeCollator(0, max_row_tokens=cap)(rows), sm)


def assert_packed_equals_padded(model, rows, batch, softmax) -> None:
    """The tree-packed ``batch`` of ``rows`` gives the right-padded loss (12 labels) and the same gradients."""
    model.zero_grad()
    reference, n_ref = label_window_loss(model, RightPadCollator(0)(rows), softmax)
    reference.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    packed, n = tree_loss(model, batch, softmax)
    packed.backward()
    assert n == n_ref == 12
    torch.testing.assert_close(packed, reference, rtol=1e-5, atol=1e-6)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_eager_attention_gives_the_sdpa_loss_and_gradients_and_is_restored(tmp_path):
    """train.attention: the packed forward under eager attention (the tree mask added as 0 / -inf) equals SDPA's."""
    model, softmax = model_and_softmax(tmp_path)
    batch = PrefixTreeCollator(0, max_row_tokens=10)(user_rows())
    results = {}
    for name in ("sdpa", "eager"):
        model.zero_grad()
        with attention_implementation(model, name):
            assert model.config._attn_implementation == name
            loss, _ = tree_loss(model, batch, softmax)
        loss.backward()
        results[name] = loss, [p.grad.clone() for p in model.parameters()]
    assert model.config._attn_implementation == "sdpa"  # the backbone's own, back after the block
    torch.testing.assert_close(results["eager"][0], results["sdpa"][0], rtol=1e-5, atol=1e-6)
    for g, r in zip(results["eager"][1], results["sdpa"][1]):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_units_are_user_chunks_of_consecutive_examples():
    users = [[row([1, u, t, 20, 21, 22]) for t in range(n)] for u, n in enumerate([3, 1, 5])]
    data = UserChunkDataset(users, max_examples=2)
    assert [[r["input_ids"][1:3] for r in unit] for unit in data.units] == [
        [[0, 0], [0, 1]], [[0, 2]], [[1, 0]], [[2, 0], [2, 1]], [[2, 2], [2, 3]], [[2, 4]]
    ]
    assert data.n_examples == 9 and data.n_tokens() == 54
    batch = UnitCollator(PrefixTreeCollator(0))([data[0], data[1]])
    assert int(batch["n_sequences"]) == 3 and int(batch["real_tokens"]) == 6 + 4 + 4  # all three share [1, 0]


# ----------------------------------------------------------------------------------------------------------------
# trie-normalised SID loss: a label is normalised over the codes its SID prefix allows

LEVEL_TOKENS = [torch.tensor([20, 21, 22]), torch.tensor([23, 24, 25])]
TRIE_CODES = [[0, 0], [0, 1], [1, 2], [2, 0], [2, 1], [2, 2]]  # after code 0: {0, 1}; after 1: {2}; after 2: all
PAUSE = 30


def trie_rows():
    """SIDs as (level-0 token, level-1 token); the last row has a pause between the two levels (per-level pauses)."""
    def sid_row(history, sid, between=()):
        ids = [5, 6, *history, sid[0], *between, sid[1]]
        labels = [IGNORE] * (len(ids) - 2 - len(between)) + [sid[0]] + [IGNORE] * len(between) + [sid[1]]
        return {"input_ids": ids, "labels": labels}

    return [sid_row([7, 21, 25], (20, 23)), sid_row([7, 21, 25, 8], (21, 25)), sid_row([9], (22, 24)),
            sid_row([7, 21, 25], (20, 24), between=(PAUSE,))]


def trie_softmax(vocab_size):
    import numpy as np

    from pauserec.sid.catalog import build_trie
    from pauserec.train.batches import TrieSoftmax

    return TrieSoftmax(LEVEL_TOKENS, vocab_size, build_trie(np.array(TRIE_CODES), [3, 3]))


def test_trie_loss_equals_a_by_hand_reference(tmp_path):
    """Each example alone, full forward: level 0 over its 3 codes, level 1 over the codes its prefix allows; the
    label whose prefix has one child costs exactly 0."""
    model, _ = model_and_softmax(tmp_path)
    allowed_after = {20: [23, 24], 21: [25], 22: [23, 24, 25]}
    expected = []
    for r in trie_rows():
        logits = model(input_ids=torch.tensor([r["input_ids"]])).logits[0].float()
        for t, label in enumerate(r["labels"]):
            if label == IGNORE:
                continue
            choices = [20, 21, 22] if label in (20, 21, 22) else allowed_after[next(
                tok for tok in reversed(r["input_ids"][:t]) if tok in (20, 21, 22))]
            expected.append(-torch.log_softmax(logits[t - 1, choices], dim=-1)[choices.index(label)])
    expected = torch.stack(expected)
    sm = trie_softmax(model.config.vocab_size)
    loss, n = label_window_loss(model, RightPadCollator(0)(trie_rows()), sm)
    assert n == 8
    torch.testing.assert_close(loss, expected.mean(), rtol=1e-5, atol=1e-6)
    assert expected[3].item() == 0.0  # 25 after 21: the only code the catalogue has there
    level_loss, _ = label_window_loss(model, RightPadCollator(0)(trie_rows()), model_and_softmax(tmp_path)[1])
    assert loss < level_loss  # dropping impossible codes can only raise the labels' probabilities


@pytest.mark.parametrize("cap", [2048, 12])
def test_packed_trie_loss_and_gradients_equal_one_by_one(tmp_path, cap):
    model, _ = model_and_softmax(tmp_path)
    sm = trie_softmax(model.config.vocab_size)
    reference, n_ref = label_window_loss(model, RightPadCollator(0)(trie_rows()), sm)
    reference.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    packed, n = tree_loss(model, PrefixTreeCollator(0, max_row_tokens=cap)(trie_rows()), sm)
    packed.backward()
    assert n == n_ref == 8
    torch.testing.assert_close(packed, reference, rtol=1e-5, atol=1e-6)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def long_rows(n_labels=3):
    """Sequences longer than the tiny families' sliding window (16): two users, each with two prefixes."""
    a = [5 + (i * 7) % 90 for i in range(24)]
    b = a[:10] + [9 + (i * 5) % 80 for i in range(20)]
    return [row(a[:20] + [20, 21, 22], n_labels), row(a + [23, 24, 25], n_labels),
            row(b[:26] + [20, 24, 21], n_labels), row(b + [22, 21, 20], n_labels)]


@pytest.mark.parametrize("family", BACKBONE_FAMILIES)
def test_packed_loss_equals_padded_loss_for_every_family(tmp_path, family):
    """Packed = padded loss and gradients on each decoder family (qkv bias, q/k norms, soft-caps, sliding windows
    shorter than the sequences, fused projections), under the family's default attention and under eager."""
    from transformers import AutoModelForCausalLM

    from pauserec.train.packing import tree_attention_masks

    path = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2, family=family)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    softmax = LevelSoftmax([torch.tensor([20, 21, 22]), torch.tensor([23, 24, 25])], model.config.vocab_size)
    rows = long_rows()
    batch = PrefixTreeCollator(0, max_row_tokens=40)(rows)
    window = getattr(model.config, "sliding_window", None)
    if window:  # the window binds: the sliding layers' mask is narrower than the tree mask
        masks = tree_attention_masks(model, batch["attention_mask"], batch["position_ids"])
        banded = masks["sliding_attention"] if isinstance(masks, dict) else masks
        assert int(banded.sum()) < int(batch["attention_mask"].sum())
    for attention in (None, "eager"):
        with attention_implementation(model, attention):
            for sm in (None, softmax):
                assert_packed_equals_padded(model, rows, batch, sm)
