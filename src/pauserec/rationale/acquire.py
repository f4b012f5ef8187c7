"""The rationale-acquisition stage: one rationale per training example, cached, filtered, recorded with its cost.

Writes into the output directory ``config.yaml``, ``env.json`` (provider settings, dataset and split hashes),
``rationales.jsonl`` (``key``, ``user``, ``target``, ``text``, ``status``: ``ok`` | ``quotes_target`` | ``empty``),
``rationale_stats.json`` and ``cost.json``. Requests are generated in chunks and committed to the cache
(``CACHE/rationales.sqlite``) as they finish: an interrupted acquisition resumes where it stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data.split import training_users_subset
from ..io import write_json, write_jsonl
from ..artifacts import DataDir, RunDir
from .base import Provider, RationaleRequest, clean_rationale, quotes_title
from .cache import RationaleCache, cache_key

CHUNK = 256  # requests generated (and committed to the cache) at a time


def make_provider(cfg: RunConfig) -> Provider:
    """The provider ``cfg.rationale.provider`` names."""
    r = cfg.rationale
    if r.provider == "template":
        from .template import TemplateProvider

        return TemplateProvider()
    if r.provider == "local":
        from .local import LocalProvider

        return LocalProvider(r.model, cfg.cache_dir, r.max_new_tokens, r.temperature, r.batch_size, seed=cfg.seed,
                             no_repeat_ngram_size=r.no_repeat_ngram_size)
    from .openai_compat import OpenAIProvider

    return OpenAIProvider(
        r.base_url, r.model, api_key_env=r.api_key_env, max_new_tokens=r.max_new_tokens, temperature=r.temperature,
        concurrency=r.concurrency, timeout_s=r.timeout_s, retries=r.retries,
    )


def acquire_rationales(cfg: RunConfig, data_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Acquire rationales for the training examples ``cfg.train.max_users`` selects; returns the stats."""
    t0 = time.perf_counter()
    data = DataDir(data_dir)
    dataset, split = data.dataset(), data.split(cfg)
    examples = training_users_subset(split.train, cfg.train.max_users)
    provider = make_provider(cfg)
    settings = provider.settings()
    run = RunDir.create(
        out_dir, cfg, kind="rationales", provider=settings, data_dir=str(Path(data_dir).resolve()),
        dataset_hash=dataset.content_hash(), split_hash=split.content_hash(),
    )
    fields = dataset.item_fields
    requests = [RationaleRequest(e.key, tuple(fields[i] for i in e.history), fields[e.target]) for e in examples]
    keys = [cache_key(r.messages(), settings) for r in requests]
    cache = RationaleCache(Path(cfg.cache_dir) / "rationales.sqlite")
    texts = cache.get_many(keys)
    n_cached = len(texts)
    todo = [i for i, k in enumerate(keys) if k not in texts]
    t_gen = time.perf_counter()
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        answers = provider.generate([requests[i] for i in chunk], progress=progress)
        fresh = {keys[i]: text for i, text in zip(chunk, answers, strict=True)}
        cache.put_many(fresh)
        texts.update(fresh)
    generate_seconds = time.perf_counter() - t_gen

    rows, status = [], Counter()
    for e, r, k in zip(examples, requests, keys, strict=True):
        text = clean_rationale(texts[k])
        state = "empty" if not text else "quotes_target" if quotes_title(text, str(r.target.get("title") or "")) else "ok"
        status[state] += 1
        rows.append({"key": e.key, "user": dataset.user_ids[e.user], "target": dataset.item_ids[e.target],
                     "text": text, "status": state})
    write_jsonl(run.file("rationales.jsonl"), rows)
    ok_words = [len(row["text"].split()) for row in rows if row["status"] == "ok"]
    stats = {
        "provider": settings,
        "examples": len(rows),
        "users": len({e.user for e in examples}),
        "status": dict(status),
        "usable_fraction": status["ok"] / max(len(rows), 1),
        "mean_words": sum(ok_words) / max(len(ok_words), 1),
        "from_cache": n_cached,
        "generated": len(todo),
    }
    write_json(run.file("rationale_stats.json"), stats)
    from ..model.backbone import inference_device

    write_json(run.file("cost.json"), {
        "stage": "rationales",
        "seconds": time.perf_counter() - t0,
        "generate_seconds": generate_seconds,
        "generated": len(todo),
        "seconds_per_generated": generate_seconds / max(len(todo), 1),
        "device": str(inference_device()) if settings["provider"] == "local" else settings["provider"],
    })
    return stats
