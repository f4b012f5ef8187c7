"""The benchmark scripts are not part of the package, so nothing else imports them: these tests keep them from
rotting silently when the package they call changes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py"))


def load(script: Path) -> ModuleType:
    """Import a script as a module (its ``main`` does not run); its folder goes on the path for ``common``."""
    sys.path.insert(0, str(script.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_script_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(script.parent))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_benchmark_script_imports(script: Path) -> None:
    load(script)


def test_time_to_quality_trains_the_baseline_once_and_every_other_recipe_once_per_seed() -> None:
    ttq = load(BENCHMARKS / "time_to_quality.py")
    groups = ttq.seeded_runs([["committed", "train.lr=1e-3"], ["new", "train.batch_size=8"]], "committed", [0, 1, 2])
    assert groups == {"committed": {"committed": "train.lr=1e-3"},
                      "new": {"new": "train.batch_size=8", "new-s1": "train.batch_size=8 seed=1",
                              "new-s2": "train.batch_size=8 seed=2"}}
    for overrides in groups["new"].values():  # every override must be one the config accepts
        ttq.build_config(overrides=overrides.split())
    seeded_base = ttq.seeded_runs([["committed", "train.lr=1e-3"]], "committed", [0], base_seeds=[0, 1])
    assert seeded_base == {"committed": {"committed": "train.lr=1e-3", "committed-s1": "train.lr=1e-3 seed=1"}}


def _run(work: Path, name: str, hits: list[bool], crossing: list[float]) -> dict:
    """A run directory whose predictions rank each user's target first (hit) or not at all, and its table row with a
    validation curve at steps 50 and 100 whose Recall@10 is ``crossing``."""
    (work / name).mkdir(parents=True)
    rows = [{"user": str(u), "target": "t", "items": ["t"] if hit else ["x"]} for u, hit in enumerate(hits)]
    (work / name / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = [{"step": s, "train_seconds": float(s), "recall@10": r} for s, r in zip((50, 100), crossing)]
    hit_rate = {"mean": sum(hits) / len(hits)}
    return {"curve": curve, "first_at_threshold": next((p for p in curve if p["recall@10"] >= 0.08), None),
            "metrics": {"recall@10": hit_rate, "ndcg@10": hit_rate}}


def test_time_to_quality_averages_each_users_metric_over_the_seeds_of_both_sides(tmp_path: Path) -> None:
    ttq = load(BENCHMARKS / "time_to_quality.py")
    rows = {"base": _run(tmp_path, "base", [True, False, False, False], [0.05, 0.09]),
            "base-s1": _run(tmp_path, "base-s1", [True, True, False, False], [0.09, 0.09]),
            "new": _run(tmp_path, "new", [True, True, True, False], [0.09, 0.10]),
            "new-s1": _run(tmp_path, "new-s1", [True, True, False, False], [0.05, 0.09])}
    new = ttq.seed_summary(tmp_path, ["new", "new-s1"], ["base", "base-s1"], rows, threshold=0.08)
    # per user: base (1, .5, 0, 0), new (1, 1, .5, 0): +0.25 on average
    assert new["paired_vs_baseline"]["recall@10"]["mean"] == pytest.approx(0.25)
    # the baseline's seed-mean curve (0.07, 0.09) first reaches 0.08 at step 100; so does new's (0.07, 0.095)
    assert new["base_seconds"] == 100.0 and new["mean_curve_crossing"]["step"] == 100
    assert [h["step"] for h in new["crossings"].values()] == [50, 100]
    assert ttq.seed_summary(tmp_path, ["base", "base-s1"], ["base", "base-s1"], rows, 0.08)["paired_vs_baseline"] is None


def test_time_to_quality_bounds_the_ratio_where_the_baseline_never_reaches_the_threshold(tmp_path: Path) -> None:
    ttq = load(BENCHMARKS / "time_to_quality.py")
    rows = {"base": _run(tmp_path, "base", [True, False], [0.05, 0.09]),
            "base-s1": _run(tmp_path, "base-s1", [False, False], [0.05, 0.06]),  # mean curve (0.05, 0.075): never
            "new": _run(tmp_path, "new", [True, True], [0.09, 0.10])}
    new = ttq.seed_summary(tmp_path, ["new"], ["base", "base-s1"], rows, threshold=0.08)
    assert new["base_seconds"] is None and new["base_clock"] == 100.0  # its whole clock, step 100
    table = ttq.seeds_report({"new": new}, "base", 2, 0.08)
    assert "| < 0.500 |" in table  # new crossed at 50 s, the baseline not within its 100 s
    # threshold-free: the baseline's best seed-mean value is 0.075 at 100 s; new's curve has 0.09 at 50 s
    assert new["baseline_best"]["step"] == 100 and new["to_baseline_best"]["step"] == 50
    assert "step 50 (50 s, 0.500)" in table
    assert ttq.ratio_text(None, None, 100.0) == "-" and ttq.ratio_text(30.0, 60.0, 100.0) == "0.500"


def test_time_to_quality_refuses_runs_trained_on_another_foundation(tmp_path: Path, monkeypatch) -> None:
    ttq = load(BENCHMARKS / "time_to_quality.py")
    monkeypatch.setattr(ttq, "foundation_hashes", lambda data: {"dataset_hash": "d", "catalog_hash": "c1"})
    for name, catalog in (("a", "c1"), ("b", "c2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "env.json").write_text(json.dumps({"dataset_hash": "d", "catalog_hash": catalog}))
    ttq.check_foundation(tmp_path, ["a", "not-trained-yet"], "data")
    with pytest.raises(SystemExit, match="another foundation.*catalog_hash c2 vs c1"):
        ttq.check_foundation(tmp_path, ["a", "b"], "data")
