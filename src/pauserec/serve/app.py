"""The FastAPI application: ``POST /recommend``, ``GET /items``, ``GET /health``, the page at ``/`` and ``/docs``.

Every request is validated before it reaches the model; a bad request is answered (4xx) and changes nothing, so the
service keeps serving. Decoding goes through one :class:`~pauserec.serve.batcher.MicroBatcher`.
"""

from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query as QueryParam, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .batcher import MicroBatcher, QueueFullError
from .catalogue import UnknownItemsError
from .schemas import Health, Item, ItemsResponse, RecommendedItem, RecommendRequest, RecommendResponse
from .service import Query, Ranked, Recommender

STATIC = Path(__file__).parent / "static"

ERRORS = {
    422: {"description": "Invalid request: wrong types, unknown item ids or titles (named in `detail`), k above the "
                         "beam width, or a pause count the run cannot use."},
    503: {"description": "Too many requests waiting."},
}


def create_app(recommender: Recommender, *, max_batch: int = 32, max_wait_ms: float = 10.0,
               max_queue: int = 1024) -> FastAPI:
    """The service over ``recommender``; ``max_batch=1`` serves one request at a time (no micro-batching)."""
    batcher: MicroBatcher[Query, Ranked] = MicroBatcher(recommender.decode, max_batch, max_wait_ms, max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="pauserec", lifespan=lifespan,
        description="Next-item recommendation with a trained PauseRec run: the history is written as Semantic IDs and "
        "the next item's SID is decoded under the catalogue's prefix trie. Concurrent requests are micro-batched "
        "into one decoder call. An empty history gets the cold-start answer: the most popular training items, "
        "flagged `cold_start`.",
    )
    app.state.recommender, app.state.batcher = recommender, batcher

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 answer, with non-finite numbers of the echoed input (``1e999``) written as strings:
        JSON cannot encode them, and the default handler would fail with a 500."""
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        s = recommender.stats
        return Health(
            status="ok", model=recommender.describe(),
            batching={"max_batch": max_batch, "max_wait_ms": max_wait_ms, "max_queue": max_queue},
            decoder={"calls": s.calls, "requests": s.queries, "seconds": round(s.seconds, 3),
                     "mean_batch": round(s.queries / s.calls, 2) if s.calls else 0.0},
        )

    @app.get("/items", response_model=ItemsResponse)
    async def items(q: str = QueryParam("", max_length=200, description="Words the title must contain; empty: the "
                                        "most popular items."),
                    limit: int = QueryParam(20, ge=1, le=200)) -> ItemsResponse:
        cat = recommender.catalogue
        found = cat.search(q, limit)
        return ItemsResponse(query=q, items=[Item(item_id=cat.ids[i], title=cat.titles[i],
                                                  interactions=int(cat.counts[i])) for i in found])

    @app.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
    async def recommend(req: RecommendRequest) -> RecommendResponse:
        t0 = time.perf_counter()
        history = _resolve(recommender, req)
        pauses = recommender.default_pauses if req.pauses is None else req.pauses
        if req.k > recommender.beams:
            raise HTTPException(422, f"k must be at most {recommender.beams} (the service's beam width), got {req.k}")
        try:
            recommender.check_pauses(pauses)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        used = recommender.truncate(history)
        if not used:
            ranked, size, decode_s, pauses = recommender.popular(req.k), 0, 0.0, 0
        else:
            try:
                ranked, info = await batcher.submit(Query(history=used, k=req.k, pauses=pauses,
                                                         exclude=recommender.excluded(history)))
            except QueueFullError as e:
                raise HTTPException(503, str(e)) from None
            size, decode_s = info.size, info.decode_seconds
        cat = recommender.catalogue
        return RecommendResponse(
            items=[RecommendedItem(rank=r + 1, item_id=cat.ids[i], title=cat.titles[i], score=s)
                   for r, (i, s) in enumerate(zip(ranked.items, ranked.scores, strict=True))],
            k=req.k, pauses=pauses, cold_start=not used, history_used=[cat.ids[i] for i in used],
            truncated=len(history) - len(used), batch_size=size, decode_ms=decode_s * 1e3,
            latency_ms=(time.perf_counter() - t0) * 1e3,
        )

    return app


def _resolve(recommender: Recommender, req: RecommendRequest) -> list[int]:
    """Item indices of the request's history (ids or titles); 422 naming every unknown one."""
    if req.history and req.titles:
        raise HTTPException(422, "give the history as item ids (history) or as titles (titles), not both")
    try:
        if req.titles:
            return recommender.catalogue.resolve_titles(req.titles)
        return recommender.catalogue.resolve_ids([str(h) for h in req.history])
    except UnknownItemsError as e:
        raise HTTPException(422, {"message": str(e), f"unknown_item_{e.kind}s": e.unknown}) from None


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its ``repr`` ('inf', 'nan')."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
