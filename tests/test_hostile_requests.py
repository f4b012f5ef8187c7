"""Hostile requests to the HTTP service's /recommend (hypothesis): every answer is 200 or a 4xx/503 with a
reason, never a 500, never a hang, and the service keeps answering afterwards."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import make_tiny_run

from pauserec.serve import create_app, load_recommender

KNOWN = [f"i{i}" for i in range(6)]  # item ids of the tiny run's planted catalogue
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


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    run = make_tiny_run(tmp_path_factory.mktemp("hostile-serve"), arm="pause", pause_tokens=2, max_history=4)
    with TestClient(create_app(load_recommender(run))) as c:
        yield c


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
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
