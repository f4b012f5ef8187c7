"""SID statistics (collisions, codebook usage) and a reader for LC-Rec ``X.index.json`` SIDs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import read_json
from .catalog import LEVEL_LETTERS
from .collision import group_ids

_TOKEN = re.compile(r"<([a-p])_(\d+)>")


def sid_stats(codes: np.ndarray, level_sizes: list[int]) -> dict[str, Any]:
    """Collision and codebook-usage statistics of ``codes`` ``(n, L)``.

    Keys: ``items``, ``levels``, ``unique_sids``, ``items_sharing_sid`` (items whose SID equals another
    item's: ``[[0],[0],[1]]`` -> 2), ``duplicate_items`` (``items - unique_sids``: items beyond the first of
    each shared SID, i.e. how many a collision fix must move: ``[[0],[0],[1]]`` -> 1; the "554" quoted for
    the reference Scientific SIDs is this count), ``colliding_groups`` (SIDs held by 2+ items),
    ``max_group_size``, and ``per_level``: a list of
    ``{size, used_codes, utilization = used/size, perplexity = exp(entropy of code usage, nats)}``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    gid, counts = group_ids(codes)
    return {
        "items": int(codes.shape[0]),
        "levels": int(codes.shape[1]),
        "unique_sids": int(len(counts)),
        "items_sharing_sid": int((counts[gid] > 1).sum()),
        "duplicate_items": int(codes.shape[0] - len(counts)),
        "colliding_groups": int((counts > 1).sum()),
        "max_group_size": int(counts.max()) if len(counts) else 0,
        "per_level": [_level_stats(codes[:, level], size) for level, size in enumerate(level_sizes)],
    }


def _level_stats(column: np.ndarray, size: int) -> dict[str, float | int]:
    """Usage of one level's ``size`` codes by ``column`` ``(n,)``."""
    counts = np.bincount(column, minlength=size)
    used = counts[counts > 0]
    p = used / used.sum() if len(used) else used.astype(float)
    entropy = float(-(p * np.log(p)).sum())
    return {
        "size": int(size),
        "used_codes": int(len(used)),
        "utilization": float(len(used) / size),
        "perplexity": float(np.exp(entropy)),
    }


def read_index_json(path: str | Path, item_ids: list[str]) -> tuple[np.ndarray, list[int]]:
    """Read an LC-Rec ``{"item": ["<a_x>", "<b_y>", ...]}`` file into codes ``(len(item_ids), L)``.

    Rows follow ``item_ids``; extra items in the file are ignored. Level sizes are inferred as
    ``max code + 1`` per level (the file does not record codebook sizes). Raises DataError on a missing
    item, a malformed token, a token of the wrong level letter, or rows of different lengths.
    """
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object {item: [tokens]}", path=path)
    rows = []
    for iid in item_ids:
        if iid not in raw:
            raise DataError("item has no SID in the index file", path=path, key=iid)
        rows.append(_parse_sid(raw[iid], path, iid))
    if not rows:
        return np.zeros((0, 0), dtype=np.int64), []
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise DataError(f"SIDs have different lengths {sorted(lengths)}", path=path)
    codes = np.asarray(rows, dtype=np.int64)
    return codes, [int(m) + 1 for m in codes.max(0)]


def _parse_sid(tokens: object, path: str | Path, iid: str) -> list[int]:
    """``["<a_3>", "<b_7>"]`` -> ``[3, 7]``, checking the level letters."""
    if not isinstance(tokens, list) or not tokens:
        raise DataError("expected a non-empty list of tokens", path=path, key=iid)
    if len(tokens) > len(LEVEL_LETTERS):
        raise DataError(f"{len(tokens)} levels; at most {len(LEVEL_LETTERS)} are supported", path=path, key=iid)
    out = []
    for level, tok in enumerate(tokens):
        m = _TOKEN.fullmatch(tok) if isinstance(tok, str) else None
        if m is None or m.group(1) != LEVEL_LETTERS[level]:
            raise DataError(
                f"malformed token {tok!r} at level {level} (expected <{LEVEL_LETTERS[level]}_N>)", path=path, key=iid
            )
        out.append(int(m.group(2)))
    return out
