"""Reading an acquisition directory's rationales back (what the ``cot`` arm trains on)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PauseRecError
from ..io import read_jsonl

FILE = "rationales.jsonl"


def load_rationales(directory: str | Path) -> dict[str, str]:
    """``{example key: text}`` of the usable rationales (filtered ones, e.g. quoting the target, are left out)."""
    path = Path(directory) / FILE
    if not path.exists():
        raise PauseRecError(f"{directory} holds no {FILE}: acquire rationales first (pauserec rationales DATA --out DIR)")
    return {row["key"]: row["text"] for row in read_jsonl(path) if row["status"] == "ok"}
