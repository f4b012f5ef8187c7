"""Semantic IDs: item embeddings, quantizers, collision policy, the catalogue and its trie."""

from .build import build_catalog, catalog_from_embeddings, quantize
from .catalog import PrefixTrie, SIDCatalog, build_trie, sid_token
from .collision import resolve_collisions
from .embed import embed_texts, model_identity, resolve_embedding_model
from .quantization import Quantization
from .rqkmeans import rq_kmeans
from .stats import read_index_json, sid_stats

__all__ = [
    "PrefixTrie",
    "Quantization",
    "SIDCatalog",
    "build_catalog",
    "build_trie",
    "catalog_from_embeddings",
    "embed_texts",
    "model_identity",
    "quantize",
    "read_index_json",
    "resolve_collisions",
    "resolve_embedding_model",
    "rq_kmeans",
    "rq_vae",
    "sid_stats",
    "sid_token",
]


def __getattr__(name: str):
    """Import torch only when the RQ-VAE is asked for."""
    if name == "rq_vae":
        from .rqvae import rq_vae

        return rq_vae
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
