"""RecBole atomic files: ``X.inter`` (interactions) and ``X.item`` (item features).

Both are tab-separated with a typed header, e.g. ``user_id:token<TAB>item_id:token<TAB>timestamp:float``.
Interactions are ordered per user by ``timestamp`` (stable, so ties keep file order), or by file order when there
is no timestamp column. Only items that appear in the interactions are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ...errors import DataError
from ..dataset import Dataset
from ._common import build_dataset, iter_lines, order_by_time

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
USER, ITEM, TIME = "user_id", "item_id", "timestamp"
# RecBole's item feature names -> ours.
FIELD_NAMES = {
    "movie_title": "title",
    "title": "title",
    "class": "categories",
    "categories": "categories",
    "genre": "categories",
    "brand": "brand",
    "description": "description",
}


def locate(path: Path) -> tuple[Path, Path]:
    """``(inter file, item file)`` for a directory holding one ``X.inter`` or for either file of the pair."""
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            found = ", ".join(p.name for p in inters) or "none"
            raise DataError(f"expected exactly one *.inter file, found: {found}", path=path)
        inter = inters[0]
    elif path.suffix in (".inter", ".item"):
        inter = path.with_suffix(".inter")
    else:
        raise DataError("not a RecBole atomic file (expected a name ending in .inter or .item)", path=path)
    return inter, inter.with_suffix(".item")


def parse_header(text: str, path: Path, required: tuple[str, ...], line: int = 1) -> list[tuple[str, str]]:
    """``"user_id:token\\titem_id:token"`` -> ``[("user_id", "token"), ("item_id", "token")]``."""
    columns = []
    for cell in text.split("\t"):
        name, sep, ftype = cell.strip().partition(":")
        if not sep or not name:
            raise DataError(f"header field {cell!r} is not of the form name:type", path=path, line=line, key=cell)
        if ftype not in FIELD_TYPES:
            known = ", ".join(FIELD_TYPES)
            raise DataError(f"unknown field type {ftype!r} (known: {known})", path=path, line=line, key=cell)
        columns.append((name, ftype))
    names = [n for n, _ in columns]
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise DataError(f"header names the field {repeated!r} twice", path=path, line=line, key=repeated)
    for field in required:
        if field not in names:
            has = ", ".join(names)
            raise DataError(f"header has no {field!r} field (it has: {has})", path=path, line=line, key=field)
    return columns


def iter_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, list[tuple[str, str]], list[str]]]:
    """Yield ``(line number, header columns, cells)`` for each data row, checking the cell count."""
    lines = iter_lines(path)
    header_line, header_text = next(lines)
    columns = parse_header(header_text, path, required, header_line)
    for lineno, text in lines:
        cells = text.split("\t")
        if len(cells) != len(columns):
            raise DataError(f"{len(cells)} tab-separated fields, the header has {len(columns)}", path=path, line=lineno)
        yield lineno, columns, cells


def read_items(path: Path) -> tuple[dict[str, dict[str, str]], int]:
    """``({item id: {field: text}}, repeated item rows)``; the first row of an item wins."""
    items: dict[str, dict[str, str]] = {}
    repeated = 0
    for lineno, columns, cells in iter_rows(path, (ITEM,)):
        record = dict(zip((n for n, _ in columns), cells, strict=True))
        item = record[ITEM]
        if not item:
            raise DataError("empty item_id", path=path, line=lineno, key=ITEM)
        if item in items:
            repeated += 1
            continue
        items[item] = _item_fields(columns, cells)
    return items, repeated


def _item_fields(columns: list[tuple[str, str]], cells: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for (name, ftype), value in zip(columns, cells, strict=True):
        if name == ITEM:
            continue
        ours = FIELD_NAMES.get(name, name)
        if ours in fields:  # two columns map to one name: the later one keeps its own name
            ours = name
        if ours == "categories" and ftype == "token_seq":
            value = ",".join(value.split())
        fields[ours] = value
    return fields


def read_sequences(
    path: Path,
) -> tuple[dict[str, list[str]], int, int | None, dict[tuple[str, str], float] | None]:
    """``({user id: [item id, ...]} time-ordered, repeated pairs dropped, time ties, {(user, item): timestamp})``,
    the last two None without a timestamp column."""
    events: dict[str, list[tuple[float, str]]] = {}
    has_time = False
    for lineno, columns, cells in iter_rows(path, (USER, ITEM)):
        record = dict(zip((n for n, _ in columns), cells, strict=True))
        user, item = record[USER], record[ITEM]
        if not user or not item:
            raise DataError("empty user_id or item_id", path=path, line=lineno)
        has_time = TIME in record
        events.setdefault(user, []).append((_timestamp(record, path, lineno), item))
    sequences, repeated, ties, times = order_by_time(events)  # without timestamps every time is 0: file order
    return sequences, repeated, ties if has_time else None, times if has_time else None


def _timestamp(record: dict[str, str], path: Path, lineno: int) -> float:
    if TIME not in record:
        return 0.0
    try:
        time = float(record[TIME])
    except ValueError:
        time = math.nan
    if not math.isfinite(time):
        shown = record[TIME] if len(record[TIME]) < 80 else record[TIME][:77] + "..."
        raise DataError(f"timestamp {shown!r} is not a finite number", path=path, line=lineno, key=TIME)
    return time


def check_items_known(sequences: dict[str, list[str]], items: dict[str, dict], inter: Path, item_path: Path) -> None:
    for user, seq in sequences.items():
        for item in seq:
            if item not in items:
                raise DataError(f"item {item!r} is not in the item file {item_path}", path=inter, key=user)


def read_recbole(
    path: str | Path,
    *,
    name: str | None = None,
    min_interactions: int = 3,
    short_users: Literal["drop", "error"] = "drop",
) -> Dataset:
    """Read RecBole atomic files (a directory, or the ``.inter`` / ``.item`` file)."""
    inter_path, item_path = locate(Path(path))
    sequences, repeated_pairs, ties, times = read_sequences(inter_path)
    items, repeated_items = read_items(item_path)
    check_items_known(sequences, items, inter_path, item_path)
    notes: dict[str, int | str] = {
        "format": "recbole",
        "duplicate_interactions": repeated_pairs,
        "duplicate_item_rows": repeated_items,
        "time_ties": "no timestamp column" if ties is None else ties,
        "items_without_title": sum(not f.get("title", "").strip() for f in items.values()),
    }
    return build_dataset(
        name or inter_path.stem,
        sequences,
        items,
        catalogue="used",
        min_interactions=min_interactions,
        short_users=short_users,
        notes=notes,
        path=inter_path,
        times=times,
    )
