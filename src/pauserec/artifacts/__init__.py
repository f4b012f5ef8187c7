"""The artifact layer: data directories and run directories that load themselves with every hash check.

* :class:`DataDir` (``data_dir.py``): a prepared dataset, its SID catalogue (checked to be built from it) and split.
* :class:`RunDir` (``run_dir.py``): a run's config, environment, facts (hashes) and files; :meth:`RunDir.data` is
  the checked data directory a trained run was built from.
* :func:`load_trained` (``trained.py``): a trained run's model and tokenizer, as evaluation and serving load it.
* :func:`environment` / :func:`git_revision` (``provenance.py``): what every run and benchmark records about where
  it ran.

Train, eval, serve, the analyses, the baselines and ``pauserec bench`` read and write artifacts only through these.
"""

from .data_dir import DataDir
from .provenance import SOURCE_ROOT, environment, git_revision
from .run_dir import RunDir, tokenizer_hash
from .trained import TrainedRun, load_trained

__all__ = ["SOURCE_ROOT", "DataDir", "RunDir", "TrainedRun", "environment", "git_revision", "load_trained",
           "tokenizer_hash"]
