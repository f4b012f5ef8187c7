"""The paper's three analyses of the explicit-CoT pipeline's limitations, each a figure and a table
(``pauserec analyze KIND RUN...``):

* :mod:`.knowledge`: world-knowledge verbalization (likelihood-scored probes, generated descriptions);
* :mod:`.alignment`: SID / title embedding alignment (retrieval both ways, linear CKA, 2-D PCA);
* :mod:`.rationale_quality`: cot accuracy across rationale sets of controlled quality (:mod:`.rationale_sets`
  derives them), direct / pause as references.

:mod:`.loading` holds what they share (models under study, data, probe items, outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PauseRecError

KINDS = ("knowledge", "alignment", "rationale-quality", "rationale-set")


def analyze(kind: str, runs: Sequence[str | Path], *, out: str | Path | None = None, base: str | None = None,
            data_dir: str | Path | None = None, items: int | None = None, seed: int = 0,
            references: Sequence[str | Path] = (), variant: str | None = None, words: int = 8) -> dict[str, Any]:
    """Run one analysis (``kind`` in :data:`KINDS`) and return its table (with ``"files"`` written).

    ``rationale-set`` derives a rationale set instead: ``runs`` is one acquisition directory, ``out`` the new one.
    """
    from .loading import default_out, load_study_data, model_specs, study_config

    if kind not in KINDS:
        raise PauseRecError(f"unknown analysis {kind!r} (known: {', '.join(KINDS)})")
    if kind == "rationale-set":
        from .rationale_sets import VARIANTS, derive_rationales

        if len(runs) != 1 or out is None or variant is None:
            raise PauseRecError(f"rationale-set takes one acquisition directory, --out DIR and --variant "
                                f"({' | '.join(VARIANTS)})")
        return {"stats": derive_rationales(runs[0], out, variant, seed=seed, words=words), "files": {"dir": str(out)}}
    out = default_out(runs, out)
    if kind == "rationale-quality":
        from .rationale_quality import rationale_quality_analysis

        if not runs:
            raise PauseRecError("rationale-quality needs at least one evaluated cot run")
        return rationale_quality_analysis(runs, out, references=references)
    cfg = study_config(runs)
    specs = model_specs(runs, base)
    if not specs:
        raise PauseRecError(f"{kind}: no model to study (give runs, or --base)")
    data = load_study_data(runs, data_dir)
    if kind == "knowledge":
        from .knowledge import knowledge_analysis

        return knowledge_analysis(specs, data, out, cache_dir=cfg.cache_dir, n_items=items or 200, seed=seed,
                                  heldout_fraction=cfg.ground.heldout_items)
    from .alignment import alignment_analysis

    return alignment_analysis(specs, data, out, cache_dir=cfg.cache_dir, cfg=cfg, n_items=items, seed=seed)
