"""Where a number came from: the code revision, versions and machine recorded with every run and benchmark."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[3]


def git_revision() -> str | None:
    """The git revision of the pauserec code running in this process (``+dirty`` when it had uncommitted
    changes), if it comes from a checkout.

    Read once, when this module is first imported: a long run (a grid that trains arm after arm) records the
    code it loaded, not commits made while it ran. ``$PAUSEREC_GIT_REVISION``, when set, wins: a copy of the
    tree shipped to another machine may carry no ``.git`` or a stale one.
    """
    return os.environ.get("PAUSEREC_GIT_REVISION") or _REVISION_AT_IMPORT


def _checkout_revision() -> str | None:
    # generous timeouts: on a loaded machine (a training beside the tests, memory pressure) `git status` took > 5 s,
    # and a run would have recorded no revision at all
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


_REVISION_AT_IMPORT = _checkout_revision()


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every run and benchmark result."""
    import numpy
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_revision": git_revision(),
        "command": " ".join(sys.argv),
    }
