"""The one evaluation path: any ranker under the contract, one cost schema, a baseline = one module + one line."""

from __future__ import annotations

import json

import pytest
from helpers import make_data_dir, planted_data
from typer.testing import CliRunner

from pauserec import baselines
from pauserec.artifacts import DataDir, RunDir
from pauserec.baselines import run_baseline
from pauserec.config import build_config
from pauserec.eval.contract import Ranking, evaluate_ranker
from pauserec.eval.cost import COST_SCHEMA, TrainCost, peak_memory_gb
from pauserec.io import read_json

TRAIN_KEYS = {"train_seconds", "peak_memory_bytes", "parameters"}
INFERENCE_KEYS = {"users", "seconds", "latency_per_user_s", "users_per_second", "peak_memory_bytes", "threads",
                  "measured_at"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    dataset, catalog = planted_data(n_items=30, n_users=25, length=6)
    return make_data_dir(tmp_path_factory.mktemp("contract"), dataset, catalog)


class Reverse:
    """A baseline defined outside the package: the highest item indices first, minus the exclusions."""

    name, uses_catalog = "reverse", False
    calls: list[tuple[int, int, bool]] = []

    def __init__(self, cfg, progress=False):
        self.n = 0

    def fit(self, data, split, run):
        self.n = data.dataset().n_items
        return TrainCost(0.5, 123, parameters=0, details={"epochs": 0})

    def rank(self, examples, k, exclude):
        Reverse.calls.append((len(examples), k, exclude is not None))
        skip = exclude or [frozenset()] * len(examples)
        items = [[i for i in range(self.n - 1, -1, -1) if i not in s][:k] for s in skip]
        return Ranking(items, scores=[[float(i) for i in row] for row in items], details={"batch_size": 7})


def test_a_new_baseline_is_one_registry_line(data, tmp_path, monkeypatch):
    monkeypatch.setitem(baselines.BASELINES, "reverse", f"{__name__}:Reverse")
    Reverse.calls.clear()
    cfg = build_config(overrides=["eval.max_users=10", "eval.bootstrap=0", "eval.ks=[5,10]",
                                  "eval.exclude_history=true"])
    result = run_baseline("reverse", cfg, data, tmp_path / "rev", progress=False)
    assert Reverse.calls == [(10, 10, True)]  # the subset, k = max(eval.ks), the history exclusions
    run = tmp_path / "rev"
    assert result["model"] == "reverse" and read_json(run / "metrics.json")["metrics"]["users"]["count"] == 10
    assert read_json(run / "env.json")["kind"] == "baseline:reverse"
    dataset = DataDir(data).dataset()
    for row in map(json.loads, (run / "predictions.jsonl").read_text().splitlines()):
        seen = {dataset.item_ids[i] for i in dataset.sequences[dataset.user_ids.index(row["user"])][:-1]}
        assert len(row["items"]) == 10 and not seen & set(row["items"]) and row["scores"] == sorted(row["scores"])[::-1]
    cost = read_json(run / "cost.json")
    assert cost["train"] == {"train_seconds": 0.5, "peak_memory_bytes": 123, "parameters": 0, "epochs": 0}
    assert cost["inference"]["batch_size"] == 7 and cost["pipeline"] is None
    # the CLI and the grid know it too, through the same table
    r = CliRunner().invoke(__import__("pauserec.cli", fromlist=["app"]).app,
                           ["eval", str(tmp_path / "cli"), "--baseline", "reverse", "--data", str(data),
                            "--set", "eval.bootstrap=0"])
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "cli" / "metrics.json")["model"] == "reverse"


@pytest.mark.parametrize("name", ["popularity", "reverse"])
def test_every_baseline_writes_one_cost_schema(name, data, tmp_path, monkeypatch):
    monkeypatch.setitem(baselines.BASELINES, "reverse", f"{__name__}:Reverse")
    run_baseline(name, build_config(overrides=["eval.bootstrap=0"]), data, tmp_path / name, progress=False)
    cost = read_json(tmp_path / name / "cost.json")
    assert cost["schema"] == COST_SCHEMA and set(cost) == {"schema", "train", "pipeline", "inference"}
    assert TRAIN_KEYS <= set(cost["train"]) and INFERENCE_KEYS <= set(cost["inference"])
    assert not any("peak_memory_gb" in section for section in (cost["train"], cost["inference"]))
    assert cost["inference"]["peak_memory_bytes"] > 0 and cost["inference"]["users"] == 25


def test_evaluate_ranker_keeps_rationales_and_the_rankers_own_timing(data, tmp_path):
    class Talker:
        name = "talker"

        def rank(self, examples, k, exclude):
            return Ranking([[0] * 0 + list(range(k)) for _ in examples], rationales=[f"r{e.user}" for e in examples],
                           seconds=42.0)

    cfg = build_config(overrides=["eval.bootstrap=0", "eval.max_users=4"])
    d = DataDir(data)
    out = evaluate_ranker(Talker(), cfg, d, RunDir.create(tmp_path / "t", cfg), train=None)
    rows = [json.loads(x) for x in (tmp_path / "t" / "predictions.jsonl").read_text().splitlines()]
    assert [r["rationale"] for r in rows] == [f"r{d.dataset().user_ids.index(r['user'])}" for r in rows]
    assert "scores" not in rows[0] and out["cost"]["train"] is None and out["cost"]["inference"]["seconds"] == 42.0


def test_peak_memory_reads_both_schemas():
    assert peak_memory_gb({"peak_memory_bytes": 2_500_000_000}) == 2.5
    assert peak_memory_gb({"peak_memory_gb": 1.25}) == 1.25  # cost.json written before schema 2
    assert peak_memory_gb({}) is None and peak_memory_gb(None) is None


def test_compare_shows_peak_memory_of_old_and_new_records():
    from pauserec.report import _cost_rows

    new = {"cost": {"inference": {"peak_memory_bytes": 3e9}}}
    old = {"cost": {"inference": {"peak_memory_gb": 1.5}}}
    assert dict(_cost_rows([new, old]))["peak memory (GB)"] == ["3.00", "1.50"]


def test_train_cost_round_trips_a_recorded_one():
    record = {"train_seconds": 3.0, "steps": 5, "peak_memory_bytes": 9, "parameters": {"total": 4, "trainable": 2}}
    cost = TrainCost.from_json(record)
    assert cost.details == {"steps": 5} and cost.to_json() == record
