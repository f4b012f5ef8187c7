"""SASRec baseline: trained on the training part only, ranked under our contract, run directory written."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("cornac")

from helpers import make_data_dir, planted_data  # noqa: E402

from pauserec.baselines import get_baseline, run_baseline  # noqa: E402
from pauserec.baselines import sasrec  # noqa: E402
from pauserec.config import build_config  # noqa: E402
from pauserec.config import SplitConfig  # noqa: E402
from pauserec.data.split import Example, leave_one_out  # noqa: E402
from pauserec.errors import ConfigError, PauseRecError  # noqa: E402
from pauserec.io import read_json  # noqa: E402

TINY = ["baseline.sasrec.hidden=16", "baseline.sasrec.layers=1", "baseline.sasrec.epochs=15",
        "baseline.sasrec.batch_size=32", "baseline.sasrec.negatives=16", "baseline.sasrec.max_len=8"]


def train_parts(dataset):
    return leave_one_out(dataset, SplitConfig()).training_sequences(dataset)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    dataset, catalog = planted_data(n_items=48, n_users=120, length=8)
    return dataset, make_data_dir(tmp_path_factory.mktemp("planted"), dataset, catalog)


def test_cornac_sees_only_training_parts(planted):
    dataset, _ = planted
    train_set = sasrec.cornac_train_set(train_parts(dataset), dataset.n_items, seed=0)
    items = train_set.uir_tuple[1]
    for u, seq in enumerate(dataset.sequences):
        got = [int(items[i]) for i in train_set.sessions[train_set.sid_map[u]]]
        assert got == seq[:-2]  # order kept, validation and test targets absent
    assert train_set.num_items == dataset.n_items and list(train_set.iid_map.values()) == list(range(dataset.n_items))


def test_training_never_reaches_a_target(planted, monkeypatch):
    dataset, _ = planted
    seen = {}
    real = sasrec.cornac_train_set
    monkeypatch.setattr(sasrec, "cornac_train_set", lambda seqs, n, seed: seen.setdefault("s", real(seqs, n, seed)))
    cfg = build_config(overrides=[*TINY, "baseline.sasrec.epochs=1"])
    sasrec.fit_sasrec(train_parts(dataset), dataset.n_items, cfg.baseline.sasrec, seed=0)
    train_set = seen["s"]
    count = len(train_set.uir_tuple[1])
    assert count == sum(len(s) - 2 for s in dataset.sequences)


def test_sasrec_beats_popularity_on_valid(planted, tmp_path):
    _, data = planted
    over = [*TINY, "eval.split=valid", "eval.bootstrap=0", "eval.ks=[10]", "decode.num_beams=10"]
    result = run_baseline("sasrec", build_config(overrides=over), data, tmp_path / "sas", progress=False)
    pop = run_baseline("popularity", build_config(overrides=over), data, tmp_path / "pop")
    chance = 10 / 48
    assert result["metrics"]["recall@10"]["mean"] > max(pop["metrics"]["recall@10"]["mean"], chance) + 0.1


def test_run_directory_contract(planted, tmp_path):
    _, data = planted
    cfg = build_config(overrides=[*TINY, "baseline.sasrec.epochs=1", "eval.max_users=30", "eval.bootstrap=10"])
    run_baseline("sasrec", cfg, data, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "env.json", "metrics.json", "predictions.jsonl", "cost.json"):
        assert (run / name).exists(), name
    metrics, cost, env = read_json(run / "metrics.json"), read_json(run / "cost.json"), read_json(run / "env.json")
    assert metrics["model"] == "sasrec" and metrics["split"] == "test" and metrics["metrics"]["users"]["count"] == 30
    assert cost["train"]["train_seconds"] > 0 and cost["inference"]["latency_per_user_s"] > 0
    assert cost["inference"]["peak_memory_bytes"] > 0 and "dataset_hash" in env and "split_hash" in env
    rows = (run / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 30


def test_scores_match_cornac_score_one_by_one(planted):
    dataset, _ = planted
    cfg = build_config(overrides=[*TINY, "baseline.sasrec.epochs=1"])
    model = sasrec.fit_sasrec(train_parts(dataset), dataset.n_items, cfg.baseline.sasrec, seed=0)
    examples = leave_one_out(dataset, cfg.split).valid[:5]
    batch = sasrec.score_histories(model, examples)
    assert batch.shape == (5, dataset.n_items)
    for row, ex in zip(batch, examples):
        np.testing.assert_allclose(row, model.score(ex.user, list(ex.history)), rtol=1e-4, atol=1e-5)


def test_top_k_excludes_history_items():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]], dtype=np.float32)
    items, _ = sasrec.top_k(scores, 3, [frozenset({0, 2}), frozenset()])
    assert items.tolist() == [[1, 3, 4], [4, 3, 2]]
    items, _ = sasrec.top_k(scores, 3)
    assert items.tolist()[0] == [0, 1, 2]


def test_rank_with_exclusion_drops_every_seen_item(planted):
    dataset, _ = planted
    cfg = build_config(overrides=[*TINY, "baseline.sasrec.epochs=1"])
    model = sasrec.fit_sasrec(train_parts(dataset), dataset.n_items, cfg.baseline.sasrec, seed=0)
    examples = leave_one_out(dataset, cfg.split).test
    seen = [frozenset(dataset.sequences[e.user][:-1]) for e in examples]
    items, _ = sasrec.rank(model, examples, 10, batch=7, exclude=seen)
    assert all(not (set(row) & s) for row, s in zip(items, seen))
    plain, _ = sasrec.rank(model, examples, 10, batch=7)
    assert any(set(row) & s for row, s in zip(plain, seen))  # without it, history items do get ranked


def test_histories_left_padded_and_cut():
    ex = [Example(0, (1, 2, 3, 4), 5), Example(1, (7,), 8)]
    assert sasrec.padded_histories(ex, 3, pad=9).tolist() == [[2, 3, 4], [9, 9, 7]]


def test_bad_input_one_line():
    with pytest.raises(PauseRecError, match="unknown baseline 'sasrek'"):
        get_baseline("sasrek")
    with pytest.raises(ConfigError, match="heads=3 does not divide"):
        build_config(overrides=["baseline.sasrec.heads=3"])
    with pytest.raises(ConfigError, match="baseline.sasrec"):
        build_config(overrides=["baseline.sasrec.hiden=8"])


def test_cli_eval_baseline_sasrec(planted, tmp_path):
    from typer.testing import CliRunner

    from pauserec.cli import app

    _, data = planted
    sets = [a for o in [*TINY, "baseline.sasrec.epochs=1", "eval.bootstrap=10"] for a in ("--set", o)]
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "s"), "--baseline", "sasrec", "--data", str(data), *sets])
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "s" / "metrics.json")["model"] == "sasrec"
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "x"), "--baseline", "gru4rec", "--data", str(data)])
    assert isinstance(r.exception, PauseRecError) and "unknown baseline 'gru4rec'" in str(r.exception)
    assert not (tmp_path / "x").exists()


def test_exclude_history_through_the_entry_point(planted, tmp_path):
    dataset, data = planted
    cfg = build_config(overrides=[*TINY, "baseline.sasrec.epochs=1", "eval.exclude_history=true", "eval.bootstrap=0"])
    run_baseline("sasrec", cfg, data, tmp_path / "ex", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "ex" / "predictions.jsonl").read_text().splitlines()]
    seen = {dataset.user_ids[u]: {dataset.item_ids[i] for i in seq[:-1]} for u, seq in enumerate(dataset.sequences)}
    assert rows and all(not (set(r["items"]) & seen[r["user"]]) for r in rows)
    assert read_json(tmp_path / "ex" / "metrics.json")["metrics"]["users"]["exclude_history"] is True
