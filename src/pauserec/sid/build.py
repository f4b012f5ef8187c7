"""Build an :class:`SIDCatalog`: embed item texts, quantize, resolve collisions, record how.

``catalog_from_embeddings`` starts from an ``(n_items, d)`` array (no text model needed);
``build_catalog`` adds the embedding stage. Item texts are rendered by the caller.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import EmbedConfig, SIDConfig
from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from .catalog import SIDCatalog
from .collision import resolve_collisions
from .embed import embed_texts, model_identity
from .quantization import Quantization
from .rqkmeans import rq_kmeans
from .stats import sid_stats


def quantize(embeddings: np.ndarray, sid_cfg: SIDConfig, progress: bool = True) -> Quantization:
    """Run ``sid_cfg.quantizer`` on ``embeddings`` ``(n, d)`` -> raw codes ``(n, sid_cfg.levels)``."""
    if sid_cfg.quantizer == "rqkmeans":
        return rq_kmeans(
            embeddings, sid_cfg.levels, sid_cfg.codebook_size, seed=sid_cfg.seed, space=sid_cfg.kmeans_space
        )
    if sid_cfg.quantizer == "rqvae":
        from .rqvae import rq_vae  # torch is imported only when needed

        return rq_vae(
            embeddings, sid_cfg.levels, sid_cfg.codebook_size, sid_cfg.rqvae, seed=sid_cfg.seed, progress=progress
        )
    raise ConfigError(f"unknown quantizer {sid_cfg.quantizer!r}; use 'rqkmeans' or 'rqvae'")


def catalog_from_embeddings(
    dataset: Dataset, embeddings: np.ndarray, sid_cfg: SIDConfig, progress: bool = True
) -> SIDCatalog:
    """Quantize ``embeddings`` ``(n_items, d)`` (rows aligned with ``dataset.item_ids``) into a unique catalogue.

    ``meta`` holds ``sid_config``, ``quantizer_info``, ``stats_before`` / ``stats_after``, ``collision``
    (the policy's report) and ``timings_s`` (``quantize_s``, ``collision_s``).
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) != dataset.n_items:
        raise DataError(f"embeddings must have shape (n_items={dataset.n_items}, d), got {embeddings.shape}")
    t0 = time.perf_counter()
    q = quantize(embeddings, sid_cfg, progress=progress)
    t1 = time.perf_counter()
    codes, level_sizes, report = resolve_collisions(q, sid_cfg.collision)
    t2 = time.perf_counter()
    meta = {
        "sid_config": sid_cfg.model_dump(mode="json"),
        "quantizer_info": {k: v for k, v in q.info.items() if k != "recon_curve"},
        "embedding_dim": int(embeddings.shape[1]),
        "stats_before": sid_stats(q.codes, q.level_sizes),
        "stats_after": sid_stats(codes, level_sizes),
        "collision": report,
        "timings_s": {"quantize_s": round(t1 - t0, 3), "collision_s": round(t2 - t1, 3)},
    }
    return SIDCatalog(
        codes=codes,
        level_sizes=level_sizes,
        item_ids=list(dataset.item_ids),
        dataset_hash=dataset.content_hash(),
        meta=meta,
    )


def build_catalog(
    dataset: Dataset,
    texts: list[str],
    embed_cfg: EmbedConfig,
    sid_cfg: SIDConfig,
    cache_dir: str | Path,
    progress: bool = True,
) -> SIDCatalog:
    """Embed ``texts`` (one per item, aligned with ``dataset.item_ids``) and build the catalogue.

    Adds to the meta of :func:`catalog_from_embeddings`: ``embedding`` (``model``, ``identity``,
    ``normalize``) and ``timings_s.embed_s`` (near 0 on a cache hit).
    """
    if len(texts) != dataset.n_items:
        raise DataError(f"{len(texts)} item texts for {dataset.n_items} items")
    t0 = time.perf_counter()
    embeddings = embed_texts(texts, embed_cfg, cache_dir, progress=progress)
    embed_s = time.perf_counter() - t0
    cat = catalog_from_embeddings(dataset, embeddings, sid_cfg, progress=progress)
    cat.meta["embedding"] = {
        "model": embed_cfg.model,
        "identity": model_identity(embed_cfg.model),
        "normalize": embed_cfg.normalize,
    }
    cat.meta["timings_s"] = {"embed_s": round(embed_s, 3), **cat.meta["timings_s"]}
    return cat
