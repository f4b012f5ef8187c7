"""Data directories: one prepared dataset and what is built from it, loaded with every hash check.

Layout::

    DATA/dataset.json     the Dataset (items, texts, sequences) + content hash
    DATA/stats.json       dataset statistics, reader notes, wall time
    DATA/sids.json        the SIDCatalog (after `sids`), with the hash of the dataset it was built from
    DATA/sid_stats.json   collision / utilisation statistics of the catalogue
    DATA/config.yaml      the resolved config used to prepare it
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_to_yaml
from ..data.dataset import Dataset
from ..data.split import Split, make_split
from ..io import write_json, write_text
from ..sid.catalog import SIDCatalog

DATASET, CATALOG = "dataset.json", "sids.json"


class DataDir:
    """A prepared data directory. The dataset and catalogue are read once per object; the catalogue is refused
    unless it was built from this directory's dataset (:class:`~pauserec.errors.ArtifactMismatchError`)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._dataset: Dataset | None = None
        self._catalog: SIDCatalog | None = None
        self._dataset_hash: str | None = None

    @classmethod
    def create(cls, path: str | os.PathLike, dataset: Dataset, cfg: RunConfig, source: str, seconds: float) -> DataDir:
        """Write ``dataset`` (read from ``source`` in ``seconds``) with its statistics and the config that read it."""
        data = cls(path)
        dataset.save(data.path / DATASET)
        write_text(data.path / "config.yaml", config_to_yaml(cfg))
        write_json(data.path / "stats.json",
                   {"stats": dataset.stats(), "notes": dataset.notes, "source": source, "seconds": seconds})
        data._dataset = dataset
        return data

    def save_catalog(self, catalog: SIDCatalog) -> None:
        """Store the SID catalogue (``sids.json``) and its statistics (``sid_stats.json``)."""
        catalog.save(self.path / CATALOG)
        write_json(self.path / "sid_stats.json", catalog.meta)
        self._catalog = catalog

    def file(self, name: str) -> Path:
        return self.path / name

    def has_catalog(self) -> bool:
        return (self.path / CATALOG).exists()

    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset.load(self.path / DATASET)
        return self._dataset

    def dataset_hash(self) -> str:
        """:meth:`Dataset.content_hash` of :meth:`dataset` (computed once)."""
        if self._dataset_hash is None:
            self._dataset_hash = self.dataset().content_hash()
        return self._dataset_hash

    def catalog(self) -> SIDCatalog:
        """The SID catalogue, checked to be built from :meth:`dataset`."""
        if self._catalog is None:
            self._catalog = SIDCatalog.load(self.path / CATALOG, expected_dataset_hash=self.dataset_hash())
        return self._catalog

    def split(self, cfg: RunConfig) -> Split:
        """The split ``cfg.split`` makes of the dataset (:func:`~pauserec.data.split.make_split`: every model's)."""
        return make_split(self.dataset(), cfg.split)

    def hashes(self) -> dict[str, str]:
        """``{"dataset_hash", "catalog_hash"}`` (no ``catalog_hash`` before ``sids``; nothing where no dataset is
        prepared here, e.g. a grid's table recomputed from committed results alone)."""
        if not (self.path / DATASET).exists():
            return {}
        hashes = {"dataset_hash": self.dataset_hash()}
        if self.has_catalog():
            hashes["catalog_hash"] = self.catalog().content_hash()
        return hashes

    def facts(self, split: Split, catalog: bool) -> dict[str, Any]:
        """What a run made from this directory records in ``env.json``: where it is and the hashes of what it
        read (the catalogue's only when ``catalog``)."""
        facts: dict[str, Any] = {"data_dir": str(self.path.resolve()), "dataset_hash": self.dataset_hash()}
        if catalog:
            facts["catalog_hash"] = self.catalog().content_hash()
        facts["split_hash"] = split.content_hash()
        return facts
