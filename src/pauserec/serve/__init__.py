"""Serving: an HTTP recommendation service over a trained run directory, with micro-batching and a web page.

* :mod:`.catalogue` — item ids, titles, title search and the popularity order (cold start);
* :mod:`.service`   — load a run (model, arm, prompts) and decode batches of histories (:class:`Recommender`);
* :mod:`.batcher`   — concurrent requests gathered into one decoder call (bounded wait);
* :mod:`.schemas`   — the request and response models;
* :mod:`.app`       — the FastAPI application (``/recommend``, ``/items``, ``/health``, ``/``, ``/docs``).

``pauserec serve RUN`` runs it with uvicorn.
"""

from .app import create_app
from .batcher import MicroBatcher
from .service import Query, Ranked, Recommender, load_recommender

__all__ = ["MicroBatcher", "Query", "Ranked", "Recommender", "create_app", "load_recommender"]
