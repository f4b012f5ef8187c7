"""LC-Rec / LETTER JSON layout.

``X.inter.json``: ``{"<user>": [item, ...]}``, each list in time order (no timestamps).
``X.item.json``: ``{"<item>": {"title": ..., "description": ..., "brand": ..., "categories": ...}}``.

The item file is the catalogue: every item in it is kept, even one no user interacted with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ...errors import DataError
from ..dataset import Dataset
from ._common import build_dataset, field_text, load_json

INTER_SUFFIX = ".inter.json"
ITEM_SUFFIX = ".item.json"
GZ = ".gz"  # either file may be gzipped: X.inter.json.gz + X.item.json.gz


def is_lcrec_file(name: str) -> bool:
    return name.removesuffix(GZ).endswith((INTER_SUFFIX, ITEM_SUFFIX))


def locate(path: Path) -> tuple[Path, Path]:
    """``(inter file, item file)`` for a directory holding one ``X.inter.json[.gz]`` or for either file of the pair."""
    if path.is_dir():
        inters = sorted([*path.glob(f"*{INTER_SUFFIX}"), *path.glob(f"*{INTER_SUFFIX}{GZ}")])
        if len(inters) != 1:
            found = ", ".join(p.name for p in inters) or "none"
            raise DataError(f"expected exactly one *{INTER_SUFFIX}[{GZ}] file, found: {found}", path=path)
        inter = inters[0]
    elif is_lcrec_file(path.name):
        inter = path
    else:
        raise DataError(f"not an LC-Rec file (expected a name ending in {INTER_SUFFIX} or {ITEM_SUFFIX})", path=path)
    stem = inter.name.removesuffix(GZ).removesuffix(INTER_SUFFIX).removesuffix(ITEM_SUFFIX)
    gz = GZ if inter.name.endswith(GZ) else ""
    return inter.with_name(stem + INTER_SUFFIX + gz), inter.with_name(stem + ITEM_SUFFIX + gz)


def read_items(path: Path) -> dict[str, dict[str, str]]:
    """``{item id: {field: text}}``; every item needs a ``title`` key."""
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise DataError('expected a JSON object {"<item>": {"title": ...}}', path=path)
    if not raw:
        raise DataError("the item file lists no items", path=path)
    items = {}
    for item, record in raw.items():
        if not isinstance(record, dict):
            raise DataError(f"expected an object of text fields, got {type(record).__name__}", path=path, key=item)
        if "title" not in record:
            raise DataError("item has no 'title' field", path=path, key=item)
        items[item] = {k: field_text(v, path, f"{item}.{k}") for k, v in record.items()}
    return items


def read_sequences(path: Path, items: dict[str, Any], item_path: Path) -> dict[str, list[str]]:
    """``{user id: [item id, ...]}``; every item must be in ``items``."""
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise DataError('expected a JSON object {"<user>": [item, ...]}', path=path)
    sequences = {}
    for user, seq in raw.items():
        if not isinstance(seq, list):
            raise DataError(f"expected a list of item ids, got {type(seq).__name__}", path=path, key=user)
        ids = []
        for item in seq:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise DataError(f"item id {item!r} is neither an integer nor a string", path=path, key=user)
            ids.append(str(item))
        missing = next((i for i in ids if i not in items), None)
        if missing is not None:
            raise DataError(f"item {missing!r} is not in the item file {item_path}", path=path, key=user)
        sequences[user] = ids
    return sequences


def read_lcrec(
    path: str | Path,
    *,
    name: str | None = None,
    min_interactions: int = 3,
    short_users: Literal["drop", "error"] = "drop",
) -> Dataset:
    """Read an LC-Rec dataset (a directory, or either file of the pair)."""
    inter_path, item_path = locate(Path(path))
    items = read_items(item_path)
    sequences = read_sequences(inter_path, items, item_path)
    notes: dict[str, int | str] = {
        "format": "lcrec",
        "items_without_title": sum(not f["title"].strip() for f in items.values()),
        "repeated_items_in_sequences": sum(len(s) - len(set(s)) for s in sequences.values()),  # kept, as written
    }
    return build_dataset(
        name or inter_path.name.removesuffix(GZ).removesuffix(INTER_SUFFIX),
        sequences,
        items,
        catalogue="all",
        min_interactions=min_interactions,
        short_users=short_users,
        notes=notes,
        path=inter_path,
    )
