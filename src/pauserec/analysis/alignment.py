"""SID / language embedding alignment: how close each item's SID-token embeddings sit to its title's text tokens.

Per item, in the model's input-embedding space (``H`` dimensions):

* the SID embedding = mean of the input rows of its ``L`` SID tokens (``catalog.sid_tokens(i)``);
* the title embedding = mean input row of its title's tokens (the first ``max_title_tokens``).

Both sets are centered on their own mean (a shared offset, e.g. the mean row every new token starts from, says
nothing about which title an SID points to). Reported: nearest-neighbour retrieval accuracy by cosine, item -> title
and title -> item, top-1 and top-10 among all the items analysed; linear CKA between the two ``(n, H)`` matrices;
a 2-D PCA projection of both point sets with lines joining a few pairs.

A bare backbone has no SID tokens: it is studied as ``base@init``, the backbone with the SID rows the training
starts from (``model.sid_init``), i.e. before any training.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig, build_config
from ..data.text import item_title
from ..report import markdown_table
from ..sid.catalog import SIDCatalog
from .loading import BASE_NAME, ModelSpec, StudyData, load_model, write_outputs

KS = (1, 10)
PAIRS_DRAWN = 8


def sid_embeddings(embedding: torch.Tensor, level_ids: Sequence[torch.Tensor], codes: np.ndarray) -> np.ndarray:
    """``(n, H)``: per item, the mean of its SID tokens' rows of ``embedding`` ``(V, H)``; ``codes`` is ``(n, L)``
    and ``level_ids[l]`` maps level ``l``'s codes to token ids."""
    codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    rows = [embedding[level_ids[lv][codes_t[:, lv]]].float() for lv in range(codes_t.shape[1])]
    return torch.stack(rows).mean(0).numpy()


def title_embeddings(embedding: torch.Tensor, tokenizer, titles: Sequence[str], max_tokens: int = 32) -> np.ndarray:
    """``(n, H)``: per title, the mean row of ``embedding`` over its first ``max_tokens`` tokens."""
    out = np.zeros((len(titles), embedding.shape[1]), dtype=np.float32)
    for i, title in enumerate(titles):
        ids = tokenizer(title, add_special_tokens=False)["input_ids"][:max_tokens]
        if not ids:
            raise ValueError(f"title {i} is empty: no tokens to average")
        out[i] = embedding[torch.tensor(ids)].float().mean(0).numpy()
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_accuracy(queries: np.ndarray, keys: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Top-k accuracy of finding ``keys[i]`` for ``queries[i]`` by cosine among all keys (both ``(n, H)``, each
    centered first). The rank of the true key counts the keys strictly more similar (ties favour it)."""
    sims = _unit(queries) @ _unit(keys).T
    rank = (sims > np.diag(sims)[:, None]).sum(1)
    return {f"top{k}": float((rank < k).mean()) for k in ks}


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``(n, d1)`` and ``(n, d2)``: ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with
    column-centered ``Xc, Yc``. 1 for matrices equal up to an orthogonal transform and isotropic scaling."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same rows: {x.shape} vs {y.shape}")
    xc = (x - x.mean(0)).astype(np.float64)
    yc = (y - y.mean(0)).astype(np.float64)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    return float(cross / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def pca_2d(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both ``(n, H)`` sets projected on the first two principal axes of their union: ``(n, 2)`` each."""
    both = np.concatenate([x, y]).astype(np.float64)
    center = both.mean(0)
    _, _, vt = np.linalg.svd(both - center, full_matrices=False)
    return (x - center) @ vt[:2].T, (y - center) @ vt[:2].T


def alignment_of(model, tokenizer, catalog: SIDCatalog, items: Sequence[int], titles: Sequence[str]) -> dict[str, Any]:
    """The measures for one model (retrieval both ways, CKA) and its 2-D projection (``"points"``)."""
    from ..model.vocab import token_ids_by_level

    emb = model.get_input_embeddings().weight.detach().cpu()
    sid = sid_embeddings(emb, token_ids_by_level(tokenizer, catalog), catalog.codes[list(items)])
    text = title_embeddings(emb, tokenizer, titles)
    p_sid, p_text = pca_2d(_unit(sid), _unit(text))
    return {"item_to_title": retrieval_accuracy(sid, text), "title_to_item": retrieval_accuracy(text, sid),
            "cka": linear_cka(sid, text), "points": (p_sid, p_text)}


def initial_model(cfg: RunConfig, base: str, data: StudyData):
    """``base`` with the catalogue's SID tokens at the rows training starts from (``model.sid_init``)."""
    from ..train.run import load_model as load_training_model

    cfg = build_config(base=cfg.model_dump(), overrides=[f"model.backbone={base}"])
    model, tokenizer, _, _ = load_training_model(cfg, data.dataset, data.catalog, [])
    return model.eval(), tokenizer


def alignment_analysis(specs: Sequence[ModelSpec], data: StudyData, out: str | Path, *, cache_dir: str | Path,
                       cfg: RunConfig | None = None, n_items: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Measure every model on the same items (all titled items, or a seeded sample of ``n_items``); write
    ``OUT/alignment.{json,md,png}``; return the JSON table."""
    dataset, catalog = data.dataset, data.catalog
    items = [i for i, f in enumerate(dataset.item_fields) if item_title(f)]
    if n_items is not None and n_items < len(items):
        items = sorted(random.Random(seed).sample(items, n_items))
    titles = [item_title(dataset.item_fields[i]) for i in items]
    rows, points, notes = [], {}, []
    for spec in specs:
        if spec.name == BASE_NAME:
            model, tokenizer = initial_model(cfg or build_config(), spec.path, data)
            name = f"{BASE_NAME}@init"
            notes.append(f"{spec.path} has no SID tokens: '{name}' is it with the SID rows training starts from "
                         f"(model.sid_init={(cfg or build_config()).model.sid_init}), before any training")
        else:
            model, tokenizer = load_model(spec, cache_dir)
            name = spec.name
        result = alignment_of(model, tokenizer, catalog, items, titles)
        del model
        points[name] = result.pop("points")
        rows.append({"model": name, "path": spec.path, **result})
    table = {"analysis": "alignment", "data_dir": str(data.data_dir), "items": len(items), "seed": seed,
             "centered": True, "notes": notes, "models": rows}
    paths = write_outputs(out, "alignment", table, alignment_markdown(table), alignment_figure(points, seed))
    table["files"] = {k: str(v) for k, v in paths.items()}
    return table


def alignment_markdown(table: Mapping[str, Any]) -> str:
    header = ["model", *(f"item->title top{k}" for k in KS), *(f"title->item top{k}" for k in KS), "linear CKA"]
    rows = [[r["model"], *(f"{r['item_to_title'][f'top{k}']:.3f}" for k in KS),
             *(f"{r['title_to_item'][f'top{k}']:.3f}" for k in KS), f"{r['cka']:.3f}"] for r in table["models"]]
    chance = ", ".join(f"top{k} {min(k / table['items'], 1.0):.4f}" for k in KS)
    text = (f"SID / title embedding alignment over {table['items']} items (input embeddings, each set centered; "
            f"chance: {chance}).\n\n")
    text += markdown_table(header, rows)
    for note in table["notes"]:
        text += f"\nNote: {note}.\n"
    return text


def alignment_figure(points: Mapping[str, tuple[np.ndarray, np.ndarray]], seed: int = 0, max_points: int = 600):
    """One panel per model: SID (dots) and title (crosses) embeddings in 2-D PCA, a few pairs joined."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 3.6 * len(points)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(points), 1), squeeze=False)[0]
    rng = np.random.default_rng(seed)
    for ax, (name, (p_sid, p_text)) in zip(axes, points.items()):
        shown = rng.permutation(len(p_sid))[:max_points]
        ax.scatter(p_sid[shown, 0], p_sid[shown, 1], s=4, alpha=0.5, label="SID", color="C0")
        ax.scatter(p_text[shown, 0], p_text[shown, 1], s=4, alpha=0.5, marker="x", label="title", color="C1")
        for i in shown[:PAIRS_DRAWN]:
            ax.plot([p_sid[i, 0], p_text[i, 0]], [p_sid[i, 1], p_text[i, 1]], color="k", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle("SID vs title embeddings, 2-D PCA\n(lines join an item's two points)", fontsize=9)
    return fig
