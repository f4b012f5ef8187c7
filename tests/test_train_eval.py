"""End to end on a tiny random backbone: train each arm, select on validation, evaluate, resume."""

import json
import logging

import pytest
import torch
from helpers import make_data_dir, planted_data

from pauserec.config import build_config
from pauserec.errors import ArtifactMismatchError, DivergedError, PauseRecError
from pauserec.eval.run_eval import evaluate_run
from pauserec.model.tiny import make_tiny_backbone
from pauserec.train.run import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data_dir = make_data_dir(root / "data", *planted_data())
    backbone = make_tiny_backbone(root / "backbone", hidden=64, layers=2)
    return root, data_dir, backbone


def config(backbone, root, *extra):
    return build_config(overrides=[
        f"model.backbone={backbone}", f"cache_dir={root / 'cache'}", "train.max_steps=200", "train.batch_size=16",
        "train.lr=0.003", "train.eval_every=100", "train.val_users=40", "train.logging_steps=10", "train.bf16=false",
        "decode.num_beams=5", "eval.ks=[1,5]", "eval.bootstrap=50", *extra,
    ])


@pytest.mark.parametrize("arm", ["direct", "pause"])
def test_train_then_evaluate(setup, arm):
    root, data_dir, backbone = setup
    cfg = config(backbone, root, f"arm.name={arm}", *(["arm.pause_tokens=2"] if arm == "pause" else []),
                 "train.logging_steps=1")
    run_dir = root / f"run-{arm}"
    cost = train(cfg, data_dir, run_dir)
    assert cost["steps"] == 200 and cost["real_tokens"] > 0 and 0 <= cost["padding_fraction"] < 0.5
    log = json.loads((run_dir / "train_log.json").read_text())
    # every label of direct and pause is an SID token: the SID part is the whole loss, there is no lead part
    losses = [e for e in log if "loss" in e]
    assert len(losses) == 200 and all(abs(e["sid_loss"] - e["loss"]) < 1e-3 and "lead_loss" not in e for e in losses)
    assert [e["step"] for e in log if "eval_recall@10" in e] == [100, 200]
    assert (run_dir / "model" / "config.json").exists()
    # selection reads validation NDCG@10; the cost reports both metrics at the selected step
    validations = [e for e in log if "eval_ndcg@10" in e]
    best = max(validations, key=lambda e: e["eval_ndcg@10"])  # max keeps the first of ties, as the Trainer does
    assert cost["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    assert (cost["select"], cost["kept_step"]) == ("validation_best", best["step"])
    assert (cost["best_val_ndcg@10"], cost["best_val_recall@10"]) == (best["eval_ndcg@10"], best["eval_recall@10"])

    result = evaluate_run(run_dir, progress=False)
    m = result["metrics"]
    assert m["users"]["count"] == 120
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert all(len(set(r["items"])) == len(r["items"]) == 5 for r in rows)  # distinct real items
    # the planted cluster structure is learnt: well above the 5/48 chance level
    assert m["recall@5"]["mean"] > 0.2, m
    inference = json.loads((run_dir / "cost.json").read_text())["inference"]
    assert inference["prefill_tokens"] > 0 and inference["latency_per_user_s"] > 0
    if arm == "pause":  # an inference-K ablation goes elsewhere and leaves the run's evaluation untouched
        before = (run_dir / "metrics.json").read_bytes()
        ablation = config(backbone, root, f"arm.name={arm}", "arm.pause_tokens=2", "arm.inference_pause_tokens=0")
        evaluate_run(run_dir, ablation, progress=False, out_dir=root / "k0")
        assert (run_dir / "metrics.json").read_bytes() == before
        k0 = json.loads((root / "k0" / "cost.json").read_text())["inference"]
        assert k0["prefill_tokens_per_user"] == pytest.approx(inference["prefill_tokens_per_user"] - 2)
        assert "inference_pause_tokens: 0" in (root / "k0" / "config.yaml").read_text()


def test_gradient_accumulation_logs_the_mean_loss(setup):
    """With train.grad_accum=2 the logged loss is the mean over the accumulated micro-batches (here all labels are
    SID tokens, so it equals the SID loss), not their sum: the Trainer divides our per-micro-batch mean."""
    root, data_dir, backbone = setup
    cfg = config(backbone, root, "train.max_steps=4", "train.eval_every=4", "train.batch_size=4", "train.grad_accum=2",
                 "train.logging_steps=1")
    train(cfg, data_dir, root / "run-accum")
    losses = [e for e in json.loads((root / "run-accum" / "train_log.json").read_text()) if "loss" in e]
    assert len(losses) == 4 and all(abs(e["loss"] - e["sid_loss"]) < 0.05 * e["sid_loss"] for e in losses), losses


def test_trie_loss_with_history_exclusion_end_to_end(setup):
    """train.loss=trie + decode.score_normalization=trie + eval.exclude_history: learns the planted structure,
    never recommends an item of the user's history, and scores are item log-probabilities (sum of exp <= 1)."""
    import math

    from pauserec.artifacts import DataDir
    from pauserec.eval.exclusion import seen_items

    root, data_dir, backbone = setup
    cfg = config(backbone, root, "arm.name=direct", "train.loss=trie", "decode.score_normalization=trie",
                 "eval.exclude_history=true")
    run_dir = root / "run-trie"
    train(cfg, data_dir, run_dir)
    m = evaluate_run(run_dir, progress=False)["metrics"]
    assert m["recall@5"]["mean"] > 0.2, m
    dataset = DataDir(data_dir).dataset()
    test = DataDir(data_dir).split(cfg).test
    seen = {dataset.user_ids[e.user]: {dataset.item_ids[i] for i in items}
            for e, items in zip(test, seen_items(dataset, test, "test"))}
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert all(not set(r["items"]) & seen[r["user"]] for r in rows)
    assert all(sum(math.exp(s) for s in r["scores"]) <= 1 + 1e-4 for r in rows)


def test_refuses_to_overwrite_and_checks_data_on_resume(setup, tmp_path):
    root, data_dir, backbone = setup
    cfg = config(backbone, root, "train.max_steps=2", "train.eval_every=2")
    train(cfg, data_dir, tmp_path / "r")
    with pytest.raises(PauseRecError, match="--resume"):
        train(cfg, data_dir, tmp_path / "r")
    other_dir = make_data_dir(tmp_path / "other", *planted_data(seed=1))
    with pytest.raises(ArtifactMismatchError):
        train(cfg, other_dir, tmp_path / "r", resume=True)


def test_interrupted_training_resumes_from_last_checkpoint(setup, tmp_path, monkeypatch):
    root, data_dir, backbone = setup
    cfg = config(backbone, root, "train.max_steps=6", "train.eval_every=2")
    from pauserec.train import trainer as trainer_module

    original = trainer_module.EvaluateAtEnd.on_step_end

    def crash_at_step_5(self, args, state, control, **kwargs):
        if state.global_step == 5:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(trainer_module.EvaluateAtEnd, "on_step_end", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data_dir, tmp_path / "r")
    assert not (tmp_path / "r" / "model").exists()  # no half-finished model is left behind
    monkeypatch.setattr(trainer_module.EvaluateAtEnd, "on_step_end", original)
    cost = train(cfg, data_dir, tmp_path / "r", resume=True)
    assert cost["resumed_from"].endswith("checkpoint-4")
    assert cost["steps"] == 6
    # the time-to-quality clock goes on from the checkpoint's validation instead of restarting at 0
    clock = [e["eval_train_seconds"] for e in json.loads((tmp_path / "r" / "train_log.json").read_text())
             if "eval_train_seconds" in e]
    assert len(clock) == 3 and clock == sorted(clock) and clock[0] > 0
    # the cost counts the part before the interruption too: wall time logged at the resumed checkpoint, then more
    log = json.loads((tmp_path / "r" / "train_log.json").read_text())
    wall_at_4 = next(e["eval_wall_seconds"] for e in log if e.get("step") == 4 and "eval_wall_seconds" in e)
    assert cost["train_seconds"] > wall_at_4 > clock[1] and cost["train_clock_seconds"] >= clock[-1]
    assert (tmp_path / "r" / "model" / "config.json").exists()
    # and the tokens and examples of all 6 steps, as many as an uninterrupted run of the same seed trains on
    whole = train(cfg, data_dir, tmp_path / "whole")
    counts = ("examples_seen", "real_tokens", "padded_tokens")
    assert [cost[c] for c in counts] == [whole[c] for c in counts] and cost["counts_from_step"] == 0


def test_time_cap_stops_validates_and_saves(setup, tmp_path):
    root, data_dir, backbone = setup
    cfg = config(backbone, root, "train.max_steps=50", "train.eval_every=50", "train.max_minutes=0.000001")
    cost = train(cfg, data_dir, tmp_path / "r")
    assert cost["stopped_by_time_cap"] and cost["steps"] == 1
    log = json.loads((tmp_path / "r" / "train_log.json").read_text())
    assert [e["step"] for e in log if "eval_recall@10" in e] == [1]  # the stopped weights were validated
    assert cost["best_checkpoint"].endswith("checkpoint-1")


def test_diverged_training_stops_with_a_clear_error(setup, tmp_path, monkeypatch):
    root, data_dir, backbone = setup
    from pauserec.train import trainer as trainer_module

    real_nll = trainer_module.tree_nll
    monkeypatch.setattr(trainer_module, "tree_nll", lambda *a: (lambda n, t, w: (n * float("nan"), t, w))(*real_nll(*a)))
    cfg = config(backbone, root, "train.max_steps=20", "train.eval_every=20", "train.logging_steps=2")
    with pytest.raises(DivergedError, match="diverged: grad_norm = nan at step 2"):
        train(cfg, data_dir, tmp_path / "r")


def test_nan_weights_are_refused_at_decoding(setup, tmp_path):
    import torch

    root, data_dir, backbone = setup
    cfg = config(backbone, root, "train.max_steps=2", "train.eval_every=2")
    train(cfg, data_dir, tmp_path / "r")
    model_dir = tmp_path / "r" / "model"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight.fill_(float("nan"))
    model.save_pretrained(model_dir)
    with pytest.raises(DivergedError, match="NaN"):
        evaluate_run(tmp_path / "r", progress=False)


def test_level_softmax_by_hand():
    import torch

    from pauserec.train.batches import LevelSoftmax

    # vocabulary of 6: tokens 2,3 = level 0 codes 0,1; tokens 4,5 = level 1 codes 0,1
    sm = LevelSoftmax([torch.tensor([2, 3]), torch.tensor([4, 5])], vocab_size=6)
    logits = torch.tensor([[9.0, 9.0, 1.0, 2.0, 5.0, 5.0], [9.0, 9.0, 1.0, 2.0, 3.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    targets = torch.tensor([3, 4, 1])  # level-0 code 1, level-1 code 0, and a plain token
    nll = sm.nll(logits, targets)
    expected0 = -torch.log_softmax(torch.tensor([1.0, 2.0]), 0)[1]
    expected1 = -torch.log_softmax(torch.tensor([3.0, 0.0]), 0)[0]
    expected2 = -torch.log_softmax(logits[2], 0)[1]  # not an SID token: full vocabulary
    torch.testing.assert_close(nll, torch.stack([expected0, expected1, expected2]))


def test_tied_head_reload_warning_is_quiet_but_other_warnings_are_not(caplog):
    import logging

    import pauserec.train.trainer  # noqa: F401  (installs the filter)

    log = logging.getLogger("transformers.trainer")
    log.warning("There were missing keys in the checkpoint model loaded: ['lm_head.weight'].")
    log.warning("There were missing keys in the checkpoint model loaded: ['model.norm.weight'].")
    assert "lm_head" not in caplog.text and "model.norm.weight" in caplog.text


def test_one_list_for_everyone_is_flagged_as_a_collapse(caplog):
    from pauserec.train.trainer import validation_scores, warn_if_collapsed

    collapsed = validation_scores([[1, 2, 3]] * 19 + [[3, 2, 1]], list(range(20)), seconds=0.0)
    assert collapsed["distinct_lists"] == pytest.approx(2 / 20)
    healthy = validation_scores([[i, i + 1] for i in range(20)], list(range(20)), seconds=0.0)
    assert healthy["distinct_lists"] == 1.0
    with caplog.at_level(logging.WARNING):
        warn_if_collapsed(healthy["distinct_lists"], step=100)
        warn_if_collapsed(collapsed["distinct_lists"], step=120)  # 0.10: at the threshold, not below it
        assert "not reading the history" not in caplog.text
        warn_if_collapsed(1 / 20, step=130)
    assert "step 130: only 5.0% of validation users" in caplog.text


def test_validation_scores_and_best_validation_by_hand():
    from pauserec.train.trainer import best_validation, validation_scores

    # user 0 hits at rank 2 (gain 1/log2(3)), user 1 misses
    scores = validation_scores([[5, 7, 9], [1, 2, 3]], [7, 4], seconds=1.5)
    assert scores == pytest.approx({"recall@10": 0.5, "ndcg@10": 0.5 / 1.5849625007211562, "distinct_lists": 1.0,
                                    "val_seconds": 1.5})
    log = [{"loss": 3.0, "step": 10}, {"eval_recall@10": 0.1, "eval_ndcg@10": 0.05, "step": 10},
           {"eval_recall@10": 0.1, "eval_ndcg@10": 0.07, "step": 20}]
    assert best_validation(log, 20) == {"best_val_recall@10": 0.1, "best_val_ndcg@10": 0.07}
    assert best_validation(log, None) == {"best_val_recall@10": None, "best_val_ndcg@10": None}


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_select_final_keeps_the_last_steps_weights_and_no_best_checkpoint(setup, tmp_path):
    """train.select=final: RUN/model holds the last step's weights (equal to its checkpoint, unlike an earlier
    one), validation is still logged at every eval_every, and no best checkpoint is tracked or protected:
    save_total_limit=1 leaves the last checkpoint alone; save_total_limit=0 keeps every checkpoint."""
    root, data_dir, backbone = setup
    common = ["train.max_steps=30", "train.eval_every=10", "train.resumable=false", "train.select=final"]
    cost = train(config(backbone, root, *common, "train.save_total_limit=0"), data_dir, tmp_path / "all")
    run = tmp_path / "all"
    assert (cost["select"], cost["kept_step"], cost["best_checkpoint"]) == ("final", 30, None)
    log = json.loads((run / "train_log.json").read_text())
    validations = {e["step"]: e for e in log if "eval_ndcg@10" in e}
    assert sorted(validations) == [10, 20, 30]  # logged for curves
    assert cost["best_val_ndcg@10"] == validations[30]["eval_ndcg@10"]
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == \
        ["checkpoint-10", "checkpoint-20", "checkpoint-30"]  # 0 = keep all
    kept, last, early = (_weights(p) for p in (run / "model", run / "checkpoints" / "checkpoint-30",
                                                 run / "checkpoints" / "checkpoint-10"))
    assert set(kept) <= set(last)
    assert all(torch.equal(kept[k], last[k]) for k in kept)
    assert any(not torch.equal(kept[k], early[k]) for k in kept)

    cost = train(config(backbone, root, *common, "train.save_total_limit=1"), data_dir, tmp_path / "one")
    assert [p.name for p in (tmp_path / "one" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-30"]
    assert cost["kept_step"] == 30 and "select: final" in (tmp_path / "one" / "config.yaml").read_text()
