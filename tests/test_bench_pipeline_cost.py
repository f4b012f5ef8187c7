"""``benchmarks/bench_pipeline_cost.py``: the whole-pipeline arithmetic (hand-computed), the alternating order, the
token count of a full run against the real trainer's own count, and one end-to-end run on a tiny model and tiny
data (no timing is asserted anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_benchmark_scripts import BENCHMARKS, load, results_into, run_main

from pauserec.train.trainer import SeededSampler

pc = load(BENCHMARKS / "bench_pipeline_cost.py")
common = __import__("sys").modules["common"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A planted data directory, a tiny backbone and a cache folder."""
    from helpers import make_data_dir, planted_data

    from pauserec.model.tiny import make_tiny_backbone

    root = tmp_path_factory.mktemp("pipeline-cost")
    return {"data": make_data_dir(root / "data", *planted_data()), "backbone": make_tiny_backbone(root / "backbone"),
            "cache": root / "cache"}


def tiny_sets(t: dict[str, Path]) -> list[str]:
    return [f"model.backbone={t['backbone']}", f"cache_dir={t['cache']}"]


# --- the schedule ---------------------------------------------------------------------------------------------------

def test_rounds_alternate_every_stage_once_per_round() -> None:
    assert pc.alternating(["A", "B", "C"], 2) == [(0, "A"), (0, "B"), (0, "C"), (1, "A"), (1, "B"), (1, "C")]
    calls: list[str] = []

    def stage(name: str):
        def run() -> dict:
            calls.append(name)
            return {"seconds": float(len(calls)), "units": 2}
        return run

    records = pc.run_rounds({s: stage(s) for s in "ABC"}, 2, log=lambda line: None)
    assert calls == ["A", "B", "C", "A", "B", "C"]  # not A A B B C C
    assert [r["seconds"] for r in records["B"]] == [2.0, 5.0]  # each stage's records in round order


# --- the whole-pipeline arithmetic, by hand -------------------------------------------------------------------------

def test_stage_rate_is_the_median_over_rounds_of_seconds_per_unit() -> None:
    rounds = [{"seconds": 3.0, "units": 100}, {"seconds": 1.0, "units": 50}, {"seconds": 9.0, "units": 100}]
    assert pc.stage_rate(rounds) == pytest.approx(0.03)  # 0.03, 0.02, 0.09 -> median 0.03


RATES = {"train:direct": 0.001, "train:pause:1": 0.001, "train:pause:4": 0.0012, "train:cot": 0.001,
         "ground": 0.002, "acquire:local": 0.3, "acquire:template": 1e-6}
UNITS = {"train:direct": 1e6, "train:pause:1": 1.5e6, "train:pause:4": 2e6, "train:cot": 3e6, "ground": 2e5,
         "acquire:local": 1e4, "acquire:template": 1e4}


def test_pipeline_cost_is_each_stages_rate_times_its_full_run_units() -> None:
    costs = pc.pipeline_costs(RATES, UNITS, pc.pipelines_of(["direct", "pause:1", "pause:4", "cot"]))
    assert set(costs) == {"direct", "pause:1", "pause:4", "cot", "cot-template"}
    assert costs["direct"]["total_seconds"] == pytest.approx(1000)
    assert costs["pause:4"]["total_seconds"] == pytest.approx(2400)  # 0.0012 x 2e6
    # cot: grounding 0.002 x 2e5 = 400, teacher 0.3 x 1e4 = 3000, SFT 0.001 x 3e6 = 3000
    assert costs["cot"]["total_seconds"] == pytest.approx(6400)
    assert costs["cot"]["stages"]["acquire:local"] == {"s_per_unit": 0.3, "units": 1e4, "seconds": pytest.approx(3000)}
    assert costs["cot-template"]["total_seconds"] == pytest.approx(3400.01)  # 400 + 0.01 + 3000
    totals = {a: c["total_seconds"] for a, c in costs.items()}
    assert pc.ratios(totals, "direct")["cot"] == pytest.approx(6.4)
    assert pc.ratios(totals, "cot")["pause:1"] == pytest.approx(1500 / 6400)
    assert pc.ratios({"a": 1.0}, "cot") == {"a": None}


def test_paper_ratios_are_time_saved_against_cot() -> None:
    train = {"direct": 1000.0, "pause:1": 1500.0, "pause:4": 2400.0, "cot": 6400.0}
    infer = {"direct": 0.10, "pause:1": 0.12, "pause:4": 0.15, "cot": 0.30}
    p = pc.paper_ratios(train, infer)
    assert set(p["per_arm"]) == {"pause:1", "pause:4"}  # direct is no pause arm
    assert p["per_arm"]["pause:1"]["training_saved"] == pytest.approx(0.765625)  # 1 - 1500 / 6400
    assert p["per_arm"]["pause:4"]["training_saved"] == pytest.approx(0.625)  # 1 - 2400 / 6400
    assert p["per_arm"]["pause:1"]["inference_faster"] == pytest.approx(0.6)  # 1 - 0.12 / 0.30
    assert p["per_arm"]["pause:4"]["inference_speedup"] == pytest.approx(2.0)  # 0.30 / 0.15
    assert p["best"] == {"training_saved": pytest.approx(0.765625), "inference_faster": pytest.approx(0.6),
                         "inference_speedup": pytest.approx(2.5)}
    assert p["paper"] == {"training_saved": 0.65, "inference_faster": 0.713}


def test_floors_by_hand() -> None:
    limits = {"bf16_model_shapes_flops": 1e9, "copy_bytes_per_s": 1e8}
    # 6 x 1000 x 10 + 6 x 8 x 50 = 62,400 FLOP -> 6.24e-5 s; 28 x 100 bytes -> 2.8e-5 s
    assert common.train_step_floor(10, 50, 1000, 8, 100, limits) == pytest.approx(6.24e-5 + 2.8e-5)
    assert common.forward_floor(10, 50, 1000, 8, limits) == pytest.approx(2.08e-5)  # a third of the matmul work


# --- the token count of a full run ------------------------------------------------------------------------------------

def test_step_units_cut_each_epoch_as_the_trainer_does() -> None:
    """5 units, micro-batches of 2, 2 per step: an epoch is [2, 2] + [1] (its last step shorter), then the next."""
    steps = list(pc.step_units(5, 3, batch=2, grad_accum=2, steps=4))
    o0, o1 = SeededSampler(5, 3).order(0), SeededSampler(5, 3).order(1)
    assert steps == [[o0[0:2], o0[2:4]], [o0[4:5]], [o1[0:2], o1[2:4]], [o1[4:5]]]
    assert len(list(pc.step_units(5, 3, 2, 2, 3))) == 3


def test_full_run_tokens_equal_the_real_trainers_count(tiny) -> None:
    """Across epoch ends and gradient accumulation, the collator over the sampler order counts exactly the tokens the
    real SFTTrainer trains on, for every arm."""
    sets = [*tiny_sets(tiny), "train.batch_size=8", "train.grad_accum=2", "train.max_steps=19", "train.logging_steps=1"]
    direct = common.load_recipe(str(tiny["data"]), [*sets, "arm.name=direct"])
    pause = common.load_recipe(str(tiny["data"]), [*sets, "arm.name=pause", "arm.pause_tokens=3"])
    n = len(direct.units)
    assert 19 * 16 > n * 2  # the run spans more than two epochs
    _, _, counted = common.trainer_loop(direct, 19)
    full = pc.full_run_tokens(direct)
    assert full["steps"] == 19 and full["real_tokens"] == sum(counted)
    assert [c[0] for c in pc.step_counts(direct, 19)] == counted
    _, _, counted_pause = common.trainer_loop(pause, 19)
    assert pc.full_run_tokens(pause)["real_tokens"] == sum(counted_pause)
    # each example seen has its 3 pauses; they also end the prefix it shared with the user's next example, so the
    # packed count grows by more than 3 per example (which is why the count is the collator's, not a formula)
    seen = sum(len(direct.units[j]) for step in pc.step_units(n, 0, 8, 2, 19) for mb in step for j in mb)
    assert sum(counted_pause) - sum(counted) > 3 * seen


# --- end to end ----------------------------------------------------------------------------------------------------------

def test_the_script_runs_end_to_end_on_a_tiny_model(tiny, tmp_path, monkeypatch) -> None:
    results = results_into(tmp_path, monkeypatch, pc)
    monkeypatch.setattr(pc, "machine_limits", lambda h, i: {"bf16_model_shapes_flops": 1e9, "copy_bytes_per_s": 1e9})
    sets = [*tiny_sets(tiny), f"rationale.model={tiny['backbone']}", "train.max_steps=12"]
    ground = [*tiny_sets(tiny), "train.max_steps=3"]
    run_main(pc, monkeypatch, tiny["data"], "--arms", "direct", "pause:2", "cot", "--rounds", 2, "--warmup", 1,
             "--steps", 1, "--ground-warmup", 0, "--ground-steps", 1, "--users", 4, "--rationale-sample", 3,
             "--teacher-batch", 2, "--cot-rationale-tokens", 5, "--name", "pc",
             *[a for s in sets for a in ("--set", s)], *[a for s in ground for a in ("--ground-set", s)])
    record = json.loads((results / "pc.json").read_text())
    stages = ["train:direct", "train:pause:2", "train:cot", "ground", "acquire:local", "acquire:template",
              "infer:direct", "infer:pause:2", "infer:cot"]
    assert list(record["records"]) == stages and all(len(r) == 2 for r in record["records"].values())
    assert set(record["pipelines"]) == {"direct", "pause:2", "cot", "cot-template"}
    assert record["pipelines"]["cot"]["stages"]["acquire:local"]["units"] == record["full_run_units"]["acquire:template"]
    infer = {a: record["records"][f"infer:{a}"][0] for a in ("direct", "pause:2", "cot")}
    assert infer["pause:2"]["prefill_tokens"] - infer["direct"]["prefill_tokens"] == 2 * 4  # K per user
    assert infer["cot"]["think_tokens"] == 5 * 4  # an untrained rationale runs to its budget
    assert set(record["paper_ratios"]["per_arm"]) == {"pause:2"}
    md = (results / "pc.md").read_text()
    assert "## The paper's ratios beside ours" in md and "| cot-template |" in md
