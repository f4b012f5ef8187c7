"""Hostile requests to the HTTP service's /recommend (hypothesis): every answer is 200 or a 4xx/503 with a
reason, never a 500, never a hang, and the service keeps answering afterwards. A service refusing everything would
pass that, so valid requests (known ids or titles, k within the beams, a usable pause count) must get a 200 whose
ranking is the decoder's for that history."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import make_tiny_run

from pauserec.serve import create_app, load_recommender
from pauserec.serve.service import MAX_PAUSES, Query

KNOWN = [f"i{i}" for i in range(6)]  # item ids of the tiny run's planted catalogue
N_ITEMS, MAX_HISTORY, BEAMS, DEFAULT_PAUSES = 48, 4, 8, 2  # the tiny run's (tests/serve_helpers.py)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                    st.text(max_size=6), st.sampled_from(KNOWN), st.just("x" * 100_000), st.just("\x00"))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=12)
HISTORY = st.lists(st.one_of(st.sampled_from(KNOWN), st.sampled_from(KNOWN), VALUES), max_size=6)
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={"history": st.one_of(HISTORY, VALUES), "titles": st.one_of(
        st.lists(st.sampled_from(["Item number 1", "item NUMBER 2", "nope", ""]), max_size=3), VALUES),
        "k": st.one_of(st.integers(-3, 12), VALUES), "pauses": st.one_of(st.integers(-2, 6), st.just(10**9), VALUES),
        "extra": VALUES}),
    VALUES,
)


def random_case(title: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(title, flips + [False] * len(title)))


@st.composite
def valid_bodies(draw) -> dict:
    """A request the service must answer with a ranking: known ids (or their titles, in any case; empty = cold start),
    possibly longer than the run's max_history, k within the beams, the default or a usable pause count."""
    picked = draw(st.lists(st.integers(0, N_ITEMS - 1), max_size=MAX_HISTORY + 3))
    body: dict = {"k": draw(st.integers(1, BEAMS))}
    if draw(st.booleans()):
        body["history"] = [f"i{i}" for i in picked]
    else:
        body["titles"] = [random_case(f"Item number {i}", draw(st.lists(st.booleans(), max_size=6))) for i in picked]
    pauses = draw(st.one_of(st.none(), st.integers(0, MAX_PAUSES)))
    if pauses is not None:
        body["pauses"] = pauses
    return body


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    run = make_tiny_run(tmp_path_factory.mktemp("hostile-serve"), arm="pause", pause_tokens=DEFAULT_PAUSES,
                        max_history=MAX_HISTORY)
    with TestClient(create_app(load_recommender(run))) as c:
        yield c


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@SETTINGS
@given(body=valid_bodies())
def test_every_valid_request_gets_the_decoders_ranking(client, body):
    r = client.post("/recommend", json=body)
    assert r.status_code == 200, (body, r.status_code, r.text[:300])
    answer, rec = r.json(), client.app.state.recommender
    history = [int(h[1:]) for h in body.get("history", [])] or [int(t.split()[-1]) for t in body.get("titles", [])]
    used = history[-MAX_HISTORY:]
    assert answer["history_used"] == [f"i{i}" for i in used] and answer["truncated"] == len(history) - len(used)
    assert answer["cold_start"] == (not used) and answer["k"] == body["k"]
    pauses = 0 if not used else body.get("pauses", DEFAULT_PAUSES)
    assert answer["pauses"] == pauses
    want = rec.popular(body["k"]) if not used else rec.decode([Query(tuple(used), body["k"], pauses)])[0]
    assert [it["item_id"] for it in answer["items"]] == [f"i{i}" for i in want.items]
    assert [it["rank"] for it in answer["items"]] == list(range(1, body["k"] + 1))
    assert [it["score"] for it in answer["items"]] == pytest.approx(want.scores, abs=1e-5)


@SETTINGS
@given(body=BODIES)
def test_recommend_never_fails_on_any_json_body(client, body):
    r = client.post("/recommend", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422, 503), (r.status_code, r.text[:300])
    if r.status_code == 200:
        items = [i["item_id"] for i in r.json()["items"]]
        assert len(items) == len(set(items)) == r.json()["k"]
    else:
        assert r.json()["detail"]


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b'{"history": [' * 5000, b"[" * 100_000 + b"]" * 100_000,
                                 b'{"history": ["i1"], "history": ["i2"]}', b"null",
                                 b'{"k": 1e999}'])  # inf: once a 500 (the 422 echoed a non-JSON inf)
def test_recommend_on_raw_bytes(client, raw):
    r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 422), (r.status_code, r.text[:300])  # 400: unparseable (too deep)
    assert client.post("/recommend", json={"history": ["i1"], "k": 3}).status_code == 200  # still serving
