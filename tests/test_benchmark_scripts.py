"""The benchmark scripts are not part of the package, so nothing else imports them: these tests keep them from
rotting silently when the package they call changes.

Every script is imported. Run on tiny inputs, with their outputs checked: ``grid_result.py``, ``inference_k.py``
(frozen; and ``common.write_result`` through them), ``time_to_quality.py``'s seed pairing and summaries, and
``reproduce_cells.py``'s comparison (``bench_pipeline_cost.py``: tests/test_bench_pipeline_cost.py). Import-only, and why: what ``bench_train``, ``bench_decode``, ``bench_packing``, ``bench_compile``,
``bench_arm_latency``, ``load_test`` and ``profile_step`` commit is timings (no value a tiny run could check, and
no timing in unit tests; ``bench_compile`` also compiles for minutes); ``foundation`` needs the sentence-transformers
embedding model to build SIDs; ``cot_vs_pause`` runs rationales, grounding and three trainings; ``baselines_vs_llm``
and ``sasrec_tuning`` need trained runs or several SASRec fits (not yet written: candidates for a next pass);
``arms_grid`` and ``cot_vs_pause`` are frozen (issue 42; ``pauserec bench`` replaces them) and kept for the results
that cite them. ``sasrec_test.py`` is gone: its cells are the grid ``benchmarks/grids/sasrec-test-scientific.yaml``
(eval-only variants; tests/test_bench.py).
"""

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


# --- behaviour of the scripts a committed result cites, on tiny inputs (seconds on a CPU) -----------------------

MACHINE = {"platform": "test", "cpu_count": 1, "torch": "-", "git_revision": "-"}


def results_into(tmp_path: Path, monkeypatch, *modules: ModuleType) -> Path:
    """Point ``common.RESULTS`` (and each module's copy of it) at ``tmp_path / "results"``: nothing is written into
    the repository's benchmarks/results."""
    results = tmp_path / "results"
    results.mkdir()
    for module in (sys.modules["common"], *modules):
        monkeypatch.setattr(module, "RESULTS", results, raising=False)
    return results


def run_main(module: ModuleType, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *map(str, argv)])
    module.main()


def test_grid_result_commits_the_table_of_a_tiny_grid(tmp_path: Path, monkeypatch) -> None:
    """``grid_result.py``: runs a grid's unfinished cells, writes NAME.json (rows, cells, command) and NAME.md (the
    grid's table), and saves the cells' results for a later ``--table-only``."""
    from helpers import make_data_dir, planted_data

    from pauserec.io import read_json

    gr = load(BENCHMARKS / "grid_result.py")
    results = results_into(tmp_path, monkeypatch, gr)
    data = make_data_dir(tmp_path / "data", *planted_data())
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"name": "tiny", "datasets": {"planted": str(data)}, "seeds": [0, 1],
                                "set": {"eval.bootstrap": 20, "cache_dir": str(tmp_path / "cache")},
                                "models": {"popularity": {}}}))
    gr.commit_grid(grid, tmp_path / "out", "tiny-grid", note="A note.", machine=MACHINE, results=tmp_path / "cells")
    record = read_json(results / "tiny-grid.json")
    (row,) = record["rows"]
    assert row["model"] == "popularity" and row["seeds"] == [0, 1] and record["validation_best"] == []
    assert {c["status"] for c in record["cells"].values()} == {"done"} and len(record["cells"]) == 2
    cell = read_json(tmp_path / "out" / "planted" / "popularity" / "seed0" / "metrics.json")
    assert row["metrics"]["recall@10"]["mean"] == pytest.approx(cell["metrics"]["recall@10"]["mean"])  # one ranking
    md = (results / "tiny-grid.md").read_text()
    assert md.startswith("# tiny-grid\n\nCommand: ") and "A note." in md and "popularity" in md
    assert "Validation-best variants (NDCG@10 on validation users, never test): -" in md
    assert (tmp_path / "cells" / "planted" / "popularity" / "seed1" / "metrics.json").exists()
    again = gr.commit_grid(grid, tmp_path / "again", "tiny-grid-2", run=False, machine=MACHINE,
                           results=tmp_path / "cells")  # --table-only elsewhere, from the saved cells
    assert json.loads(json.dumps(again["rows"])) == record["rows"]  # the same table, seeds as JSON keys


def test_inference_k_decodes_each_k_and_pairs_it_with_the_trained_k(tmp_path: Path, monkeypatch) -> None:
    """``inference_k.py`` on a tiny untrained pause run (trained K=2): one evaluation per inference K on the run's
    users, prefill tokens per user growing by exactly one per pause, differences paired against K=2."""
    from serve_helpers import make_tiny_run

    from pauserec.io import read_json

    ik = load(BENCHMARKS / "inference_k.py")
    results = results_into(tmp_path, monkeypatch, ik)
    run = make_tiny_run(tmp_path / "tiny", arm="pause", pause_tokens=2)
    monkeypatch.setattr(ik, "environment", lambda: MACHINE)
    sets = ["eval.max_users=12", "eval.ks=[5,10]", "decode.num_beams=10", "eval.bootstrap=20"]
    run_main(ik, monkeypatch, run, "--ks", 0, 2, 3, "--work", tmp_path / "work", "--name", "ik",
             *[a for kv in sets for a in ("--set", kv)])
    record = read_json(results / "ik.json")
    assert record["trained_k"] == 2 and sorted(record["by_inference_k"]) == ["0", "2", "3"]
    by_k = {int(k): r for k, r in record["by_inference_k"].items()}
    assert {r["metrics"]["users"]["count"] for r in by_k.values()} == {12}
    prefill = {k: r["cost"]["inference"]["prefill_tokens_per_user"] for k, r in by_k.items()}
    assert prefill[2] - prefill[0] == pytest.approx(2) and prefill[3] - prefill[2] == pytest.approx(1)
    paired = record["paired_difference_vs_trained_k"]
    assert paired["2"] is None and set(paired["0"]) >= {"recall@10"} and set(paired["3"]) >= {"recall@10"}
    assert "| 2 (trained) |" in (results / "ik.md").read_text() and (results / "ik.png").exists()
    assert not (run / "predictions.jsonl").exists()  # the run's own evaluation is left alone


def write_cell(d: Path, rows: list[dict], metrics: dict, packed: bool) -> Path:
    """An evaluated cell: ``metrics.json`` and its predictions, gzipped as ``--results`` keeps them when ``packed``."""
    import gzip

    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(metrics))
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if packed:
        with gzip.open(d / "predictions.jsonl.gz", "wt") as f:
            f.write(text)
    else:
        (d / "predictions.jsonl").write_text(text)
    return d


def test_reproduce_cells_finds_equal_cells_and_names_what_differs(tmp_path: Path) -> None:
    """``reproduce_cells.py``: two equal evaluations (one stored gzipped, as ``--results`` keeps cells) reproduce;
    one user ranked otherwise, or one metric bound moved, does not, and says which."""
    rc = load(BENCHMARKS / "reproduce_cells.py")
    metrics = {"model": "m", "split": "test", "metrics": {"recall@10": {"mean": 0.5, "ci_low": 0.0, "ci_high": 1.0},
                                                          "users": 2}}
    preds = [{"user": "0", "target": "1", "items": ["1", "2"], "scores": [2.0, 1.0]},
             {"user": "1", "target": "3", "items": ["2", "1"], "scores": [3.0, 0.5]}]

    def cell(name: str, rows: list[dict], m: dict, packed: bool = False) -> Path:
        return write_cell(tmp_path / name, rows, m, packed)

    stored = cell("stored", preds, metrics, packed=True)
    same = rc.compare(stored, cell("same", preds, metrics), score_tol=1e-5)
    assert same["reproduces"] and same["users"] == 2 and same["metrics_compared"] == 3
    swapped = [preds[0], {**preds[1], "items": ["1", "2"]}]
    other = rc.compare(stored, cell("swapped", swapped, metrics), score_tol=1e-5)
    assert not other["reproduces"] and other["users_ranked_differently"] == 1
    moved = json.loads(json.dumps(metrics))
    moved["metrics"]["recall@10"]["ci_high"] = 0.9
    bound = rc.compare(stored, cell("bound", preds, moved), score_tol=1e-5)
    assert not bound["reproduces"] and bound["max_metric_diff"] == pytest.approx(0.1)


def test_protocols_result_pairs_committed_cells_with_a_grids_cells_per_user(tmp_path: Path, monkeypatch) -> None:
    """``protocols_result.arms_grid_rows``: a committed cell (gzipped predictions) is paired with a grid's cell of
    the same users: the paired mean is the difference of the two means, and other users are refused."""
    pr = load(BENCHMARKS / "protocols_result.py")

    def cell(d: Path, hits: list[bool], packed: bool, users: int = 4) -> None:
        rows = [{"user": str(u), "target": "t", "items": ["t", "x"] if hits[u] else ["x", "y"]} for u in range(users)]
        recall = sum(hits) / users
        write_cell(d, rows, {"metrics": {m: {"mean": recall} for m in ("recall@5", "recall@10", "ndcg@5", "ndcg@10")}},
                   packed)

    committed, grid = tmp_path / "committed", tmp_path / "grid"
    cell(committed / "direct" / "seed0", [True, True, True, False], packed=True)
    cell(grid / "data" / "ref" / "seed0", [True, False, False, False], packed=False)
    monkeypatch.setattr(pr, "ARMS_GRID_CELLS", committed)
    monkeypatch.setattr(pr, "ARMS_GRID_MODELS", ("direct",))
    (row,) = pr.arms_grid_rows(grid, "data", ["ref"], seeds=(0,))
    assert row["metrics"]["recall@10"]["mean"] == pytest.approx(0.75) and row["users"] == 4
    assert row["paired"]["ref"]["recall@10"]["mean"] == pytest.approx(0.5)  # 0.75 - 0.25, hit at rank 1: ndcg too
    assert row["paired"]["ref"]["ndcg@10"]["mean"] == pytest.approx(0.5)
    assert "| direct | 0 | 4 |" in pr.arms_grid_section([row], ["ref"])
    cell(grid / "data" / "few" / "seed0", [True, False, False], packed=False, users=3)
    with pytest.raises(SystemExit, match="same users"):
        pr.arms_grid_rows(grid, "data", ["few"], seeds=(0,))


def test_selection_study_scores_every_checkpoint_and_resumes_from_its_cache(tmp_path: Path, monkeypatch) -> None:
    """``selection_study.py`` on a tiny trained run that kept its 3 checkpoints: every checkpoint scored on the
    trainer's validation users (as training logged them), on V validation users, by the SID loss and on test; each
    rule's pick, hit and regret follow from those numbers; a second study reads the cache and decodes nothing; the
    run's own model and train_cost.json are untouched."""
    from helpers import make_data_dir, planted_data

    from pauserec.config import build_config
    from pauserec.eval.run_eval import ArmRanker
    from pauserec.io import read_json
    from pauserec.model.tiny import make_tiny_backbone
    from pauserec.train.run import train

    study = load(BENCHMARKS / "selection_study.py")
    results = results_into(tmp_path, monkeypatch, study)
    monkeypatch.setattr(study, "environment", lambda: MACHINE)
    data = make_data_dir(tmp_path / "data", *planted_data())
    backbone = make_tiny_backbone(tmp_path / "backbone", hidden=32, layers=2)
    cfg = build_config(overrides=[
        f"model.backbone={backbone}", f"cache_dir={tmp_path / 'cache'}", "arm.name=pause", "arm.pause_tokens=1",
        "train.max_steps=30", "train.eval_every=10", "train.batch_size=16", "train.lr=0.003", "train.val_users=15",
        "train.bf16=false", "train.save_total_limit=0", "train.resumable=false", "decode.num_beams=10",
        "eval.max_users=20", "eval.ks=[5,10]"])
    run = tmp_path / "run"
    train(cfg, data, run)
    before = {n: (run / n).read_bytes() for n in ("train_cost.json", "model/model.safetensors")}

    run_main(study, monkeypatch, run, "--val-users", 40, "--name", "sel")
    record = read_json(results / "sel.json")
    (r,) = record["runs"]
    assert [c["step"] for c in r["checkpoints"]] == [10, 20, 30]
    u = r["users"]
    assert (u["trainer"], u["V"], u["test"], u["valid_of"]) == (15, 40, 20, 120) and u["union"] >= 40
    for c in r["checkpoints"]:  # the trainer's users scored as training scored them
        assert c["val_train_ndcg@10"] == pytest.approx(c["logged_val_ndcg@10"], abs=1e-12)
        assert c["val_V_sid_loss"] > 0 and c["seconds_sid_loss"] > 0
    outcome = record["outcomes"][str(run)]
    by_step = {c["step"]: c for c in r["checkpoints"]}
    best = max(c["test_ndcg@10"] for c in r["checkpoints"])
    assert outcome["rules"]["final"]["step"] == 30
    picks = {"val_ndcg_V": max(r["checkpoints"], key=lambda c: c["val_V_ndcg@10"])["step"],
             "val_sid_loss_V": min(r["checkpoints"], key=lambda c: c["val_V_sid_loss"])["step"]}
    for name, step in picks.items():
        assert outcome["rules"][name]["step"] == step
        assert outcome["rules"][name]["regret"] == pytest.approx(best - by_step[step]["test_ndcg@10"])
    assert set(record["summary"]) == {"final", "val_ndcg_train_users", "val_ndcg_V", "val_sid_loss_V"}
    md = (results / "sel.md").read_text()
    assert "Test is read here ONLY to measure" in md and "What this does not show" in md
    assert (run / "selection" / "checkpoint-20" / "test" / "scores.json").exists()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again: the cache was not used")

    monkeypatch.setattr(ArmRanker, "rank", no_decoding)
    run_main(study, monkeypatch, run, "--val-users", 40, "--name", "sel2")
    assert read_json(results / "sel2.json")["summary"] == record["summary"]
    assert before == {n: (run / n).read_bytes() for n in before}
