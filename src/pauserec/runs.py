"""Former home of :class:`RunDir` and :func:`environment`, now :mod:`pauserec.artifacts`.

Kept only as an alias for code not yet moved to :mod:`pauserec.artifacts` (``demo.py``); new code imports
:mod:`pauserec.artifacts`.
"""

from .artifacts import SOURCE_ROOT, RunDir, environment, git_revision, tokenizer_hash

__all__ = ["SOURCE_ROOT", "RunDir", "environment", "git_revision", "tokenizer_hash"]
