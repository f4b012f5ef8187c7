"""The command line end to end on a small LC-Rec dataset: prepare -> sids -> popularity eval, and bad input."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pauserec.cli import app
from pauserec.errors import ArtifactMismatchError, DataError
from pauserec.report import print_comparison

runner = CliRunner()
N_ITEMS = 40


def write_lcrec(root, n_users=30):
    root.mkdir(parents=True, exist_ok=True)
    items = {str(i): {"title": f"Widget {i} &amp; gadget", "description": "A tool.", "brand": f"B{i % 3}",
                      "categories": f"Tools,Kind {i % 4}"} for i in range(N_ITEMS)}
    inter = {str(u): [(u + j * 7) % N_ITEMS for j in range(4 + u % 3)] for u in range(n_users)}
    (root / "Toy.item.json").write_text(json.dumps(items))
    (root / "Toy.inter.json").write_text(json.dumps(inter))
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = write_lcrec(root / "src")
    data = root / "data"
    small_sids = ["--set", "sid.codebook_size=8", "--set", "sid.collision=extra_level", "--set", f"cache_dir={root / 'cache'}"]
    r = runner.invoke(app, ["prepare", str(src), "--out", str(data)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sids", str(data), *small_sids])
    assert r.exit_code == 0, r.output
    return root, data


def test_prepare_sids_eval(prepared):
    root, data = prepared
    assert {"dataset.json", "stats.json", "config.yaml", "sids.json", "sid_stats.json"} <= {p.name for p in data.iterdir()}
    stats = json.loads((data / "sid_stats.json").read_text())
    assert stats["stats_after"]["items_sharing_sid"] == 0
    r = runner.invoke(app, ["eval", str(root / "pop"), "--baseline", "popularity", "--data", str(data),
                            "--set", "eval.bootstrap=20"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((root / "pop" / "metrics.json").read_text())
    assert metrics["metrics"]["users"]["count"] == 30
    assert (root / "pop" / "config.yaml").exists() and (root / "pop" / "predictions.jsonl").exists()


def test_runs_of_different_seeds_evaluate_the_same_users_by_default(prepared):
    """eval.subset_seed is fixed (0), not the run's seed: seeds differ in training, never in who is evaluated."""
    root, data = prepared
    users = {}
    for seed in (1, 2):
        r = runner.invoke(app, ["eval", str(root / f"pop-seed{seed}"), "--baseline", "popularity", "--data", str(data),
                                "--set", "eval.bootstrap=0", "--set", "eval.max_users=12", "--set", f"seed={seed}"])
        assert r.exit_code == 0, r.output
        lines = (root / f"pop-seed{seed}" / "predictions.jsonl").read_text().splitlines()
        users[seed] = [json.loads(x)["user"] for x in lines]
    assert len(users[1]) == 12 and users[1] == users[2]


def test_catalog_against_other_data_is_refused(prepared, tmp_path):
    root, data = prepared
    from pauserec.artifacts import DataDir

    other = write_lcrec(tmp_path / "other", n_users=25)
    r = runner.invoke(app, ["prepare", str(other), "--out", str(tmp_path / "d2")])
    assert r.exit_code == 0
    (tmp_path / "d2" / "sids.json").write_bytes((data / "sids.json").read_bytes())
    with pytest.raises(ArtifactMismatchError, match="rebuild"):
        DataDir(tmp_path / "d2").catalog()


def test_bad_input_gives_one_clear_line_and_writes_nothing(tmp_path):
    src = write_lcrec(tmp_path / "src")
    (src / "Toy.inter.json").write_text('{"0": [1, 2, 3], "1": [1, 2,, 3]}')
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pauserec.cli", "prepare", str(src), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Toy.inter.json" in proc.stderr and "line 1" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_unknown_item_names_user(tmp_path):
    from pauserec.data.readers import read_dataset

    src = write_lcrec(tmp_path / "src")
    (src / "Toy.inter.json").write_text('{"0": [1, 2, 3], "7": [1, 2, 999]}')
    with pytest.raises(DataError, match="999") as e:
        read_dataset(src)
    assert "'7'" in str(e.value)


def test_comparison_table_shows_accuracy_and_cost(capsys):
    from rich.console import Console

    m = {"mean": 0.1, "ci_low": 0.05, "ci_high": 0.15}
    results = [("popularity", {"metrics": {"recall@10": m, "users": {"count": 10}}}),
               ("pause", {"metrics": {"recall@10": m, "users": {"count": 10}},
                          "cost": {"train": {"train_seconds": 12.0}, "inference": {"latency_per_user_s": 0.25}}})]
    console = Console(width=200, record=True)
    print_comparison("t", results, console)
    text = console.export_text()
    assert "0.1000 [0.0500, 0.1500]" in text and "250.0" in text and "train time" in text


def test_demo_runs_every_stage_and_prints_the_comparison(tmp_path):
    """The README's first command, on a toy dataset and a tiny random backbone instead of Scientific and SmolLM2."""
    from pauserec.model.tiny import make_tiny_backbone

    src = write_lcrec(tmp_path / "src")
    backbone = make_tiny_backbone(tmp_path / "bb", hidden=32, layers=1)
    sets = [f"data.path={src}", f"model.backbone={backbone}", f"cache_dir={tmp_path / 'cache'}", "sid.codebook_size=8",
            "sid.collision=extra_level", "train.max_steps=4", "train.eval_every=4", "train.val_users=10",
            "train.bf16=false", "decode.num_beams=5", "eval.ks=[1,5]", "eval.max_users=20", "eval.bootstrap=20",
            "baseline.sasrec.epochs=1", "baseline.sasrec.negatives=8"]
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    for run in ("popularity", "sasrec", "direct", "pause"):  # the cells of the packaged demo grid
        assert (tmp_path / "demo" / "demo" / run / "seed0" / "metrics.json").exists(), run
    assert "direct" in r.output and "pause" in r.output and "popularity" in r.output and "sasrec" in r.output
    for reference in ("direct", "popularity", "sasrec"):
        assert f"paired difference vs {reference}" in r.output
    assert "beat" in r.output and "Share of SASRec's recall@5" in r.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert set(summary["runs"]) == {"popularity", "sasrec", "direct", "pause"}
    assert set(summary["paired_vs_popularity"]) == {"sasrec", "direct", "pause"}
    assert set(summary["paired_vs_sasrec"]) == {"direct", "pause"} and set(summary["paired_vs_direct"]) == {"pause"}
    assert set(summary["paired_vs_popularity"]["pause"]) == {"recall@5", "ndcg@5"}  # the metrics asked for
    sasrec_recall = summary["runs"]["sasrec"]["metrics"]["recall@5"]["mean"]
    for arm, share in summary["share_of_sasrec"].items():  # a share is the arm's recall over SASRec's
        arm_recall = summary["runs"][arm]["metrics"]["recall@5"]["mean"]
        assert share is None if sasrec_recall == 0 else abs(share * sasrec_recall - arm_recall) < 1e-12
    assert summary["wall_seconds"] > 0 and "train pause" in summary["stage_seconds"]
