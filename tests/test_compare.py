"""Paired comparison of evaluated runs: golden differences, same-users check, CLI table and figure."""

import numpy as np
import pytest
from typer.testing import CliRunner

from pauserec.cli import app
from pauserec.errors import PauseRecError
from pauserec.eval.compare import compare_runs, paired_difference
from pauserec.eval.metrics import bootstrap_interval
from pauserec.io import write_json, write_jsonl
from pauserec.artifacts import RunDir


def test_paired_difference_golden():
    base = np.array([1.0, 0.0, 1.0, 0.0])
    other = np.array([1.0, 1.0, 0.0, 1.0])
    d = paired_difference(base, other, n_resamples=2000)
    assert d["mean"] == pytest.approx(0.25)  # (0 + 1 - 1 + 1) / 4
    assert (d["only_baseline"], d["only_other"]) == (1, 2)
    assert -1.0 <= d["ci_low"] < 0.25 < d["ci_high"] <= 1.0


def test_identical_runs_differ_by_exactly_zero():
    v = np.array([1.0, 0.0, 0.5, 0.0, 1.0])
    d = paired_difference(v, v.copy())
    assert (d["mean"], d["ci_low"], d["ci_high"], d["only_baseline"], d["only_other"]) == (0, 0, 0, 0, 0)


def test_pairing_removes_the_spread_between_users():
    # other = base + 20 extra hits out of 400 users: the separate intervals overlap, the paired one excludes zero
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.3).astype(float)
    other = base.copy()
    other[np.flatnonzero(base == 0)[:20]] = 1.0
    d = paired_difference(base, other)
    assert d["mean"] == pytest.approx(0.05)
    assert bootstrap_interval(other, 1000)[0] < bootstrap_interval(base, 1000)[1]
    assert d["ci_low"] > 0 and (d["only_baseline"], d["only_other"]) == (0, 20)


def fake_run(root, name, hits, users=("u0", "u1", "u2", "u3"), exclude_history=None):
    """A run directory whose predictions put the target first for users in ``hits`` and nowhere otherwise."""
    run = root / name
    rows = [{"user": u, "target": f"t{u}", "items": [f"t{u}"] if u in hits else ["x", "y"]} for u in users]
    write_jsonl(run / "predictions.jsonl", rows)
    mean = len(hits) / len(users)
    m = {"mean": mean, "ci_low": mean, "ci_high": mean}
    record = {"count": len(users)} if exclude_history is None else {"count": len(users), "exclude_history": exclude_history}
    write_json(run / "metrics.json", {"model": name, "split": "test",
                                      "metrics": {"recall@10": m, "ndcg@10": m, "users": record}})
    write_json(run / "cost.json", {"inference": {"latency_per_user_s": 0.1}})
    return run


def test_compare_runs_and_cli(tmp_path):
    base = fake_run(tmp_path, "direct", {"u0", "u2"})
    other = fake_run(tmp_path, "pause", {"u0", "u1", "u3"})
    diffs = compare_runs(base, [other], ks=[10], n_resamples=200)
    assert diffs[str(other)]["recall@10"]["mean"] == pytest.approx(0.25)
    assert diffs[str(other)]["ndcg@10"]["mean"] == pytest.approx(0.25)  # rank 0: gain 1

    r = CliRunner().invoke(app, ["compare", str(base), str(other), "--plot", str(tmp_path / "fig.png")], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "+0.2500" in r.output and "1 / 2" in r.output
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".fig.png.*"))  # no temp file left behind


def test_runs_on_other_users_are_refused(tmp_path):
    base = fake_run(tmp_path, "direct", {"u0"})
    other = fake_run(tmp_path, "pause", {"u0"}, users=("u0", "u1", "u9"))
    with pytest.raises(PauseRecError, match="different users"):
        compare_runs(base, [other])
    with pytest.raises(PauseRecError, match="evaluate the run first"):
        compare_runs(base, [tmp_path / "missing"])
    with pytest.raises(PauseRecError, match="evaluate it first"):
        RunDir(tmp_path / "missing").evaluation()


def test_runs_ranking_different_item_sets_are_refused(tmp_path):
    """With and without history exclusion the runs ranked different candidates: not a paired comparison. A result
    made before the option existed (no flag) counts as the whole catalogue."""
    old = fake_run(tmp_path, "old", {"u0"})
    full = fake_run(tmp_path, "full", {"u1"}, exclude_history=False)
    masked = fake_run(tmp_path, "masked", {"u1"}, exclude_history=True)
    assert compare_runs(old, [full], ks=[10], n_resamples=10)
    with pytest.raises(PauseRecError, match="exclude_history"):
        compare_runs(full, [masked])
