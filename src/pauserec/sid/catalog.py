"""The Semantic-ID catalogue: item <-> SID bijection, SID token strings, and the prefix trie.

An SID is a tuple of L codes, code ``c`` at level ``l`` written as the token ``<{letter(l)}_{c}>``
(``<a_12><b_201><c_7>``). The catalogue guarantees that no two items share an SID, so a decoded SID
is always exactly one real item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactMismatchError, DataError
from ..io import read_json, stable_hash, write_json

FORMAT = "pauserec-sid-catalog/1"
LEVEL_LETTERS = "abcdefghijklmnop"


def sid_token(level: int, code: int) -> str:
    """``sid_token(0, 12) == '<a_12>'``."""
    return f"<{LEVEL_LETTERS[level]}_{code}>"


@dataclass(frozen=True)
class PrefixTrie:
    """Prefix trie over every SID of a catalogue, stored as one dense table per level.

    Nodes are numbered per depth; the root is node 0 at depth 0. ``tables[d]`` has shape
    ``(n_nodes_at_depth_d, level_sizes[d])``: entry ``[n, c]`` is the node at depth ``d+1`` reached from
    node ``n`` by code ``c``, or -1 if no SID has that prefix. At the last depth the entry is the item index.
    Memory is ``sum_d n_nodes_d * C_d`` int32 entries (a few MB for catalogues of 10^4-10^5 items).
    """

    tables: list[np.ndarray]

    @property
    def depth(self) -> int:
        return len(self.tables)

    def allowed(self, depth: int, nodes: np.ndarray) -> np.ndarray:
        """Bool mask ``(len(nodes), C_depth)`` of the codes allowed after each prefix node."""
        return self.tables[depth][nodes] >= 0

    def step(self, depth: int, nodes: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Child nodes (or item indices at the last depth) for each (node, code); -1 where not allowed."""
        return self.tables[depth][nodes, codes]

    def lookup(self, codes: tuple[int, ...] | list[int]) -> int:
        """Item index of a full SID, or -1 if it is not in the catalogue."""
        node = 0
        for d, c in enumerate(codes):
            if node < 0 or not 0 <= c < self.tables[d].shape[1]:
                return -1
            node = int(self.tables[d][node, c])
        return node if len(codes) == self.depth else -1

    @cached_property
    def paths(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item's walk down the trie: ``(nodes, codes)``, both ``(n_items, L)`` int64; ``nodes[i, d]`` is
        the node at depth ``d`` on item ``i``'s path (``nodes[:, 0] == 0``), ``codes[i, d]`` the code taken there."""
        nodes = np.zeros((1, 0), dtype=np.int64)
        codes = np.zeros((1, 0), dtype=np.int64)
        current = np.zeros(1, dtype=np.int64)
        for table in self.tables:
            rows, cs = np.nonzero(table[current] >= 0)
            nodes = np.concatenate([nodes[rows], current[rows, None]], axis=1)
            codes = np.concatenate([codes[rows], cs[:, None]], axis=1)
            current = table[current[rows], cs].astype(np.int64)
        order = np.argsort(current)  # at the last depth the "node" is the item index
        return nodes[order], codes[order]

    @cached_property
    def subtree_items(self) -> list[np.ndarray]:
        """Per depth ``d``, ``(n_nodes_d,)`` the number of items below each node (depth 0: the root, all items)."""
        nodes, _ = self.paths
        return [np.bincount(nodes[:, d], minlength=len(t)) for d, t in enumerate(self.tables)]

    def excluded_codes(self, items) -> dict[tuple[int, int], frozenset[int]]:
        """``(depth, node) -> codes`` to forbid so that no path reaches any of ``items`` (item indices): each item's
        last code, and every code whose whole subtree is excluded (so a beam is never spent on a dead prefix)."""
        items = np.unique(np.asarray(list(items), dtype=np.int64))
        if items.size == 0:
            return {}
        nodes, codes = self.paths
        forbid: dict[tuple[int, int], set[int]] = {}
        last = self.depth - 1
        for i in items:
            forbid.setdefault((last, int(nodes[i, last])), set()).add(int(codes[i, last]))
        for d in range(last - 1, -1, -1):  # a child node is dead when all its items are excluded
            child, count = np.unique(nodes[items, d + 1], return_counts=True)
            dead = set(child[count == self.subtree_items[d + 1][child]].tolist())
            for i in items:
                if int(nodes[i, d + 1]) in dead:
                    forbid.setdefault((d, int(nodes[i, d])), set()).add(int(codes[i, d]))
        return {k: frozenset(v) for k, v in forbid.items()}


def trie_codes(trie: PrefixTrie) -> np.ndarray:
    """Every SID stored in ``trie`` as codes ``(n_items, L)``, row ``i`` = item ``i``."""
    nodes = np.zeros(1, dtype=np.int64)
    prefixes = np.zeros((1, 0), dtype=np.int64)
    for d, table in enumerate(trie.tables):
        rows, codes = np.nonzero(table[nodes] >= 0)
        children = table[nodes[rows], codes].astype(np.int64)
        prefixes = np.concatenate([prefixes[rows], codes[:, None]], axis=1)
        nodes = children
    out = np.empty_like(prefixes)
    out[nodes] = prefixes  # at the last depth the "node" is the item index
    return out


def build_trie(codes: np.ndarray, level_sizes: list[int]) -> PrefixTrie:
    """Build the per-level tables from unique SID rows ``codes`` of shape ``(n_items, L)``."""
    n_items, n_levels = codes.shape
    tables: list[np.ndarray] = []
    # node id of each item's prefix at the current depth (all items start at the root)
    node_of_item = np.zeros(n_items, dtype=np.int64)
    n_nodes = 1
    for d in range(n_levels):
        table = np.full((n_nodes, level_sizes[d]), -1, dtype=np.int32)
        if d == n_levels - 1:
            table[node_of_item, codes[:, d]] = np.arange(n_items, dtype=np.int32)
        else:
            # children = distinct (parent node, code) pairs, numbered in sorted order
            pairs = node_of_item * level_sizes[d] + codes[:, d]
            uniq, child_of_item = np.unique(pairs, return_inverse=True)
            table[uniq // level_sizes[d], uniq % level_sizes[d]] = np.arange(len(uniq), dtype=np.int32)
            node_of_item, n_nodes = child_of_item.reshape(-1), len(uniq)
        tables.append(table)
    return PrefixTrie(tables)


@dataclass(frozen=True)
class SIDCatalog:
    """Codes of every item, unique per item, tied to the dataset they were built from.

    Attributes:
        codes: ``(n_items, L)`` int64; row ``i`` is the SID of item ``i`` (internal index).
        level_sizes: number of codes (tokens) at each level.
        item_ids: external item ids, aligned with ``codes`` rows.
        dataset_hash: content hash of the :class:`~pauserec.data.Dataset` the SIDs were built from.
        meta: how they were built (quantizer, config, statistics).
    """

    codes: np.ndarray
    level_sizes: list[int]
    item_ids: list[str]
    dataset_hash: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes, dtype=np.int64)
        object.__setattr__(self, "codes", codes)
        if codes.ndim != 2 or codes.shape[0] != len(self.item_ids):
            raise DataError(f"codes must have shape (n_items={len(self.item_ids)}, L), got {codes.shape}")
        if codes.shape[1] != len(self.level_sizes):
            raise DataError(f"{codes.shape[1]} levels of codes but {len(self.level_sizes)} level sizes")
        if len(codes) and ((codes < 0).any() or (codes >= np.asarray(self.level_sizes)).any()):
            raise DataError("a code is outside its level's codebook")
        n_unique = len(np.unique(codes, axis=0)) if len(codes) else 0
        if n_unique != len(codes):
            raise DataError(f"{len(codes) - n_unique} items share an SID with another item; apply a collision policy")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)

    def level_tokens(self, level: int) -> list[str]:
        """The token strings of one level, ordered by code."""
        return [sid_token(level, c) for c in range(self.level_sizes[level])]

    def all_tokens(self) -> list[str]:
        """Every SID token, level by level: the vocabulary the model is extended with."""
        return [t for level in range(self.n_levels) for t in self.level_tokens(level)]

    def sid_tokens(self, item: int) -> list[str]:
        return [sid_token(level, int(c)) for level, c in enumerate(self.codes[item])]

    def sid_string(self, item: int) -> str:
        return "".join(self.sid_tokens(item))

    @cached_property
    def trie(self) -> PrefixTrie:
        return build_trie(self.codes, self.level_sizes)

    def item_of(self, codes: tuple[int, ...] | list[int]) -> int:
        """Item index of an SID given as codes, or -1."""
        return self.trie.lookup(codes)

    def content_hash(self) -> str:
        return stable_hash([self.codes.tolist(), self.level_sizes, self.item_ids, self.dataset_hash])

    def check_dataset(self, dataset_hash: str) -> None:
        """Raise if this catalogue was built from other data."""
        if dataset_hash != self.dataset_hash:
            raise ArtifactMismatchError(
                f"SID catalogue was built from dataset {self.dataset_hash}, not from this one ({dataset_hash}); "
                "rebuild it with `pauserec sids`"
            )

    # --- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        write_json(
            path,
            {
                "format": FORMAT,
                "content_hash": self.content_hash(),
                "dataset_hash": self.dataset_hash,
                "level_sizes": self.level_sizes,
                "item_ids": self.item_ids,
                "codes": self.codes.tolist(),
                "meta": self.meta,
            },
            indent=None,
        )

    def save_index_json(self, path: str | Path) -> None:
        """Export in the LC-Rec ``X.index.json`` layout: ``{item_id: ["<a_1>", "<b_2>", ...]}``."""
        write_json(path, {iid: self.sid_tokens(i) for i, iid in enumerate(self.item_ids)}, indent=None)

    @classmethod
    def load(cls, path: str | Path, expected_dataset_hash: str | None = None) -> SIDCatalog:
        try:
            raw = read_json(path)
        except FileNotFoundError:
            raise DataError("SID catalogue not found (run `pauserec sids` first)", path=path) from None
        except ValueError as e:
            raise DataError(f"malformed JSON ({e})", path=path) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DataError(f"not a {FORMAT} file", path=path)
        try:
            cat = cls(
                codes=np.asarray(raw["codes"], dtype=np.int64).reshape(len(raw["item_ids"]), len(raw["level_sizes"])),
                level_sizes=list(raw["level_sizes"]),
                item_ids=list(raw["item_ids"]),
                dataset_hash=raw["dataset_hash"],
                meta=raw.get("meta", {}),
            )
        except KeyError as e:
            raise DataError("missing field", path=path, key=e.args[0]) from None
        if raw.get("content_hash") != cat.content_hash():
            raise DataError("content hash does not match (file edited or corrupted)", path=path)
        if expected_dataset_hash is not None:
            cat.check_dataset(expected_dataset_hash)
        return cat
