"""Checkpoint-selection rule arithmetic (pauserec.eval.selection) on hand-made per-checkpoint scores."""

import pytest

from pauserec.eval.selection import Rule, pick, rule_summary, run_outcome

RULES = {
    "final": Rule(None, "last"),
    "val300": Rule("val300", "max", "s300"),
    "valV": Rule("valV", "max", "sV"),
    "loss": Rule("loss", "min", "sloss"),
}


def ckpt(step, val300, valV, loss, test):
    return {"step": step, "val300": val300, "valV": valV, "loss": loss, "test": test,
            "s300": 3.0, "sV": 20.0, "sloss": 1.5}


# run a: test prefers the last checkpoint; 300 users pick step 100, V users and the loss pick 300
RUN_A = [ckpt(300, 0.050, 0.061, 2.60, 0.070), ckpt(100, 0.061, 0.055, 2.90, 0.050), ckpt(200, 0.055, 0.058, 2.70, 0.060)]
# run b: test prefers step 200; 300 users tie 200 and 300 (the earliest, 200, is kept), the loss ties 100 and 300
RUN_B = [ckpt(100, 0.040, 0.050, 2.50, 0.040), ckpt(200, 0.060, 0.065, 2.60, 0.065), ckpt(300, 0.060, 0.060, 2.50, 0.062)]


def test_each_rule_picks_its_checkpoint_first_of_ties():
    assert {n: pick(RUN_A, r) for n, r in RULES.items()} == {"final": 300, "val300": 100, "valV": 300, "loss": 300}
    assert {n: pick(RUN_B, r) for n, r in RULES.items()} == {"final": 300, "val300": 200, "valV": 200, "loss": 100}


def test_hits_regret_and_cost_over_runs():
    outcomes = {"a": run_outcome(RUN_A, RULES, "test"), "b": run_outcome(RUN_B, RULES, "test")}
    assert outcomes["a"]["test_best_steps"] == [300] and outcomes["b"]["test_best_steps"] == [200]
    a, b = outcomes["a"]["rules"], outcomes["b"]["rules"]
    assert a["val300"]["regret"] == pytest.approx(0.020) and not a["val300"]["hit"]
    assert b["final"]["regret"] == pytest.approx(0.003) and b["loss"]["regret"] == pytest.approx(0.025)
    assert a["valV"]["seconds"] == 60.0 and a["final"]["seconds"] == 0.0
    s = rule_summary(outcomes)
    assert (s["final"]["hits"], s["val300"]["hits"], s["valV"]["hits"], s["loss"]["hits"]) == (1, 1, 2, 1)
    assert s["valV"]["hit_rate"] == 1.0 and s["final"]["hit_rate"] == 0.5
    assert s["final"]["mean_regret"] == pytest.approx(0.0015) and s["final"]["worst_regret"] == pytest.approx(0.003)
    assert s["val300"]["mean_regret"] == pytest.approx(0.010) and s["val300"]["worst_regret"] == pytest.approx(0.020)
    assert s["loss"]["mean_regret"] == pytest.approx(0.0125) and s["valV"]["worst_regret"] == 0.0
    assert (s["val300"]["mean_seconds"], s["loss"]["mean_seconds"]) == (9.0, 4.5)


def test_a_tie_on_test_counts_as_a_hit():
    run = [ckpt(100, 0.05, 0.05, 2.0, 0.06), ckpt(200, 0.04, 0.04, 2.1, 0.06)]
    out = run_outcome(run, RULES, "test")
    assert out["test_best_steps"] == [100, 200] and out["rules"]["final"]["hit"] and out["rules"]["val300"]["hit"]


def test_no_checkpoint_is_refused():
    with pytest.raises(ValueError, match="no checkpoint"):
        pick([], RULES["final"])
