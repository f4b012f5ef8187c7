"""What every reader shares: opening files (plain or gzipped) with precise errors, and building the Dataset.

Readers only read: nothing here writes a file.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from ...errors import DataError
from ..dataset import Dataset
from ..filters import drop_short_users

_INT_ID = re.compile(r"[0-9]+")


def require_file(path: Path) -> Path:
    """Return ``path`` if it is an existing file, else raise a DataError naming it."""
    if not path.exists():
        raise DataError("file not found", path=path)
    if not path.is_file():
        raise DataError("not a regular file", path=path)
    return path


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _decode(raw: bytes, path: Path, line: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"not valid UTF-8: byte 0x{raw[e.start]:02x} at byte offset {offset + e.start} of the file",
            path=path,
            line=line,
        ) from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, text without line ending)`` of a UTF-8 text file, streaming.

    Blank lines are skipped; a gzipped file (``.gz``) is decompressed on the fly. Raises DataError for a missing
    file, an empty file, bytes that are not UTF-8 (with line and byte offset) and a corrupt gzip stream.
    """
    require_file(path)
    offset, seen_content = 0, False
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                text = _decode(raw, path, lineno, offset)
                offset += len(raw)
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                text = text.rstrip("\r\n")
                if text.strip():
                    seen_content = True
                    yield lineno, text
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read the file ({e})", path=path) from None
    if not seen_content:
        raise DataError("file is empty", path=path)


def read_text(path: Path) -> str:
    """Whole file as text (UTF-8, optionally gzipped), with the same errors as :func:`iter_lines`."""
    require_file(path)
    try:
        with _open_binary(path) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read the file ({e})", path=path) from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"not valid UTF-8: byte 0x{raw[e.start]:02x} at byte offset {e.start}", path=path, line=line
        ) from None
    if not text.strip():
        raise DataError("file is empty", path=path)
    return text


class _DuplicateKey(Exception):
    """A JSON object repeats a key (raised inside the decoder, turned into a DataError by :func:`parse_json`)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            # A repeated key would silently drop a user or an item: refuse it.
            raise _DuplicateKey(k)
        out[k] = v
    return out


def parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """``json.loads`` with a DataError naming file, line and column; repeated object keys are refused.

    ``line`` is the line number of ``text`` in the file when ``text`` is one line of a JSON-lines file.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        where = line if line is not None else e.lineno
        raise DataError(f"malformed JSON: {e.msg} (column {e.colno})", path=path, line=where) from None
    except _DuplicateKey as e:
        raise DataError("key appears twice in the same JSON object", path=path, line=line, key=str(e)) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", path=path, line=line) from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits (Python's int conversion limit)
        raise DataError(f"unreadable JSON value ({e})", path=path, line=line) from None


def load_json(path: Path) -> Any:
    """Parse a whole JSON file (optionally gzipped)."""
    return parse_json(read_text(path), path)


def id_sort_key(ids: list[str]):
    """Sort key for external ids: numeric when every id is a decimal integer, otherwise lexicographic.

    Numeric order without ``int()``, which refuses more than 4,300 digits: by length of the digits without leading
    zeros, then by those digits, then by the id itself (``"01"`` after ``"1"``).
    """
    if all(_INT_ID.fullmatch(i) for i in ids):
        return lambda i: (len(i.lstrip("0")), i.lstrip("0"), i)
    return lambda i: i


def sort_ids(ids) -> list[str]:
    ids = list(ids)
    return sorted(ids, key=id_sort_key(ids))


def build_dataset(
    name: str,
    sequences: Mapping[str, list[str]],
    items: Mapping[str, dict[str, str]],
    *,
    catalogue: Literal["all", "used"],
    min_interactions: int,
    short_users: Literal["drop", "error"],
    notes: dict[str, int | str],
    path: Path,
    times: Mapping[tuple[str, str], float] | None = None,
) -> Dataset:
    """Apply ``min_interactions`` and turn external-id sequences into a :class:`Dataset`.

    ``times`` (``{(user, item): time}``, from :func:`order_by_time`): the interactions' timestamps, kept as
    :attr:`Dataset.timestamps`; None where the source has no clock.

    Users and items are sorted by id (numeric when all ids are integers). ``catalogue="all"`` keeps every item of
    ``items`` (the item file is the catalogue); ``"used"`` keeps only items some kept user interacted with.
    """
    _check_encodable(sequences, items, path)
    kept, dropped = drop_short_users(sequences, min_interactions, short_users, path=path)
    if short_users == "drop":
        notes["dropped_short_users"] = dropped
    if not kept:
        raise DataError(f"no user has at least {min_interactions} interactions after filtering", path=path)
    if catalogue == "all":
        item_ids = sort_ids(items)
    else:
        item_ids = sort_ids({i for seq in kept.values() for i in seq})
    index = {item: n for n, item in enumerate(item_ids)}
    user_ids = sort_ids(kept)
    return Dataset(
        name=name,
        item_ids=item_ids,
        item_fields=[dict(items[i]) for i in item_ids],
        user_ids=user_ids,
        sequences=[[index[i] for i in kept[u]] for u in user_ids],
        notes=notes,
        timestamps=None if times is None else [[float(times[u, i]) for i in kept[u]] for u in user_ids],
    )


def _check_encodable(sequences: Mapping[str, list[str]], items: Mapping[str, dict[str, str]], path: Path) -> None:
    """Refuse text that cannot be written as UTF-8: lone surrogates from JSON escapes (``"\\ud800"``)."""
    for user, seq in sequences.items():
        for text in (user, *seq):
            _encodable(text, path, f"user {user!r}")
    for item, fields in items.items():
        _encodable(item, path, f"item {item!r}")
        for name, text in fields.items():
            _encodable(name, path, f"{item}.{name}")
            _encodable(text, path, f"{item}.{name}")


def _encodable(text: str, path: Path, key: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            f"text holds a lone surrogate {text[e.start]!r} (an escape such as \\ud800 that is no character)",
            path=path, key=key,
        ) from None


def _flatten(value: Any, path: Path, key: str) -> list[str]:
    """Text parts of a metadata value; nested lists are walked with an explicit stack (no recursion limit)."""
    parts: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None:
            continue
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            parts.append(_number_text(v, path, key))
        elif isinstance(v, list | tuple):
            stack.extend(reversed(v))
        else:
            raise DataError(f"expected text or a list of text, got {type(v).__name__}", path=path, key=key)
    return parts


def _number_text(v: int | float, path: Path, key: str) -> str:
    try:
        return str(v)
    except ValueError as e:  # an int of more than 4,300 digits (from a Python-literal line)
        raise DataError(f"number too long to read ({e})", path=path, key=key) from None


def field_text(value: Any, path: Path, key: str, sep: str = ",") -> str:
    """A metadata value as one string: lists (nested ones flattened) joined by ``sep``; empty parts, repeats dropped."""
    parts: list[str] = []
    for part in _flatten(value, path, key):
        part = part.strip()
        if part and part not in parts:
            parts.append(part)
    return sep.join(parts)


def order_by_time(
    events: Mapping[str, list[tuple[float, str]]],
) -> tuple[dict[str, list[str]], int, int, dict[tuple[str, str], float]]:
    """Per user, sort ``(time, item)`` events by time (stable: ties keep file order) and keep each item's first event.

    Returns ``(sequences, repeated (user, item) events dropped, kept events whose time equals the previous one's,
    {(user, item): time of the kept event})``; the third says how much of the order rests on file order alone, the
    last gives the :class:`Dataset` its timestamps (filters drop pairs, never reorder them).
    """
    sequences, repeated, ties, times = {}, 0, 0, {}
    for user, evs in events.items():
        seen: set[str] = set()
        seq, last = [], None
        for time, item in sorted(evs, key=lambda e: e[0]):
            if item in seen:
                repeated += 1
                continue
            ties += time == last
            seen.add(item)
            seq.append(item)
            times[user, item] = time
            last = time
        sequences[user] = seq
    return sequences, repeated, ties, times
