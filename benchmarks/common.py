"""Shared by the benchmark scripts: how a committed result is written (JSON + Markdown beside it)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from pauserec.io import write_json, write_text
from pauserec.runs import environment

RESULTS = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    """The exact command that produced a result, as a user would type it from the repository root."""
    in_venv = Path(sys.prefix).resolve() == (RESULTS.parents[1] / ".venv").resolve()
    return " ".join(shlex.quote(a) for a in [".venv/bin/python" if in_venv else "python", *sys.argv])


def write_result(name: str, payload: dict[str, Any], markdown: str, machine: dict[str, Any] | None = None) -> Path:
    """``benchmarks/results/NAME.json`` (numbers + command + git revision + machine) and ``NAME.md``.

    Long benchmarks pass ``machine=environment()`` captured when they started, so the recorded git revision is
    the code that produced the numbers even if the tree changed while they ran.
    """
    record = {
        "name": name,
        "command": command_line(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine or environment(),
        **payload,
    }
    write_json(RESULTS / f"{name}.json", record)
    gpu = f", GPU {record['machine']['cuda']}" if record["machine"].get("cuda") else ", no GPU"
    header = f"# {name}\n\nCommand: `{record['command']}`  \nMachine: {record['machine']['platform']}, " \
             f"{record['machine']['cpu_count']} CPUs{gpu}, torch {record['machine']['torch']}, " \
             f"git {record['machine']['git_revision']}  \nDate: {record['date']}\n\n"
    write_text(RESULTS / f"{name}.md", header + markdown)
    return RESULTS / f"{name}.json"
