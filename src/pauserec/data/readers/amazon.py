"""Raw Amazon Reviews (2014 and 2018 releases, McAuley lab): a reviews file and a metadata file.

Reviews: JSON lines with ``reviewerID``, ``asin``, ``unixReviewTime`` (both releases).
Metadata: 2018 is JSON lines (``title``, ``brand``, ``category``: list, ``description``: list of str); 2014 is one
Python-literal dict per line (``title``, ``brand``, ``categories``: list of lists, ``description``: str), read with
``ast.literal_eval``. Either file may be gzipped. In a directory the metadata file is the one named ``meta_*``.

Steps: order each user's reviews by time (stable), drop repeated (user, item) pairs keeping the first, drop reviews
of items without metadata or without a title, then iterative k-core. Only items left in some sequence are kept.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any, Literal

from ...errors import DataError
from ..dataset import Dataset
from ..filters import kcore_filter
from ._common import build_dataset, field_text, iter_lines, order_by_time, parse_json

META_PREFIX = "meta_"
SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")
# Finds a metadata line's asin without parsing the whole line, so lines of unreviewed items are skipped cheaply.
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")


def is_json_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIXES)


def category_name(path: Path) -> str:
    """``meta_Industrial_and_Scientific.json.gz`` / ``reviews_X_5.json`` / ``X_5.json`` -> the category ``X``."""
    stem = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = stem.removeprefix(META_PREFIX).removeprefix("reviews_")
    return stem.removesuffix("_5")


def locate(path: Path) -> tuple[Path, Path]:
    """``(reviews file, metadata file)`` for a directory holding both, or for either file (its sibling is found)."""
    folder = path if path.is_dir() else path.parent
    files = sorted(p for p in folder.iterdir() if is_json_file(p))
    metas = [p for p in files if p.name.startswith(META_PREFIX)]
    reviews = [p for p in files if not p.name.startswith(META_PREFIX)]
    if path.is_file():
        if path.name.startswith(META_PREFIX):
            metas = [path]
            reviews = [p for p in reviews if category_name(p) == category_name(path)] or reviews
        else:
            reviews = [path]
            metas = [p for p in metas if category_name(p) == category_name(path)] or metas
    if len(reviews) != 1 or len(metas) != 1:
        listing = ", ".join(p.name for p in files) or "no .json/.json.gz files"
        raise DataError(
            f"expected one reviews file and one {META_PREFIX}* metadata file, found: {listing}", path=folder
        )
    return reviews[0], metas[0]


def read_reviews(path: Path) -> dict[str, list[tuple[float, str]]]:
    """``{user: [(unixReviewTime, asin), ...]}`` in file order."""
    events: dict[str, list[tuple[float, str]]] = {}
    for lineno, text in iter_lines(path):
        record = parse_json(text, path, lineno)
        if not isinstance(record, dict):
            raise DataError("expected a JSON object per line", path=path, line=lineno)
        for key in REVIEW_KEYS:
            if record.get(key) is None or record.get(key) == "":
                raise DataError(f"review has no {key!r}", path=path, line=lineno, key=key)
        user, item = (_id(record[k], path, lineno, k) for k in ("reviewerID", "asin"))
        events.setdefault(user, []).append((_time(record["unixReviewTime"], path, lineno), item))
    return events


def _id(value: Any, path: Path, lineno: int, key: str) -> str:
    """A user or item id: a string, or an integer written as its decimal digits (``7`` and ``"7"`` are one id)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more than 4,300 digits
            pass
    raise DataError(f"{key} must be a string or an integer, not {type(value).__name__}", path=path, line=lineno, key=key)


def _time(value: Any, path: Path, lineno: int) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        time = float(value)
        if not math.isfinite(time):
            raise ValueError
        return time
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
        raise DataError(
            f"unixReviewTime {shown} is not a finite number", path=path, line=lineno, key="unixReviewTime"
        ) from None


def read_metadata(path: Path, wanted: set[str]) -> tuple[dict[str, dict[str, str]], int]:
    """``({asin: fields}, repeated asin rows)`` for the asins in ``wanted`` (other lines are not parsed)."""
    items: dict[str, dict[str, str]] = {}
    repeated = 0
    parse = None
    for lineno, text in iter_lines(path):
        found = _ASIN.search(text)
        if found and "\\" not in found.group(1) and found.group(1) not in wanted:  # an escaped id is parsed first
            continue
        parse = parse or _meta_parser(text, path, lineno)
        record = parse(text, path, lineno)
        asin = record.get("asin")
        if asin is None or asin == "":
            raise DataError("metadata record has no 'asin'", path=path, line=lineno, key="asin")
        asin = _id(asin, path, lineno, "asin")
        if asin not in wanted:
            continue
        if asin in items:
            repeated += 1
            continue
        items[asin] = _meta_fields(record, path, asin)
    return items, repeated


def _meta_parser(first_line: str, path: Path, lineno: int):
    """JSON lines (2018) or Python literals (2014), decided on the first parsed line."""
    try:
        parse_json(first_line, path, lineno)
        return _json_record
    except DataError as json_error:
        try:
            ast.literal_eval(first_line)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            raise json_error from None
        return _literal_record


def _json_record(text: str, path: Path, lineno: int) -> dict:
    record = parse_json(text, path, lineno)
    if not isinstance(record, dict):
        raise DataError("expected a JSON object per line", path=path, line=lineno)
    return record


def _literal_record(text: str, path: Path, lineno: int) -> dict:
    try:
        record = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as e:
        raise DataError(f"malformed Python-literal record ({type(e).__name__}: {e})", path=path, line=lineno) from None
    if not isinstance(record, dict):
        raise DataError("expected a dict per line", path=path, line=lineno)
    return record


def _meta_fields(record: dict, path: Path, asin: str) -> dict[str, str]:
    categories = record.get("category", record.get("categories"))
    return {
        "title": field_text(record.get("title"), path, f"{asin}.title", sep=" "),
        "brand": field_text(record.get("brand"), path, f"{asin}.brand", sep=" "),
        "categories": field_text(categories, path, f"{asin}.categories", sep=","),
        "description": field_text(record.get("description"), path, f"{asin}.description", sep=" "),
    }


def drop_unknown_items(
    sequences: dict[str, list[str]], items: dict[str, dict[str, str]]
) -> tuple[dict[str, list[str]], int, int]:
    """Remove reviews of items without metadata or without a title: ``(kept, no metadata, no title)``."""
    no_meta = no_title = 0
    kept = {}
    for user, seq in sequences.items():
        keep = []
        for item in seq:
            if item not in items:
                no_meta += 1
            elif not items[item]["title"].strip():
                no_title += 1
            else:
                keep.append(item)
        kept[user] = keep
    return kept, no_meta, no_title


def read_amazon(
    path: str | Path,
    *,
    name: str | None = None,
    min_interactions: int = 3,
    short_users: Literal["drop", "error"] = "drop",
    kcore: int = 5,
) -> Dataset:
    """Read raw Amazon reviews + metadata (a directory holding both, or the reviews file)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file or directory not found", path=path)
    reviews_path, meta_path = locate(path)
    sequences, repeated, ties, times = order_by_time(read_reviews(reviews_path))
    n_reviews = sum(len(s) for s in sequences.values())
    items, repeated_meta = read_metadata(meta_path, {i for s in sequences.values() for i in s})
    sequences, no_meta, no_title = drop_unknown_items(sequences, items)
    before_users = sum(bool(s) for s in sequences.values())
    before_items = {i for s in sequences.values() for i in s}
    before = sum(len(s) for s in sequences.values())
    sequences = kcore_filter(sequences, kcore)
    after_items = {i for s in sequences.values() for i in s}
    notes: dict[str, int | str] = {
        "format": "amazon",
        "reviews_file": reviews_path.name,
        "metadata_file": meta_path.name,
        "duplicate_interactions": repeated,
        "time_ties": ties,
        "duplicate_metadata_rows": repeated_meta,
        "dropped_reviews_no_metadata": no_meta,
        "dropped_reviews_no_title": no_title,
        "kcore": kcore,
        "kcore_removed_users": before_users - sum(bool(s) for s in sequences.values()),
        "kcore_removed_items": len(before_items - after_items),
        "kcore_removed_interactions": before - sum(len(s) for s in sequences.values()),
        "reviews_read": n_reviews + repeated,
    }
    return build_dataset(
        name or category_name(meta_path),
        sequences,
        items,
        catalogue="used",
        min_interactions=min_interactions,
        short_users=short_users,
        notes=notes,
        path=reviews_path,
        times=times,
    )
