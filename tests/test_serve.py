"""The HTTP service on a tiny random model: answers, validation, cold start, truncation, micro-batching."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import LiveServer, make_tiny_run

from pauserec.baselines.popularity import Popularity
from pauserec.serve import MicroBatcher, create_app, load_recommender

MAX_HISTORY = 4  # the tiny run's split.max_history
BEAMS = 8  # the tiny run's decode.num_beams


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("serve"), arm="pause", pause_tokens=2, max_history=MAX_HISTORY)


@pytest.fixture(scope="module")
def recommender(run_dir):
    return load_recommender(run_dir)


@pytest.fixture(scope="module")
def client(recommender):
    with TestClient(create_app(recommender)) as c:
        yield c


def post(client, **body):
    return client.post("/recommend", json=body)


def test_health_docs_and_page(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"]["arm"] == "pause" and h["model"]["beams"] == BEAMS
    assert h["model"]["default_pauses"] == 2 and h["model"]["max_history"] == MAX_HISTORY
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/items", "/health"} <= set(paths)
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and 'id="recommend"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_recommend_by_ids(client):
    r = post(client, history=["i1", "i2", "i3"], k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == len(set(ids)) == 5
    assert [it["rank"] for it in body["items"]] == [1, 2, 3, 4, 5]
    assert all(it["title"] == f"Item number {it['item_id'][1:]}" for it in body["items"])
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)  # log-probabilities
    assert body["pauses"] == 2 and not body["cold_start"] and body["truncated"] == 0
    assert body["history_used"] == ["i1", "i2", "i3"] and body["batch_size"] >= 1
    assert body["latency_ms"] >= body["decode_ms"] > 0


def test_titles_resolve_like_ids(client):
    by_id = post(client, history=["i7", "i8"], k=4).json()
    by_title = post(client, titles=["Item number 7", "item NUMBER 8"], k=4).json()
    assert by_title["history_used"] == ["i7", "i8"]
    assert [i["item_id"] for i in by_title["items"]] == [i["item_id"] for i in by_id["items"]]


def test_unknown_ids_and_titles_are_named(client):
    r = post(client, history=["i1", "nope", "i2", "also-not"], k=3)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail["unknown_item_ids"] == ["nope", "also-not"] and "'nope'" in detail["message"]
    r = post(client, titles=["Item number 1", "No such thing"])
    assert r.status_code == 422 and r.json()["detail"]["unknown_item_titles"] == ["No such thing"]
    assert post(client, history=["i1"], k=3).status_code == 200  # still serving


def test_empty_history_is_a_flagged_cold_start(client, recommender, run_dir):
    calls = recommender.stats.calls
    body = post(client, history=[], k=6).json()
    assert body["cold_start"] is True and body["pauses"] == 0 and body["batch_size"] == 0
    from pauserec.artifacts import DataDir

    env = __import__("json").loads((run_dir / "env.json").read_text())
    dataset = DataDir(env["data_dir"]).dataset()
    expected = Popularity(dataset.n_items).fit([s[:-2] for s in dataset.sequences]).order[:6].tolist()
    assert [it["item_id"] for it in body["items"]] == [dataset.item_ids[i] for i in expected]
    counts = [it["score"] for it in body["items"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    assert recommender.stats.calls == calls  # no decoder call
    assert post(client, k=3).json()["cold_start"] is True  # history omitted = empty


def test_long_history_is_truncated_as_in_training(client):
    history = [f"i{i}" for i in range(10)]
    long = post(client, history=history, k=5).json()
    assert long["truncated"] == 10 - MAX_HISTORY and long["history_used"] == history[-MAX_HISTORY:]
    short = post(client, history=history[-MAX_HISTORY:], k=5).json()
    assert short["truncated"] == 0
    assert [i["item_id"] for i in long["items"]] == [i["item_id"] for i in short["items"]]


@pytest.mark.parametrize("exclude_history", [False, True])
def test_served_ranking_is_the_evaluated_ranking(run_dir, tmp_path, exclude_history):
    """For each evaluated user, the service given the user's history before the test target (longer than
    max_history: it truncates as the evaluation does, and excludes all of it under eval.exclude_history) answers
    the ranking and scores that ``pauserec eval`` wrote to predictions.jsonl."""
    from pauserec.eval.run_eval import evaluate_run
    from pauserec.io import read_jsonl
    from pauserec.artifacts import RunDir

    run = RunDir(run_dir)
    cfg = run.config().model_copy(deep=True)
    cfg.eval.exclude_history, cfg.eval.max_users = exclude_history, 16
    evaluate_run(run_dir, cfg, progress=False, out_dir=tmp_path / "eval")
    rows = list(read_jsonl(tmp_path / "eval" / "predictions.jsonl"))
    dataset = run.data().dataset()  # the run's checked data directory
    sequences = dict(zip(dataset.user_ids, dataset.sequences, strict=True))
    assert len(rows) == 16 and all(len(sequences[r["user"]]) - 1 > MAX_HISTORY for r in rows)
    with TestClient(create_app(load_recommender(run_dir, cfg=cfg))) as c:
        for row in rows:
            history = [dataset.item_ids[i] for i in sequences[row["user"]][:-1]]
            served = post(c, history=history, k=len(row["items"])).json()
            assert served["truncated"] == len(history) - MAX_HISTORY
            assert [it["item_id"] for it in served["items"]] == row["items"], row["user"]
            assert [it["score"] for it in served["items"]] == pytest.approx(row["scores"], abs=1e-5)
            if exclude_history:
                assert not set(row["items"]) & set(history)


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"[1, 2, 3]",
    b'{"history": "i1"}',
    b'{"history": [["i1"]]}',
    b'{"history": [{"id": "i1"}]}',
    b'{"history": ["i1"], "k": "ten"}',
    b'{"history": ["i1"], "k": 2.5}',
    b'{"history": ["i1"], "k": 0}',
    b'{"history": ["i1"], "k": 9}',  # above the beam width
    b'{"history": ["i1"], "pauses": -1}',
    b'{"history": ["i1"], "pauses": 65}',
    b'{"history": ["i1"], "pauses": "2"}',
    b'{"history": ["i1"], "titles": ["Item number 2"]}',
    b'{"history": ["i1"], "unexpected": 1}',
    b'{"history": [null]}',
    b'{"k": 1e999}',  # FastAPI's default answer echoes the inf, which JSON cannot encode
    b'{"history": ["i1"], "k": NaN}',
])
def test_bad_requests_get_4xx_and_the_service_keeps_serving(client, body):
    r = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    assert "detail" in r.json()
    ok = post(client, history=["i1", "i2"], k=2)
    assert ok.status_code == 200 and len(ok.json()["items"]) == 2


def test_pause_count_is_chosen_per_request(client):
    k3 = post(client, history=["i1", "i2"], k=4, pauses=3).json()
    k0 = post(client, history=["i1", "i2"], k=4, pauses=0).json()
    assert k3["pauses"] == 3 and k0["pauses"] == 0
    assert [i["score"] for i in k3["items"]] != [i["score"] for i in k0["items"]]  # the pauses reach the model


def test_direct_arm_refuses_pauses(tmp_path):
    rec = load_recommender(make_tiny_run(tmp_path, arm="direct", pause_tokens=0))
    with TestClient(create_app(rec)) as c:
        assert c.get("/health").json()["model"]["max_pauses"] == 0
        r = post(c, history=["i1"], pauses=2, k=3)
        assert r.status_code == 422 and "no pause tokens" in r.json()["detail"]
        assert post(c, history=["i1"], k=3).json()["pauses"] == 0


def test_item_search(client):
    found = client.get("/items", params={"q": "number 1", "limit": 50}).json()["items"]
    titles = {it["title"] for it in found}
    assert titles == {"Item number 1", *(f"Item number {i}" for i in range(10, 20))}
    counts = [it["interactions"] for it in found]
    assert counts == sorted(counts, reverse=True)  # most popular first
    assert len(client.get("/items", params={"limit": 5}).json()["items"]) == 5  # empty query: popular items
    assert client.get("/items", params={"q": "zzz"}).json()["items"] == []
    assert client.get("/items", params={"limit": 0}).status_code == 422


async def _concurrent(url: str, histories: list[list[str]], k: int) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        rs = await asyncio.gather(*(c.post("/recommend", json={"history": h, "k": k}) for h in histories))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    return [r.json() for r in rs]


def test_concurrent_requests_share_one_decoder_call(recommender, client):
    histories = [[f"i{u}", f"i{u + 1}", f"i{(3 * u) % 48}"] for u in range(8)]
    alone = [post(client, history=h, k=5).json() for h in histories]  # one decoder call each
    app = create_app(recommender, max_batch=8, max_wait_ms=2000)  # a long wait: all 8 arrive well within it
    with LiveServer(app) as server:
        calls = recommender.stats.calls
        batched = asyncio.run(_concurrent(server.url, histories, 5))
        assert recommender.stats.calls == calls + 1
    assert [b["batch_size"] for b in batched] == [8] * 8
    for a, b in zip(alone, batched, strict=True):  # batching does not change the answer (up to float noise)
        assert np.allclose([i["score"] for i in a["items"]], [i["score"] for i in b["items"]], atol=1e-4)


def test_without_batching_requests_are_decoded_one_at_a_time(recommender):
    histories = [[f"i{u}", f"i{u + 2}"] for u in range(6)]
    with LiveServer(create_app(recommender, max_batch=1)) as server:
        calls = recommender.stats.calls
        out = asyncio.run(_concurrent(server.url, histories, 3))
        assert recommender.stats.calls == calls + 6
    assert [b["batch_size"] for b in out] == [1] * 6


def test_micro_batcher_bounds_batches_and_survives_a_failing_decode():
    calls: list[list[int]] = []

    def decode(queries):
        calls.append(list(queries))
        if -1 in queries:
            raise RuntimeError("boom")
        return [q * 10 for q in queries]

    async def scenario():
        b = MicroBatcher(decode, max_batch=4, max_wait_ms=50)
        await b.start()
        try:
            out = await asyncio.gather(*(b.submit(q) for q in range(10)))
            assert [r for r, _ in out] == [q * 10 for q in range(10)]
            assert all(info.size <= 4 for _, info in out) and len(calls) == 3  # 4 + 4 + 2
            with pytest.raises(RuntimeError, match="boom"):
                await asyncio.gather(b.submit(-1), b.submit(5))
            res, info = await b.submit(7)  # the worker lives on
            assert res == 70 and info.size == 1
        finally:
            await b.stop()

    asyncio.run(scenario())


def test_cli_serve_command(run_dir):
    from typer.testing import CliRunner

    from pauserec.cli import app
    from pauserec.errors import PauseRecError

    runner = CliRunner()
    assert "--no-batching" in runner.invoke(app, ["serve", "--help"]).output
    result = runner.invoke(app, ["serve", str(run_dir), "--dtype", "float8"])
    assert isinstance(result.exception, PauseRecError) and "float32 or bfloat16" in str(result.exception)
