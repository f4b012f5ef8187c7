"""Rationale sets of controlled quality, derived from an acquisition directory (``pauserec rationales``).

Only the usable rows (``status == "ok"``) change; filtered rows keep their text and status, so a derived set
trains on exactly the examples the source trains on:

* ``shuffled``: every usable text moves to another example (a seeded random cyclic permutation: none stays put);
* ``empty``: every usable text becomes ``""`` (the cot arm then trains on ``<think></think>``);
* ``truncated``: every usable text is cut to its first ``words`` words.

The result is a new acquisition directory of the same format (``rationales.jsonl``, ``rationale_stats.json``,
``cost.json``, ``config.yaml``, ``env.json``), written atomically as a whole; its stats, cost and env say what it
was derived from (its cost is the source's: deriving costs nothing more).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from ..errors import PauseRecError
from ..io import atomic_directory, read_json, read_jsonl, write_json, write_jsonl

VARIANTS = ("shuffled", "empty", "truncated")
FILES = ("rationales.jsonl", "rationale_stats.json", "cost.json", "config.yaml", "env.json")


def derived_texts(texts: list[str], variant: str, *, seed: int = 0, words: int = 8) -> list[str]:
    """``texts`` transformed by ``variant`` (same length, same order of examples)."""
    if variant == "empty":
        return ["" for _ in texts]
    if variant == "truncated":
        if words < 0:
            raise PauseRecError(f"--words must be >= 0, got {words}")
        return [" ".join(t.split()[:words]) for t in texts]
    if variant == "shuffled":
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)
        out = list(texts)
        for k, i in enumerate(order):  # one cycle through the shuffled order: i takes the next one's text
            out[i] = texts[order[(k + 1) % len(order)]]
        return out
    raise PauseRecError(f"unknown rationale variant {variant!r} (known: {', '.join(VARIANTS)})")


def derive_rationales(source: str | Path, out: str | Path, variant: str, *, seed: int = 0, words: int = 8) -> dict[str, Any]:
    """Write the ``variant`` of the acquisition directory ``source`` to ``out``; return its stats.

    Raises:
        PauseRecError: ``source`` lacks a file of the format, ``out`` is ``source``, or the variant is unknown.
    """
    source, out = Path(source), Path(out)
    missing = [f for f in FILES if not (source / f).is_file()]
    if missing:
        raise PauseRecError(f"{source} is not a rationale acquisition directory (missing {', '.join(missing)}): "
                            "make one with pauserec rationales DATA --out DIR")
    if out.resolve() == source.resolve():
        raise PauseRecError("the derived set must go to another directory than its source")
    rows = read_jsonl(source / "rationales.jsonl")
    usable = [k for k, r in enumerate(rows) if r["status"] == "ok"]
    texts = derived_texts([rows[k]["text"] for k in usable], variant, seed=seed, words=words)
    for k, text in zip(usable, texts):
        rows[k] = {**rows[k], "text": text}
    derived = {"from": str(source.resolve()), "variant": variant, "seed": seed,
               **({"words": words} if variant == "truncated" else {})}
    stats = {**read_json(source / "rationale_stats.json"), "derived": derived,
             "mean_words": sum(len(t.split()) for t in texts) / max(len(texts), 1)}
    with atomic_directory(out) as tmp:
        write_jsonl(tmp / "rationales.jsonl", rows)
        write_json(tmp / "rationale_stats.json", stats)
        write_json(tmp / "cost.json", {**read_json(source / "cost.json"), "derived": derived})
        write_json(tmp / "env.json", {**read_json(source / "env.json"), "derived": derived})
        shutil.copyfile(source / "config.yaml", tmp / "config.yaml")
    return stats


def rationale_set_label(directory: str | Path) -> str:
    """A short name for a rationale set: ``shuffled(template)``, ``truncated-4(local)``, or the provider's name."""
    directory = Path(directory)
    stats_path = directory / "rationale_stats.json"
    if not stats_path.is_file():
        return directory.name
    stats = read_json(stats_path)
    derived = stats.get("derived")
    if derived:
        variant = derived["variant"] + (f"-{derived['words']}" if "words" in derived else "")
        return f"{variant}({rationale_set_label(derived['from'])})"
    return str((stats.get("provider") or {}).get("provider") or directory.name)
