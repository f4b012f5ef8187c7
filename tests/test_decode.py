"""The constrained beam search against exhaustive enumeration, a cache-free reference beam search and HF generate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pauserec.decode import (
    BeamResult,
    batched_beam_search,
    common_prefix_length,
    constrained_beam_search,
    left_pad,
    trie_codes,
)
from pauserec.decode.reference import exhaustive_rank, hf_beam_search
from helpers import BACKBONE_FAMILIES
from pauserec.sid.catalog import build_trie

transformers = pytest.importorskip("transformers")

VOCAB = 120
LEVEL_SIZES = [3, 4, 5]
N_ITEMS = 25
PAD = 0
PAUSE_A, PAUSE_B = 101, 102  # "forced" tokens between levels
FORCED = [[PAUSE_A], [PAUSE_A, PAUSE_B]]


def _level_ids() -> list[torch.Tensor]:
    """Level tokens at the top of the vocabulary: level 0 -> 108..110, level 1 -> 111..114, level 2 -> 115..119."""
    out, start = [], VOCAB - sum(LEVEL_SIZES)
    for size in LEVEL_SIZES:
        out.append(torch.arange(start, start + size))
        start += size
    return out


LEVEL_IDS = _level_ids()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # peaked distributions: no near-ties between items
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
    )
    m = transformers.LlamaForCausalLM(cfg).eval()
    return m


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(0)
    all_sids = np.array(np.meshgrid(*[np.arange(s) for s in LEVEL_SIZES], indexing="ij")).reshape(3, -1).T
    codes = all_sids[np.sort(rng.choice(len(all_sids), N_ITEMS, replace=False))]
    rng.shuffle(codes)  # item index order unrelated to the trie order
    return codes, build_trie(codes, LEVEL_SIZES)


def _prompts(n: int, seed: int, lo: int = 5, hi: int = 14) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 100, size=int(rng.integers(lo, hi))).tolist() for _ in range(n)]


def _one(model, prompt, trie, **kw) -> BeamResult:
    ids, mask = left_pad([prompt], PAD)
    return constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, **kw)


def _naive_beam_search(model, prompt, codes, num_beams, forced=None, normalization="vocab"):
    """Textbook beam search, no cache: re-run the whole sequence for every beam at every level."""
    n_levels = codes.shape[1]
    forced = forced or [[] for _ in range(n_levels - 1)]
    prefixes = {tuple(c[:d]) for c in codes.tolist() for d in range(n_levels + 1)}
    beams = [((), 0.0)]
    for d in range(n_levels):
        cands = []
        for rank, (prefix, score) in enumerate(beams):
            seq = list(prompt)
            for lvl, c in enumerate(prefix):
                seq += [int(LEVEL_IDS[lvl][c])] + (forced[lvl] if lvl < n_levels - 1 else [])
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
            if normalization == "vocab":
                lp = torch.log_softmax(logits, -1)[LEVEL_IDS[d]]
            else:
                lp = torch.log_softmax(logits[LEVEL_IDS[d]], -1)
            for c in range(LEVEL_SIZES[d]):
                if prefix + (c,) in prefixes:
                    cands.append((score + float(lp[c]), rank, c, prefix + (c,)))
        cands.sort(key=lambda t: (-t[0], t[1], t[2]))
        beams = [(p, s) for s, _, _, p in cands[:num_beams]]
    item_of = {tuple(c): i for i, c in enumerate(codes.tolist())}
    return [item_of[p] for p, _ in beams], [s for _, s in beams]


# ------------------------------------------------------------------------------------------------------------------


def test_trie_codes_roundtrip(catalogue):
    codes, trie = catalogue
    np.testing.assert_array_equal(trie_codes(trie), codes)


@pytest.mark.parametrize("normalization", ["vocab", "level", "trie"])
@pytest.mark.parametrize("forced", [None, FORCED], ids=["plain", "forced"])
def test_full_beam_equals_exhaustive(model, catalogue, normalization, forced):
    codes, trie = catalogue
    for prompt in _prompts(2, seed=1):
        ref = exhaustive_rank(model, prompt, trie, LEVEL_IDS, forced, normalization)
        res = _one(
            model, prompt, trie, num_beams=N_ITEMS + 3, forced_between_levels=forced, score_normalization=normalization
        )
        assert res.items[0] == [i for i, _ in ref]
        np.testing.assert_allclose(res.scores[0], [s for _, s in ref], atol=1e-5, rtol=0)
        if normalization == "level":
            # a distribution over each level's codes: the sum over all SIDs of exp(score) is at most 1
            assert sum(math.exp(s) for s in res.scores[0]) <= 1 + 1e-5
        if normalization == "trie":  # a distribution over the catalogue's items: it sums to exactly 1
            assert sum(math.exp(s) for s in res.scores[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("num_beams", [1, 2, 5, 8])
@pytest.mark.parametrize("forced", [None, FORCED], ids=["plain", "forced"])
def test_small_beams_equal_naive_reference(model, catalogue, num_beams, forced):
    codes, trie = catalogue
    for prompt in _prompts(2, seed=2):
        res = _one(model, prompt, trie, num_beams=num_beams, forced_between_levels=forced)
        items, scores = _naive_beam_search(model, prompt, codes, num_beams, forced)
        assert len(res.items[0]) == num_beams  # level 0 has only 3 codes, yet no beam is lost
        assert len(set(res.items[0])) == num_beams and all(0 <= i < N_ITEMS for i in res.items[0])
        assert all(math.isfinite(s) for s in res.scores[0])
        assert res.scores[0] == sorted(res.scores[0], reverse=True)
        assert res.items[0] == items
        np.testing.assert_allclose(res.scores[0], scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("forced", [None, FORCED], ids=["plain", "forced"])
def test_batch_with_left_padding_equals_single(model, catalogue, forced):
    _, trie = catalogue
    prompts = _prompts(5, seed=3, lo=3, hi=20)
    ids, mask = left_pad(prompts, PAD)
    assert len({len(p) for p in prompts}) > 1
    batch = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=6, forced_between_levels=forced)
    for u, p in enumerate(prompts):
        alone = _one(model, p, trie, num_beams=6, forced_between_levels=forced)
        assert batch.items[u] == alone.items[0]
        np.testing.assert_allclose(batch.scores[u], alone.scores[0], atol=1e-5, rtol=0)


def test_batched_beam_search_restores_order(model, catalogue):
    _, trie = catalogue
    prompts = _prompts(7, seed=4, lo=3, hi=20)
    res = batched_beam_search(
        model, prompts, trie, LEVEL_IDS, num_beams=4, batch_size=3, pad_token_id=PAD, progress=True
    )
    for u, p in enumerate(prompts):
        alone = _one(model, p, trie, num_beams=4)
        assert res.items[u] == alone.items[0]
        np.testing.assert_allclose(res.scores[u], alone.scores[0], atol=1e-5, rtol=0)
    assert res.prefill_tokens == sum(len(p) for p in prompts)
    assert res.prefill_tokens <= res.prefill_padded_tokens
    assert res.steps == 3 * (len(LEVEL_SIZES) - 1)  # 3 batches


@pytest.mark.parametrize("num_beams", [4, 10])
def test_same_topk_as_hf_generate(model, catalogue, num_beams):
    codes, trie = catalogue
    prompts = _prompts(3, seed=5, lo=4, hi=12)
    ids, mask = left_pad(prompts, PAD)
    model.generation_config.top_k = 3  # must not leak into the HF baseline
    try:
        hf = hf_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=num_beams, pad_token_id=PAD)
    finally:
        model.generation_config.top_k = None
    assert model.generation_config.top_k is None
    ours = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=num_beams)
    for u in range(len(prompts)):
        assert len(hf.items[u]) == num_beams  # HF's placeholder beams (level 0 has only 3 codes) were dropped
        np.testing.assert_allclose(sorted(hf.scores[u]), sorted(ours.scores[u]), atol=1e-4, rtol=0)
        if set(hf.items[u]) != set(ours.items[u]):  # allowed only for a tie at the cut-off
            assert abs(ours.scores[u][-1] - min(hf.scores[u])) < 1e-4


def test_deterministic(model, catalogue):
    _, trie = catalogue
    prompts = _prompts(4, seed=6)
    ids, mask = left_pad(prompts, PAD)
    a = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=5, forced_between_levels=FORCED)
    b = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=5, forced_between_levels=FORCED)
    assert a.items == b.items and a.scores == b.scores


def test_ties_broken_by_lower_beam_then_code(catalogue):
    """A model whose every distribution is uniform: all scores tie, order must be by (beam rank, code)."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    flat = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        flat.lm_head.weight.zero_()
    codes, trie = catalogue
    res = _one(flat, [5, 6, 7], trie, num_beams=N_ITEMS)
    item_of = {tuple(c): i for i, c in enumerate(codes.tolist())}
    assert res.items[0] == [item_of[t] for t in sorted(item_of)]  # lexicographic SID order
    assert len(set(res.scores[0])) == 1


def test_counters(model, catalogue):
    codes, trie = catalogue
    prompts = _prompts(3, seed=7, lo=3, hi=20)
    ids, mask = left_pad(prompts, PAD)
    res = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=N_ITEMS, forced_between_levels=FORCED)
    assert res.prefill_tokens == sum(len(p) for p in prompts) == int(mask.sum())
    assert res.prefill_padded_tokens == ids.numel()
    assert res.steps == len(LEVEL_SIZES) - 1
    # with every prefix kept, the beams after level d are the distinct depth-(d+1) prefixes
    n_prefix = [len({tuple(c[: d + 1]) for c in codes.tolist()}) for d in range(2)]
    per_user = n_prefix[0] * (1 + len(FORCED[0])) + n_prefix[1] * (1 + len(FORCED[1]))
    assert res.decode_tokens == len(prompts) * per_user


def test_small_catalogue_returns_fewer_items_no_fakes(model):
    codes = np.array([[0, 1, 2], [2, 3, 4]])
    trie = build_trie(codes, LEVEL_SIZES)
    res = _one(model, [5, 6, 7, 8], trie, num_beams=10)
    assert sorted(res.items[0]) == [0, 1]
    assert all(math.isfinite(s) for s in res.scores[0])


def test_input_validation_and_mode_restored(model, catalogue):
    _, trie = catalogue
    ids, mask = left_pad([[5, 6, 7], [5, 6]], PAD)
    with pytest.raises(ValueError, match="LEFT-padded"):
        constrained_beam_search(model, ids.flip(1), mask.flip(1), trie, LEVEL_IDS, num_beams=2)
    with pytest.raises(ValueError, match="forced_between_levels"):
        constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=2, forced_between_levels=[[1]])
    with pytest.raises(ValueError, match="token ids"):
        constrained_beam_search(model, ids, mask, trie, [LEVEL_IDS[0], LEVEL_IDS[1], LEVEL_IDS[2][:3]], num_beams=2)
    model.train()
    try:
        constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=2)
        assert model.training
    finally:
        model.eval()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers helper
@pytest.mark.parametrize("normalization", ["vocab", "level"])
def test_peft_wrapped_model_equals_merged(model, catalogue, normalization):
    """LoRA adapters (attention and LM head) apply inside the decoder exactly as in the merged model."""
    import copy

    peft = pytest.importorskip("peft")
    _, trie = catalogue
    torch.manual_seed(1)
    lora_cfg = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False
    )
    wrapped = peft.get_peft_model(copy.deepcopy(model), lora_cfg)
    prompts = _prompts(3, seed=8)
    ids, mask = left_pad(prompts, PAD)
    kw = dict(num_beams=5, forced_between_levels=FORCED, score_normalization=normalization)
    got = constrained_beam_search(wrapped, ids, mask, trie, LEVEL_IDS, **kw)
    merged = wrapped.merge_and_unload()
    ref = constrained_beam_search(merged, ids, mask, trie, LEVEL_IDS, **kw)
    plain = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, **kw)
    assert got.items == ref.items
    np.testing.assert_allclose(np.array(got.scores), np.array(ref.scores), atol=1e-4, rtol=0)
    assert not np.allclose(np.array(got.scores), np.array(plain.scores), atol=1e-3)  # the adapters did something


@pytest.mark.parametrize("forced", [None, FORCED], ids=["plain", "forced"])
def test_shared_prefix_prefilled_once_equals_full_prompts(model, catalogue, forced):
    """Prompts with a common head (like a chat template's system turn): the shared-prefix path gives the same
    beams as decoding each full prompt alone, and prefills the head once per batch."""
    _, trie = catalogue
    head = _prompts(1, seed=7, lo=9, hi=10)[0]
    prompts = [head + tail for tail in _prompts(6, seed=8, lo=1, hi=9)]
    assert common_prefix_length(prompts) >= len(head)
    res = batched_beam_search(model, prompts, trie, LEVEL_IDS, num_beams=5, batch_size=4, pad_token_id=PAD,
                              forced_between_levels=forced)
    for u, p in enumerate(prompts):
        alone = _one(model, p, trie, num_beams=5, forced_between_levels=forced)
        assert res.items[u] == alone.items[0]
        np.testing.assert_allclose(res.scores[u], alone.scores[0], atol=1e-5, rtol=0)
    n_shared = common_prefix_length(prompts)
    assert res.prefill_tokens == sum(len(p) - n_shared for p in prompts) + 2 * n_shared  # 2 batches
    unshared = batched_beam_search(model, prompts, trie, LEVEL_IDS, num_beams=5, batch_size=4, pad_token_id=PAD,
                                   forced_between_levels=forced, share_prefix=False)
    assert unshared.items == res.items


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]]) == 2
    assert common_prefix_length([[1, 2], [1, 2]]) == 1  # each prompt keeps at least one token of its own
    assert common_prefix_length([[5], [6]]) == 0
    assert common_prefix_length([]) == 0


# ------------------------------------------------------------------------------------------------------------------
# history exclusion


def test_excluded_codes_prune_dead_prefixes():
    """Excluding every item under a level-0 code forbids that code at the root; one item forbids only its leaf."""
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    trie = build_trie(codes, [2, 2, 2])
    assert trie.excluded_codes([0]) == {(2, 0): frozenset({0})}
    assert trie.excluded_codes([0, 1]) == {(2, 0): frozenset({0, 1}), (1, 0): frozenset({0})}
    assert trie.excluded_codes([0, 1, 2]) == {
        (2, 0): frozenset({0, 1}), (2, 1): frozenset({0}), (1, 0): frozenset({0, 1}), (0, 0): frozenset({0})
    }
    assert trie.excluded_codes([]) == {}


@pytest.mark.parametrize("normalization", ["level", "trie"])
def test_exclusion_drops_items_and_keeps_the_others_scores(model, catalogue, normalization):
    """Excluded items never come back, beams are refilled from the rest, and every surviving item keeps exactly
    the score it had without exclusion (masking happens after normalisation): the ranking is the unexcluded one
    with the excluded items removed (full beams, so no search effect)."""
    _, trie = catalogue
    prompts = _prompts(3, seed=11)
    ids, mask = left_pad(prompts, PAD)
    kw = dict(num_beams=N_ITEMS, score_normalization=normalization)
    full = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, **kw)
    exclude = [set(full.items[u][:3]) | {full.items[u][-1]} for u in range(3)]
    got = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, exclude=exclude, **kw)
    for u in range(3):
        expect = [(i, s) for i, s in zip(full.items[u], full.scores[u]) if i not in exclude[u]]
        assert got.items[u] == [i for i, _ in expect]
        np.testing.assert_allclose(got.scores[u], [s for _, s in expect], atol=1e-5, rtol=0)
    narrow = batched_beam_search(model, prompts, trie, LEVEL_IDS, num_beams=4, batch_size=2, pad_token_id=PAD,
                                 score_normalization=normalization, exclude=exclude)
    assert all(len(items) == 4 and not set(items) & exclude[u] for u, items in enumerate(narrow.items))


@pytest.mark.parametrize("family", BACKBONE_FAMILIES)
def test_same_topk_as_hf_generate_for_every_family(tmp_path, catalogue, family):
    """Decoder = HF generate on each decoder family, with prompts longer than the sliding windows (16) and rows of
    different lengths (left padding)."""
    from pauserec.model.tiny import make_tiny_backbone

    path = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2, family=family)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():  # peaked distributions (no near-ties between items), as the module's Llama has
        for p in model.parameters():
            p.mul_(6.0)
    _, trie = catalogue
    prompts = _prompts(3, seed=5, lo=14, hi=30)
    ids, mask = left_pad(prompts, PAD)
    for kw in ({}, {"num_beams": 6}):
        num_beams = kw.get("num_beams", 4)
        hf = hf_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=num_beams, pad_token_id=PAD)
        ours = constrained_beam_search(model, ids, mask, trie, LEVEL_IDS, num_beams=num_beams)
        for u in range(len(prompts)):
            np.testing.assert_allclose(sorted(hf.scores[u]), sorted(ours.scores[u]), atol=1e-4, rtol=0)
            if set(hf.items[u]) != set(ours.items[u]):
                assert abs(ours.scores[u][-1] - min(hf.scores[u])) < 1e-4
