"""The explicit chain-of-thought arm: its training sequence, the decoder's think phase (parity with prefilling the
rationale, no target leak), rationale providers and the whole pipeline (ground -> rationales -> SFT -> eval)."""

import json

import numpy as np
import pytest
import torch
from helpers import BACKBONE_FAMILIES, make_data_dir, planted_data

from pauserec.arms import IGNORE, CoTArm, DirectArm, PauseArm
from pauserec.config import build_config
from pauserec.data.dataset import Dataset
from pauserec.data.split import Example
from pauserec.decode import ThinkSpec, constrained_beam_search, left_pad
from pauserec.model.backbone import load_backbone
from pauserec.model.tiny import make_tiny_backbone
from pauserec.model.vocab import extend_vocabulary, token_ids_by_level
from pauserec.prompt import PromptBuilder
from pauserec.rationale.base import RationaleRequest, quotes_title
from pauserec.rationale.cache import RationaleCache, cache_key
from pauserec.rationale.template import template_rationale

EX = Example(user=3, history=(1, 2), target=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny backbone whose tokenizer knows a planted catalogue's SIDs, the pause and the think tokens."""
    root = tmp_path_factory.mktemp("cot")
    path = make_tiny_backbone(root / "backbone", hidden=32, layers=2)
    dataset, catalog = planted_data()
    model, tok = load_backbone(str(path), root / "cache")
    extend_vocabulary(model, tok, catalog.all_tokens() + ["<pause>", "<think>", "</think>"], noise_std=0.5, seed=0)
    return model.eval(), tok, dataset, catalog, token_ids_by_level(tok, catalog)


def test_training_sequence_puts_loss_on_rationale_and_sid(tiny):
    _, tok, *_ = tiny
    arm = CoTArm({EX.key: "small glass"}, max_tokens=48).bind(tok)
    text_ids = tok("small glass", add_special_tokens=False)["input_ids"]
    think, close = tok.convert_tokens_to_ids(["<think>", "</think>"])
    ids, labels = arm.training_sequence([7, 8], [50, 60], EX)
    assert ids == [7, 8, think, *text_ids, close, 50, 60]
    assert labels == [IGNORE, IGNORE, IGNORE, *text_ids, close, 50, 60]
    assert arm.inference_prefix([7, 8]) == [7, 8, think]


def test_rationale_is_cut_to_budget_and_a_missing_one_is_empty_and_counted(tiny):
    _, tok, *_ = tiny
    arm = CoTArm({EX.key: "small glass " * 20}, max_tokens=4).bind(tok)
    ids, _ = arm.training_sequence([7], [50], EX)
    assert len(ids) == 1 + 1 + 3 + 1 + 1  # prompt, <think>, 3 rationale tokens + </think> (= the budget), SID
    other = Example(user=4, history=(1,), target=2)
    ids, labels = arm.training_sequence([7], [50], other)
    assert ids[1:3] == tok.convert_tokens_to_ids(["<think>", "</think>"])
    assert arm.training_report() == {"with_rationale": 1, "without_rationale": 1}


def test_every_arm_reads_the_same_prompt(tiny):
    """Fairness: the arms differ only between the prompt and the SID, in training and at inference."""
    _, tok, dataset, catalog, _ = tiny
    prompts = PromptBuilder(tok, catalog, dataset, "You are a recommender system.", show_titles=False)
    ex = Example(user=0, history=tuple(dataset.sequences[0][:3]), target=dataset.sequences[0][3])
    prompt, sid = prompts.ids(ex.history), prompts.sid_ids(ex.target)
    arms = [DirectArm(), PauseArm(3), CoTArm({ex.key: "glass"}, max_tokens=16)]
    for arm in arms:
        arm.bind(tok)
        ids, labels = arm.training_sequence(prompt, sid, ex)
        assert ids[: len(prompt)] == prompt and ids[-len(sid):] == sid
        assert labels[: len(prompt)] == [IGNORE] * len(prompt) and labels[-len(sid):] == sid
        assert arm.inference_prefix(prompt)[: len(prompt)] == prompt


def _prompts(tok, dataset, catalog, n=4):
    builder = PromptBuilder(tok, catalog, dataset, "sys", show_titles=False)
    think = tok.convert_tokens_to_ids("<think>")
    return [builder.ids(dataset.sequences[u][: 1 + u % 3]) + [think] for u in range(n)]


def test_search_after_thinking_equals_search_from_prompt_plus_rationale(tiny):
    """The SID search continues from the cache the rationale left: same items and scores as prefilling
    prompt + rationale from scratch (rows that finish early carry masked fillers)."""
    _check_think_parity(tiny)


@pytest.fixture(scope="module", params=BACKBONE_FAMILIES)
def family_tiny(request, tmp_path_factory):
    """:func:`tiny` for each decoder family (the prompts, with the family's chat head, outgrow its sliding window)."""
    root = tmp_path_factory.mktemp(f"cot-{request.param}")
    path = make_tiny_backbone(root / "backbone", hidden=32, layers=2, family=request.param)
    dataset, catalog = planted_data()
    model, tok = load_backbone(str(path), root / "cache")
    extend_vocabulary(model, tok, catalog.all_tokens() + ["<pause>", "<think>", "</think>"], noise_std=0.5, seed=0)
    return model.eval(), tok, dataset, catalog, token_ids_by_level(tok, catalog)


SLIDING_FAMILIES = {"mistral", "gemma2", "gemma3"}


def test_think_phase_equals_prefill_of_prompt_plus_rationale_for_every_family(family_tiny, request):
    """Think phase = prefill of prompt + rationale on each decoder family (chat heads shared and prefilled once).
    The sliding-window families (window 16 here, below the sequence length) get there by refilling prompt +
    rationale after the think phase (fillers of rows that ended early take cache slots, which the window counts);
    the others continue from the think phase's cache."""
    _check_think_parity(family_tiny, refilled=request.node.callspec.params["family_tiny"] in SLIDING_FAMILIES)


def _check_think_parity(tiny, refilled: bool = False):
    model, tok, dataset, catalog, level_ids = tiny
    prefixes = _prompts(tok, dataset, catalog)
    ids, mask = left_pad(prefixes, tok.pad_token_id)
    # Sampled rationales (a tiny random model's greedy text is the same for every row), ended on a token that some
    # rows draw earlier than others, so that rows finish at different steps. Same seed and batch layout: the probe
    # draws the same tokens as the search below until the end token.
    probe = constrained_beam_search(model, ids, mask, catalog.trie, level_ids, num_beams=1, think=ThinkSpec(
        end_token_id=tok.convert_tokens_to_ids("</think>"), max_new_tokens=6, temperature=1.0, seed=0))

    def finish_steps(token):  # the step at which each row would stop if `token` ended the rationale
        return {lead.index(token) if token in lead else None for lead in probe.leads}

    end = next(t for t in sorted({t for lead in probe.leads for t in lead}) if len(finish_steps(t)) > 1)
    spec = ThinkSpec(end_token_id=end, max_new_tokens=6, temperature=1.0, seed=0)
    res = constrained_beam_search(model, ids, mask, catalog.trie, level_ids, num_beams=5, think=spec,
                                  score_normalization="level")
    assert res.think_tokens == sum(len(lead) for lead in res.leads)
    assert len({len(lead) for lead in res.leads}) > 1
    refill = sum(len(p) + len(lead) for p, lead in zip(prefixes, res.leads)) if refilled else 0
    assert res.prefill_tokens == int(mask.sum()) + refill  # a second prefill only where the window needs it
    for prefix, lead, items, scores in zip(prefixes, res.leads, res.items, res.scores):
        assert 1 <= len(lead) <= 6 and lead[-1] == end and end not in lead[:-1]
        one_ids, one_mask = left_pad([prefix + lead], tok.pad_token_id)
        ref = constrained_beam_search(model, one_ids, one_mask, catalog.trie, level_ids, num_beams=5,
                                      score_normalization="level")
        assert ref.items[0] == items
        np.testing.assert_allclose(ref.scores[0], scores, atol=1e-4)


def test_greedy_rationale_matches_step_by_step_generation_without_cache(tiny):
    model, tok, dataset, catalog, level_ids = tiny
    prefix = _prompts(tok, dataset, catalog, n=1)[0]
    end = tok.convert_tokens_to_ids("</think>")
    spec = ThinkSpec(end_token_id=end, max_new_tokens=5)
    ids, mask = left_pad([prefix], tok.pad_token_id)
    lead = constrained_beam_search(model, ids, mask, catalog.trie, level_ids, num_beams=3, think=spec).leads[0]
    banned = torch.cat(level_ids)
    seq, expected = list(prefix), []
    with torch.no_grad():
        for step in range(5):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            logits[banned] = -float("inf")
            token = end if step == 4 else int(logits.argmax())
            expected.append(token)
            seq.append(token)
            if token == end:
                break
    assert lead == expected
    assert not set(lead) & set(banned.tolist())  # a rationale never contains an SID code


def test_sampled_rationales_are_pooled_and_reproducible(tiny):
    from pauserec.decode import batched_beam_search

    model, tok, dataset, catalog, level_ids = tiny
    prefixes = _prompts(tok, dataset, catalog, n=3)
    spec = ThinkSpec(end_token_id=tok.convert_tokens_to_ids("</think>"), max_new_tokens=4, samples=3,
                     temperature=1.0, seed=1)
    run = lambda: batched_beam_search(model, prefixes, catalog.trie, level_ids, num_beams=5, batch_size=4,  # noqa: E731
                                      pad_token_id=tok.pad_token_id, think=spec)
    a, b = run(), run()
    assert a.items == b.items and a.leads == b.leads
    assert len(a.items) == 3 and all(len(set(i)) == len(i) == 5 for i in a.items)
    assert all(s == sorted(s, reverse=True) for s in a.scores)
    with pytest.raises(ValueError, match="temperature"):
        ThinkSpec(end_token_id=1, max_new_tokens=4, samples=2)


def test_inference_rationale_never_sees_the_target(tiny):
    """Two examples that differ only in their target get the same rationale and the same ranking."""
    from pauserec.config import DecodeConfig
    from pauserec.recommend import recommend

    model, tok, dataset, catalog, level_ids = tiny
    prompts = PromptBuilder(tok, catalog, dataset, "sys", show_titles=False)
    arm = CoTArm(None, max_tokens=6).bind(tok)
    history = tuple(dataset.sequences[0][:3])
    examples = [Example(0, history, 1), Example(0, history, 40)]
    recs = recommend(model, prompts, arm, catalog, level_ids, examples, DecodeConfig(num_beams=5), tok.pad_token_id)
    assert recs.rationales[0] == recs.rationales[1] and recs.items[0] == recs.items[1]
    assert recs.think_tokens > 0


def test_sampled_rationales_follow_the_runs_seed(tiny):
    """The cot arm's sampled rationales are drawn with the run's seed: same seed, same rationales; another seed,
    others. Greedy rationales do not depend on it."""
    from pauserec.arms import make_arm
    from pauserec.config import DecodeConfig
    from pauserec.recommend import recommend

    model, tok, dataset, catalog, level_ids = tiny
    prompts = PromptBuilder(tok, catalog, dataset, "sys", show_titles=False)
    examples = [Example(u, tuple(dataset.sequences[u][:3]), dataset.sequences[u][3]) for u in range(4)]

    def rationales(seed: int, temperature: float) -> list[str]:
        cfg = build_config(overrides=["arm.name=cot", "arm.max_rationale_tokens=8", f"seed={seed}",
                                      f"arm.rationale_temperature={temperature}"])
        arm = make_arm(cfg).bind(tok)
        return recommend(model, prompts, arm, catalog, level_ids, examples, DecodeConfig(num_beams=5),
                         tok.pad_token_id).rationales

    assert rationales(0, 1.0) == rationales(0, 1.0)
    assert rationales(0, 1.0) != rationales(1, 1.0)
    assert rationales(0, 0.0) == rationales(1, 0.0)


def test_quotes_title_by_hand():
    title = "Stanley TRA708T Sharpshooter 1/2-Inch Staples"
    assert quotes_title("they need stanley tra708t sharpshooter 1 refills", title)
    assert not quotes_title("they need Stanley staples again", title)
    assert quotes_title("Buy the Glass Jar!", "glass jar")  # a short title counts whole
    assert not quotes_title("anything", "")


def test_template_rationale_by_hand():
    history = [{"categories": "Lab,Glassware,Beakers", "brand": "Pyrex"}, {"categories": "Lab,Safety", "brand": "3M"}]
    target = {"title": "Pyrex 1000 ml Beaker", "categories": "Lab,Glassware,Flasks", "brand": "Pyrex"}
    text = template_rationale(history, target)
    assert text == "The user keeps buying in Glassware and likes Pyrex; next: Flasks."
    assert template_rationale([{"categories": "Lab,Safety"}], target) == "The user moves to a new kind of product; next: Flasks."
    assert not quotes_title(text, target["title"])
    assert template_rationale([{}], {}) == ""


def test_cache_keys_and_round_trip(tmp_path):
    cache = RationaleCache(tmp_path / "r.sqlite")
    msgs = RationaleRequest("k", ({"title": "a"},), {"title": "b"}).messages()
    k1, k2 = cache_key(msgs, {"provider": "local", "temperature": 0}), cache_key(msgs, {"provider": "local", "temperature": 1})
    assert k1 != k2
    cache.put_many({k1: "x"})
    assert RationaleCache(tmp_path / "r.sqlite").get_many([k1, k2]) == {k1: "x"}


def test_local_teacher_batches_like_one_by_one(tmp_path):
    from pauserec.rationale.local import LocalProvider

    path = make_tiny_backbone(tmp_path / "teacher", hidden=32, layers=2)
    reqs = [RationaleRequest(str(i), tuple({"title": f"item {j}"} for j in range(i + 1)), {"title": "x"}) for i in range(3)]
    batched = LocalProvider(str(path), str(tmp_path / "c"), 6, 0.0, batch_size=3).generate(reqs)
    single = LocalProvider(str(path), str(tmp_path / "c"), 6, 0.0, batch_size=1).generate(reqs)
    assert batched == single and len(batched) == 3 and all(isinstance(t, str) for t in batched)


def test_unreachable_openai_server_is_one_clear_error():
    from pauserec.rationale.openai_compat import OpenAIProvider, ProviderUnreachable

    provider = OpenAIProvider("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_KEY", max_new_tokens=8,
                              temperature=0, concurrency=2, timeout_s=2, retries=0)
    with pytest.raises(ProviderUnreachable, match="127.0.0.1:9"):
        provider.generate([RationaleRequest("k", ({"title": "a"},), {"title": "b"})])


def _catalogue_data(tmp_path):
    dataset, catalog = planted_data()
    fields = [{"title": f"Item number {i}", "categories": f"Lab,Cluster {catalog.codes[i, 0]}", "brand": "Acme"}
              for i in range(dataset.n_items)]
    dataset = Dataset(name="planted", item_ids=dataset.item_ids, item_fields=fields, user_ids=dataset.user_ids,
                      sequences=dataset.sequences)
    from pauserec.sid.catalog import SIDCatalog

    catalog = SIDCatalog(catalog.codes, catalog.level_sizes, dataset.item_ids, dataset.content_hash())
    return make_data_dir(tmp_path / "data", dataset, catalog)


def test_whole_pipeline_ground_rationales_sft_eval(tmp_path):
    from pauserec.eval.run_eval import evaluate_run
    from pauserec.rationale import acquire_rationales, load_rationales
    from pauserec.train.grounding import ground
    from pauserec.train.run import train

    data_dir = _catalogue_data(tmp_path)
    backbone = make_tiny_backbone(tmp_path / "backbone", hidden=32, layers=2)
    common = [f"cache_dir={tmp_path / 'cache'}", "train.bf16=false", "train.batch_size=8", "train.val_users=20",
              "train.logging_steps=2", "decode.num_beams=5", "eval.ks=[1,5]", "eval.bootstrap=0", "train.max_users=60"]
    g = ground(build_config(overrides=[*common, f"model.backbone={backbone}", "train.max_steps=4", "train.eval_every=2"]),
               data_dir, tmp_path / "ground")
    assert g["task_rows"]["sid2title"] == 48 and g["task_rows"]["item2sid"] == 46  # 5% of 48 held out
    stats = acquire_rationales(build_config(overrides=common), data_dir, tmp_path / "rat", progress=False)
    assert stats["users"] == 60 and stats["status"].get("ok", 0) > 0
    assert set(load_rationales(tmp_path / "rat")) <= {json.loads(r)["key"] for r in open(tmp_path / "rat" / "rationales.jsonl")}
    again = acquire_rationales(build_config(overrides=common), data_dir, tmp_path / "rat2", progress=False)
    assert again["from_cache"] == again["examples"] and again["generated"] == 0

    cfg = build_config(overrides=[*common, f"model.backbone={tmp_path / 'ground' / 'model'}", "arm.name=cot",
                                  f"arm.rationales={tmp_path / 'rat'}", "arm.max_rationale_tokens=12",
                                  "train.max_steps=4", "train.eval_every=4"])
    cost = train(cfg, data_dir, tmp_path / "cot")
    assert cost["with_rationale"] > 0 and cost["train_users"] == 60
    # the stages it was built from, recorded with their content hashes
    lineage = {r["stage"]: r for r in json.loads((tmp_path / "cot" / "lineage.json").read_text())["upstream"]}
    assert lineage["backbone"]["run"] == str((tmp_path / "ground").resolve())
    assert lineage["rationales"]["path"] == str((tmp_path / "rat").resolve()) and len(lineage["rationales"]["sha256"]) == 64
    assert json.loads((tmp_path / "ground" / "lineage.json").read_text())["upstream"] == []  # a plain backbone
    # the loss is logged with its parts: the rationale (lead) and the SID, which the rationale must not hide
    logged = [e for e in json.loads((tmp_path / "cot" / "train_log.json").read_text()) if "loss" in e]
    assert logged and all(e["sid_loss"] > 0 and e["lead_loss"] > 0 for e in logged)
    result = evaluate_run(tmp_path / "cot", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "cot" / "predictions.jsonl").read_text().splitlines()]
    assert all("rationale" in r for r in rows)
    assert result["cost"]["inference"]["think_tokens_per_user"] >= 1
    stages = [s["stage"] for s in result["cost"]["pipeline"]["stages"]]
    assert stages == ["ground", "rationales", "train:cot"]
    assert result["cost"]["pipeline"]["seconds"] == pytest.approx(sum(s["seconds"] for s in result["cost"]["pipeline"]["stages"]))

    # the same pipeline as a bench grid: cot variants named by their arm, compared on validation, costed whole
    import yaml

    from pauserec.bench import run_grid

    shared = {"cache_dir": str(tmp_path / "cache"), "train.bf16": False, "train.batch_size": 8, "train.val_users": 20,
              "decode.num_beams": 10, "eval.ks": [1, 5, 10], "eval.bootstrap": 0, "train.max_users": 60,
              "train.max_steps": 4, "train.eval_every": 4, "eval.max_users": 30}
    cot = {"model.backbone": str(tmp_path / "ground" / "model"), "arm.rationales": str(tmp_path / "rat")}
    grid = {"name": "cot", "datasets": {"planted": str(data_dir)}, "seeds": [0], "set": shared, "models": {
        "direct": {"set": {"model.backbone": str(backbone)}},
        "cot-short": {"arm": "cot", "set": {**cot, "arm.max_rationale_tokens": 4}},
        "cot-long": {"arm": "cot", "set": {**cot, "arm.max_rationale_tokens": 12}}}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    result = run_grid(tmp_path / "grid.yaml", tmp_path / "bench", log=lambda m: None)
    rows = {r["model"]: r for r in result["rows"]}
    assert all(v["status"] == "done" for v in result["cells"].values()) and rows["cot-long"]["arm"] == "cot"
    assert sorted(rows[m]["val_best"] for m in ("cot-short", "cot-long")) == [False, True]
    cell_cost = json.loads((tmp_path / "bench" / "planted" / "cot-long" / "seed0" / "cost.json").read_text())
    assert rows["cot-long"]["train_seconds"] == pytest.approx(cell_cost["pipeline"]["seconds"])
    assert rows["cot-long"]["train_seconds"] > cell_cost["train"]["train_seconds"]  # grounding + rationales counted


def test_local_teacher_never_repeats_an_ngram_when_told(tmp_path, monkeypatch):
    from transformers.generation.utils import GenerationMixin

    from pauserec.rationale.local import LocalProvider

    path = make_tiny_backbone(tmp_path / "teacher", hidden=32, layers=2)
    reqs = [RationaleRequest(str(i), ({"title": f"item {i}"},), {"title": "x"}) for i in range(4)]
    generated: list[list[int]] = []
    original = GenerationMixin.generate

    def recording(model, **kwargs):
        ids = original(model, **kwargs)
        generated.extend(ids[:, kwargs["input_ids"].shape[1] :].tolist())
        return ids

    monkeypatch.setattr(GenerationMixin, "generate", recording)

    def new_token_ids(no_repeat: int) -> list[list[int]]:
        generated.clear()
        LocalProvider(str(path), str(tmp_path / "c"), 16, 0.0, batch_size=4, no_repeat_ngram_size=no_repeat).generate(reqs)
        return list(generated)

    assert any(len(set(ids)) < len(ids) for ids in new_token_ids(0))  # a random tiny model loops
    assert all(len(set(ids)) == len(ids) for ids in new_token_ids(1))  # unigrams: no token twice
    assert LocalProvider(str(path), "c", 4, 0.0, 1, no_repeat_ngram_size=3).settings()["no_repeat_ngram_size"] == 3


def test_local_teacher_is_loaded_once_per_provider(tmp_path, monkeypatch):
    from pauserec.rationale import local

    path = make_tiny_backbone(tmp_path / "teacher", hidden=32, layers=2)
    loads = []
    real_load = local._load_teacher
    monkeypatch.setattr(local, "_load_teacher", lambda *a: loads.append(a) or real_load(*a))
    teacher = local.LocalProvider(str(path), str(tmp_path / "c"), 4, 0.0, batch_size=2)
    reqs = [RationaleRequest(str(i), ({"title": f"item {i}"},), {"title": "x"}) for i in range(3)]
    assert teacher.generate(reqs) == teacher.generate(reqs)  # acquisition calls once per chunk of requests
    assert len(loads) == 1
