"""Resource accounting shared by training and evaluation."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch


def reset_peak_memory() -> None:
    """Start a new peak: what :func:`peak_memory_bytes` reports next covers only what runs from here on.

    Without it, evaluating right after training in one process (the demo, the arms grid) would report the
    training peak as the inference peak. On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets
    ``VmHWM`` to the current resident set; elsewhere (no such file) the CPU peak stays the process's.
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_bytes() -> int:
    """Peak memory of this process: GPU allocator peak on CUDA, else the resident-set high-water mark.

    On Linux this reads ``VmHWM`` (per address space): ``ru_maxrss`` survives ``fork``/``exec`` and would report
    a parent's peak for a fresh child process.
    """
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB
