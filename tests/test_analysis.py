"""The paper's analyses on tiny random models: knowledge probes (likelihood scoring, a planted sure answer), SID/title
alignment (CKA and retrieval golden values), rationale sets of controlled quality, the rationale-quality figure."""

import json
import random

import numpy as np
import pytest
import torch
from helpers import make_data_dir, planted_data
from typer.testing import CliRunner

from pauserec.analysis.alignment import alignment_analysis, alignment_of, linear_cka, pca_2d, retrieval_accuracy
from pauserec.analysis.knowledge import (Probe, category_probes, knowledge_analysis, option_scores,
                                         probe_candidates, score_probes, similarity_probes)
from pauserec.analysis.loading import ModelSpec, StudyData, probe_items
from pauserec.analysis.rationale_quality import rationale_quality_analysis
from pauserec.analysis.rationale_sets import derive_rationales, derived_texts, rationale_set_label
from pauserec.analysis.scoring import chat_ids, continuation_logprobs, option_logprobs
from pauserec.cli import app
from pauserec.config import build_config, config_to_yaml
from pauserec.data.dataset import Dataset
from pauserec.errors import PauseRecError
from pauserec.io import read_json, read_jsonl, write_json
from pauserec.model.backbone import load_backbone
from pauserec.model.tiny import make_tiny_backbone
from pauserec.model.vocab import extend_vocabulary, token_ids_by_level
from pauserec.sid.catalog import SIDCatalog
from pauserec.train.grounding import split_heldout_items

runner = CliRunner()


def _with_categories(dataset, catalog):
    """The planted catalogue with categories: ``Lab,Cluster k`` (k = first SID code), as in tests/test_cot.py."""
    fields = [{"title": f"Item number {i}", "categories": f"Lab,Cluster {catalog.codes[i, 0]}", "brand": "Acme"}
              for i in range(dataset.n_items)]
    dataset = Dataset(name="planted", item_ids=dataset.item_ids, item_fields=fields, user_ids=dataset.user_ids,
                      sequences=dataset.sequences)
    return dataset, SIDCatalog(catalog.codes, catalog.level_sizes, dataset.item_ids, dataset.content_hash())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A data directory, a tiny backbone and a 'trained run' (the backbone with the catalogue's SID tokens)."""
    root = tmp_path_factory.mktemp("analysis")
    dataset, catalog = _with_categories(*planted_data())
    data_dir = make_data_dir(root / "data", dataset, catalog)
    backbone = make_tiny_backbone(root / "backbone", hidden=32, layers=2)
    model, tok = load_backbone(str(backbone), root / "cache")
    extend_vocabulary(model, tok, catalog.all_tokens(), noise_std=0.5, seed=0)
    run = root / "runs" / "tiny-direct"
    model.save_pretrained(run / "model")
    tok.save_pretrained(run / "model")
    return {"root": root, "data": StudyData(data_dir, dataset, catalog), "backbone": backbone, "run": run,
            "model": model.eval(), "tok": tok}


# ---------------------------------------------------------------- items and probes


def test_split_heldout_items_is_the_grounding_rule():
    items = list(range(48))
    random.Random(0).shuffle(items)
    heldout, seen = split_heldout_items(48, 0.05)
    assert heldout == sorted(items[:2]) and seen == items[2:]


def test_probe_items_take_heldout_items_first():
    heldout = set(split_heldout_items(48, 0.25)[0])  # 12 items
    few = probe_items(range(48), 48, 0.25, 5, seed=0)
    assert len(few) == 5 and set(few) <= heldout
    many = probe_items(range(48), 48, 0.25, 20, seed=0)
    assert len(many) == 20 and heldout <= set(many)
    assert probe_items(range(48), 48, 0.25, 20, seed=0) == many and probe_items(range(48), 48, 0.25, 20, seed=1) != many


def test_category_and_similarity_probes_by_construction(study):
    dataset = study["data"].dataset
    items = probe_candidates(dataset)[:10]
    for p in category_probes(dataset, items, n_options=4, seed=0):
        assert len(p.options) == 4 and len(set(p.options)) == 4
        assert p.options[p.answer] == dataset.item_fields[p.item]["categories"].split(",")[1]
        assert "Item number" in p.question and p.null_question in p.question and "Item" not in p.null_question
    similar = similarity_probes(dataset, items, seed=0)
    assert len(similar) == 10
    titles = {f["title"]: f["categories"] for f in dataset.item_fields}
    for p in similar:
        own = dataset.item_fields[p.item]["categories"]
        assert titles[p.options[p.answer]] == own and titles[p.options[1 - p.answer]] != own
        assert p.fixed_answer == f'"{dataset.item_fields[p.item]["title"]}"' and "{option}" in p.question
    assert {p.answer for p in similar} == {0, 1}  # the true option is not always first
    assert category_probes(dataset, items, seed=0) == category_probes(dataset, items, seed=0)


def test_continuation_logprobs_batched_equal_one_by_one(study):
    model, tok = study["model"], study["tok"]
    prompts = [chat_ids(tok, q) for q in ["what is the item", "a new glass kit for the lab please"]]
    answers = [tok(a, add_special_tokens=False)["input_ids"] for a in ["glass", "small blue steel tape"]]
    pairs = [(p, a) for p in prompts for a in answers]
    batched = continuation_logprobs(model, [p for p, _ in pairs], [a for _, a in pairs], tok.pad_token_id, batch_size=4)
    with torch.no_grad():
        for (p, a), got in zip(pairs, batched):
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0].float(), -1)
            want = sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(a))
            assert got == pytest.approx(want, abs=1e-4)
    shared = option_logprobs(model, prompts, [answers, answers[::-1]], tok.pad_token_id, batch_size=2)
    np.testing.assert_allclose(shared[0] + shared[1][::-1], batched, atol=1e-4)  # one prefill per prompt, same numbers


def test_turned_probe_scores_the_fixed_answer_under_each_option(study):
    model, tok = study["model"], study["tok"]
    probe = Probe("similar", 0, 'Name a product similar to "{option}".', ("glass kit", "blue tape"), 0,
                  fixed_answer='"small glass"')
    answer = tok(probe.fixed_answer, add_special_tokens=False)["input_ids"]
    want = [continuation_logprobs(model, [chat_ids(tok, probe.question.format(option=o))], [answer], tok.pad_token_id)[0]
            for o in probe.options]
    np.testing.assert_allclose(option_scores(model, tok, [probe])[0], want, atol=1e-4)
    assert score_probes(model, tok, [probe])[0] == (want[0] > want[1])


def test_a_planted_sure_answer_is_chosen(tmp_path):
    """A model whose head always says one token: the option made of that token wins every probe."""
    path = make_tiny_backbone(tmp_path / "b", hidden=32, layers=2, tie_embeddings=False)
    model, tok = load_backbone(str(path), tmp_path / "cache")
    sure = tok("g", add_special_tokens=False)["input_ids"]
    assert len(sure) == 1
    head = torch.nn.Linear(32, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[sure[0]] = 50.0
    model.lm_head = head
    options = ("s", "g", "t", "f")
    good = [Probe("category", 0, f"question {k}", options, 1) for k in range(3)]
    bad = [Probe("category", 0, "question", options, 2)]
    assert score_probes(model.eval(), tok, good + bad).tolist() == [True, True, True, False]
    # turned round: the answer is fixed, the options fill the question; this model ignores the question: a tie
    turned = Probe("similar", 0, "like {option}?", options, 1, fixed_answer="g")
    np.testing.assert_allclose(option_scores(model, tok, [turned])[0], option_scores(model, tok, [turned])[0][0], atol=1e-4)
    # the same model ignores the question: calibrated against the question without the item, no option stands out
    blind = [Probe("category", 0, "about item 7: which?", options, 1, "which?")]
    np.testing.assert_allclose(option_scores(model, tok, blind, calibrate=True)[0], 0.0, atol=1e-4)
    assert option_scores(model, tok, blind)[0][1] > option_scores(model, tok, blind)[0][0] + 40


# ---------------------------------------------------------------- alignment


def test_linear_cka_golden_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # orthogonal transform, scale, shift
    assert linear_cka(x, rng.normal(size=(200, 8))) < 0.3
    with pytest.raises(ValueError, match="same rows"):
        linear_cka(x, x[:10])


def test_retrieval_accuracy_golden_values():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16))
    assert retrieval_accuracy(x, 2 * x) == {"top1": 1.0, "top10": 1.0}
    shuffled = retrieval_accuracy(x, x[rng.permutation(50)])
    assert shuffled["top1"] < 0.2 and shuffled["top10"] < 0.5
    a, b = pca_2d(x, x)
    assert a.shape == (50, 2) and np.allclose(a, b)


def _diagonal_catalogue(tok, model, n=28):
    """n items with distinct two-word titles and SIDs (i, i, i): every item owns its SID rows."""
    words = ["glass", "steel", "tape", "film", "book", "meter", "kit", "pack"]
    titles = [f"{a} {b}" for k, a in enumerate(words) for b in words[k + 1:]][:n]
    codes = np.stack([np.arange(n)] * 3, axis=1)
    catalog = SIDCatalog(codes, [n, n, n], [f"i{i}" for i in range(n)], "h")
    extend_vocabulary(model, tok, catalog.all_tokens(), noise_std=0.5, seed=0)
    return catalog, titles


def test_alignment_is_perfect_when_sid_rows_equal_title_means(tmp_path):
    path = make_tiny_backbone(tmp_path / "b", hidden=32, layers=2)
    model, tok = load_backbone(str(path), tmp_path / "cache")
    catalog, titles = _diagonal_catalogue(tok, model)
    items = list(range(catalog.n_items))
    before = alignment_of(model, tok, catalog, items, titles)
    assert before["item_to_title"]["top1"] < 0.5  # random rows: no alignment yet
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        for i, title in enumerate(titles):
            mean = emb[tok(title, add_special_tokens=False)["input_ids"]].mean(0)
            for ids in token_ids_by_level(tok, catalog):
                emb[ids[i]] = mean
    after = alignment_of(model, tok, catalog, items, titles)
    assert after["item_to_title"] == {"top1": 1.0, "top10": 1.0} == after["title_to_item"]
    assert after["cka"] == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- whole analyses on tiny models


def test_knowledge_analysis_writes_figure_and_tables(study, tmp_path):
    specs = [ModelSpec("base", str(study["backbone"])), ModelSpec("tiny-direct", str(study["run"] / "model"), study["run"])]
    table = knowledge_analysis(specs, study["data"], tmp_path / "out", cache_dir=study["root"] / "cache",
                               n_items=12, describe=2, seed=0)
    assert [r["model"] for r in table["models"]] == ["base", "tiny-direct"]
    assert table["probes"] == {"category": 12, "similar": 12} and table["items_heldout_of_grounding"] == 2
    for r in table["models"]:
        for kind in ("category", "category_calibrated", "similar"):
            acc = r[kind]
            assert acc["n"] == 12 and 0 <= acc["ci_low"] <= acc["mean"] <= acc["ci_high"] <= 1
        assert len(r["descriptions"]) == 2 and all(isinstance(d, str) for d in r["descriptions"])
    assert read_json(tmp_path / "out" / "knowledge.json")["models"][0]["category"] == table["models"][0]["category"]
    md = (tmp_path / "out" / "knowledge.md").read_text()
    assert "tiny-direct" in md and "Item number" in md
    assert (tmp_path / "out" / "knowledge.png").read_bytes()[:4] == b"\x89PNG"


def test_alignment_analysis_studies_base_at_init_and_runs(study, tmp_path):
    cfg = build_config(overrides=[f"cache_dir={study['root'] / 'cache'}"])
    specs = [ModelSpec("base", str(study["backbone"])), ModelSpec("tiny-direct", str(study["run"] / "model"), study["run"])]
    table = alignment_analysis(specs, study["data"], tmp_path / "out", cache_dir=cfg.cache_dir, cfg=cfg)
    assert [r["model"] for r in table["models"]] == ["base@init", "tiny-direct"] and table["items"] == 48
    assert "no SID tokens" in table["notes"][0]
    for r in table["models"]:
        assert 0 <= r["item_to_title"]["top1"] <= r["item_to_title"]["top10"] <= 1 and -1e-9 <= r["cka"] <= 1 + 1e-9
    assert (tmp_path / "out" / "alignment.png").read_bytes()[:4] == b"\x89PNG"
    assert "base@init" in (tmp_path / "out" / "alignment.md").read_text()


# ---------------------------------------------------------------- rationale sets and rationale quality


def test_derived_texts_by_hand():
    texts = [f"text {k} of the set" for k in range(10)]
    shuffled = derived_texts(texts, "shuffled", seed=0)
    assert sorted(shuffled) == sorted(texts) and all(a != b for a, b in zip(shuffled, texts))
    assert derived_texts(texts, "shuffled", seed=0) == shuffled != derived_texts(texts, "shuffled", seed=1)
    assert derived_texts(texts, "empty") == [""] * 10
    assert derived_texts(["one two three", "four"], "truncated", words=2) == ["one two", "four"]
    with pytest.raises(PauseRecError, match="unknown rationale variant"):
        derived_texts(texts, "noisy")


@pytest.fixture(scope="module")
def acquisition(study):
    from pauserec.rationale import acquire_rationales

    cfg = build_config(overrides=[f"cache_dir={study['root'] / 'cache'}", "train.max_users=40"])
    out = study["root"] / "rat-template"
    acquire_rationales(cfg, study["data"].data_dir, out, progress=False)
    return out


def test_derived_sets_keep_format_and_examples(acquisition, tmp_path):
    from pauserec.rationale import load_rationales

    source = read_jsonl(acquisition / "rationales.jsonl")
    assert sum(r["status"] == "ok" for r in source) > 10
    for variant in ("shuffled", "empty", "truncated"):
        out = tmp_path / variant
        stats = derive_rationales(acquisition, out, variant, seed=0, words=3)
        rows = read_jsonl(out / "rationales.jsonl")
        assert [(r["key"], r["status"]) for r in rows] == [(r["key"], r["status"]) for r in source]
        assert all(a["text"] == b["text"] for a, b in zip(rows, source) if a["status"] != "ok")
        ok = [r["text"] for r in rows if r["status"] == "ok"]
        assert set(load_rationales(out)) == set(load_rationales(acquisition))
        assert {p.name for p in out.iterdir()} >= {"rationales.jsonl", "rationale_stats.json", "cost.json", "config.yaml", "env.json"}
        assert stats["derived"]["variant"] == variant and read_json(out / "cost.json")["derived"]["variant"] == variant
        if variant == "empty":
            assert ok == [""] * len(ok) and stats["mean_words"] == 0
        if variant == "truncated":
            assert all(len(t.split()) <= 3 for t in ok) and rationale_set_label(out) == "truncated-3(template)"
        if variant == "shuffled":
            assert sorted(ok) == sorted(r["text"] for r in source if r["status"] == "ok")
            assert rationale_set_label(out) == "shuffled(template)"
    assert rationale_set_label(acquisition) == "template"
    with pytest.raises(PauseRecError, match="another directory"):
        derive_rationales(acquisition, acquisition, "empty")
    with pytest.raises(PauseRecError, match="not a rationale acquisition directory"):
        derive_rationales(tmp_path / "nothing", tmp_path / "x", "empty")


def _evaluated_run(path, arm, rationales, ndcg, recall, written=(), overrides=()):
    """A run directory as `pauserec eval` leaves it, as far as the analysis reads it (config.yaml, metrics.json,
    predictions.jsonl with the rationales ``written``, one user each)."""
    overrides = [f"arm.name={arm}", *overrides] + ([f"arm.rationales={rationales}"] if rationales else [])
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(config_to_yaml(build_config(overrides=overrides)))
    metric = lambda m: {"mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01}  # noqa: E731
    write_json(path / "metrics.json", {"model": arm, "split": "test", "metrics": {
        "ndcg@10": metric(ndcg), "recall@10": metric(recall), "users": {"count": 100.0, "distinct_lists": 97}}})
    rows = [{"user": str(u), "target": "1", "items": ["1", "2"], **({"rationale": t} if arm == "cot" else {})}
            for u, t in enumerate(written)]
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rationale_quality_figure_and_table(acquisition, tmp_path):
    empty = tmp_path / "rat-empty"
    derive_rationales(acquisition, empty, "empty")
    runs = [_evaluated_run(tmp_path / "cot-template", "cot", acquisition, 0.05, 0.08, written=["a b", "c", "a b"]),
            _evaluated_run(tmp_path / "cot-empty", "cot", empty, 0.03, 0.06, written=["", ""]),
            _evaluated_run(tmp_path / "cot-empty-lr", "cot", empty, 0.02, 0.05, written=[""], overrides=["train.lr=0.01"])]
    refs = [_evaluated_run(tmp_path / "direct", "direct", None, 0.04, 0.07),
            _evaluated_run(tmp_path / "pause", "pause", None, 0.06, 0.09)]
    table = rationale_quality_analysis(runs, tmp_path / "out", references=refs)
    assert [r["rationale_set"] for r in table["runs"]] == ["template", "empty(template)", "empty(template)"]
    default_lr = build_config().train.lr  # the cot runs differ in train.lr beyond their rationales: that is the setting
    assert [r["setting"] for r in table["runs"]] == [f"train.lr={default_lr}"] * 2 + ["train.lr=0.01"]
    assert [r["arm"] for r in table["references"]] == ["direct", "pause"]
    assert table["runs"][1]["metrics"]["ndcg@10"]["mean"] == 0.03
    assert [r["distinct_rationales"] for r in [*table["runs"], *table["references"]]] == [2, 1, 1, None, None]
    md = (tmp_path / "out" / "rationale-quality.md").read_text()
    assert "empty(template)" in md and "0.0900" in md
    assert (f"| cot-template | cot | template | train.lr={default_lr} | 0.0500 [0.0400, 0.0600] | 0.0800 [0.0700, 0.0900] "
            "| 100 | 2 | 97 |") in md
    assert (tmp_path / "out" / "rationale-quality.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PauseRecError, match="direct run"):
        rationale_quality_analysis([refs[0]], tmp_path / "out2")


def test_cli_analyze(acquisition, study, tmp_path):
    r = runner.invoke(app, ["analyze", "rationale-set", str(acquisition), "--out", str(tmp_path / "rat-short"),
                            "--variant", "truncated", "--words", "2"])
    assert r.exit_code == 0, r.output
    assert rationale_set_label(tmp_path / "rat-short") == "truncated-2(template)"
    run = _evaluated_run(tmp_path / "runs" / "cot", "cot", tmp_path / "rat-short", 0.02, 0.04)
    r = runner.invoke(app, ["analyze", "rationale-quality", str(run)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "analysis" / "rationale-quality.png").exists()  # default: analysis/ beside the run
    r = runner.invoke(app, ["analyze", "alignment", "--base", str(study["backbone"]), "--data",
                            str(study["data"].data_dir), "--out", str(tmp_path / "al"), "--items", "20"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "al" / "alignment.json").read_text())["items"] == 20
    r = runner.invoke(app, ["analyze", "knowledge", str(tmp_path / "runs" / "cot"), "--base", ""])
    assert isinstance(r.exception, PauseRecError) and "no trained model" in str(r.exception)
    r = runner.invoke(app, ["analyze", "wisdom"])
    assert isinstance(r.exception, PauseRecError) and "unknown analysis" in str(r.exception)


def test_runs_are_named_by_the_shortest_suffix_that_tells_them_apart(tmp_path):
    """A grid's cells all end in seed0: the table names them direct/seed0, pause-k1/seed0; one run keeps its name."""
    from pauserec.analysis.loading import distinct_names

    cells = [tmp_path / "g" / "scientific" / m / "seed0" for m in ("direct", "pause-k1")]
    assert distinct_names(cells) == ["direct/seed0", "pause-k1/seed0"]
    assert distinct_names([tmp_path / "runs" / "sci-cot"]) == ["sci-cot"]
    assert distinct_names([tmp_path / "a" / "base"], taken={"base"}) == ["a/base"]
    with pytest.raises(PauseRecError, match="same directory"):
        distinct_names([tmp_path / "x", tmp_path / "y" / ".." / "x"])
