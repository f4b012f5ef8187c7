"""The constrained step of the SID search: which (beam, code) pairs survive one level.

Tie-breaking is deterministic: candidates of one user are laid out as ``(beam rank, code)`` in row-major order and
sorted with a *stable* descending sort, so among equal cumulative scores the lower beam rank, then the lower code,
wins. Users with fewer valid continuations than beams simply keep fewer beams (never ``-inf`` placeholders): every
trie node has at least one child, so a user ends with ``min(W, number of catalogue items)`` items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..sid.catalog import PrefixTrie


def check_forced(forced: Sequence[Sequence[int]] | None, n_levels: int) -> list[list[int]]:
    if forced is None:
        return [[] for _ in range(max(n_levels - 1, 0))]
    forced = [[int(t) for t in f] for f in forced]
    if len(forced) != n_levels - 1:
        raise ValueError(
            f"forced_between_levels needs {n_levels - 1} lists (one between each pair of levels), got {len(forced)}"
        )
    return forced


def select_beams(
    cum: torch.Tensor,
    allowed: torch.Tensor,
    user: torch.Tensor,
    rank: torch.Tensor,
    n_users: int,
    num_beams: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top ``min(W, #allowed)`` (beam, code) pairs per user.

    Args:
        cum: (R, C) cumulative scores (disallowed already ``-inf``); rows grouped by user, ranked within a user.
        allowed: (R, C) bool.
        user, rank: (R,) the row's user and its rank among that user's beams.
    Returns:
        origin row (R'), code (R'), new user (R'), new rank (R'), new score (R'), ordered by user then rank.
    """
    n_rows, n_codes = cum.shape
    width = num_beams * n_codes
    table = cum.new_full((n_users, num_beams, n_codes), -math.inf)
    table[user, rank] = cum
    ok = torch.zeros((n_users, num_beams, n_codes), dtype=torch.bool, device=cum.device)
    ok[user, rank] = allowed
    # stable descending sort: among equal scores the lower (beam rank, code) flat index comes first
    order = torch.sort(table.view(n_users, width), dim=1, descending=True, stable=True).indices[:, :num_beams]
    n_keep = ok.view(n_users, width).sum(1).clamp(max=num_beams)
    keep = torch.arange(order.shape[1], device=cum.device)[None, :] < n_keep[:, None]
    keep &= ok.view(n_users, width).gather(1, order)  # never a disallowed pair, whatever the scores
    new_user, new_rank = keep.nonzero(as_tuple=True)  # row-major: user, then rank
    flat = order[new_user, new_rank]
    slot, code = flat // n_codes, flat % n_codes
    row_of = torch.full((n_users, num_beams), -1, dtype=torch.long, device=cum.device)
    row_of[user, rank] = torch.arange(n_rows, device=cum.device)
    origin = row_of[new_user, slot]
    score = table.view(n_users, width)[new_user, flat]
    # ranks must be contiguous 0..k-1 per user; `keep` is a prefix per user so new_rank already is
    return origin, code, new_user, new_rank, score


def without_forbidden(
    allowed: np.ndarray, depth: int, nodes: np.ndarray, user: torch.Tensor, forbidden: list[dict] | None
) -> np.ndarray:
    """``allowed`` (R, C_depth) bool, the trie's codes after each row's node, minus its user's forbidden codes."""
    if forbidden is not None:
        allowed = allowed.copy()
        for r, (u, n) in enumerate(zip(user.tolist(), nodes.tolist())):
            codes = forbidden[u].get((depth, n))
            if codes:
                allowed[r, list(codes)] = False
    return allowed


@dataclass
class Beams:
    """The live beams, one row each, grouped by user and ranked within a user: ``user``, ``rank`` and ``score`` (the
    cumulative log-probability) are (R,) tensors, ``node`` (R,) the trie node of each beam's SID prefix (at the last
    level: the item index)."""

    user: torch.Tensor
    rank: torch.Tensor
    score: torch.Tensor
    node: np.ndarray

    @classmethod
    def roots(cls, n_users: int, device: torch.device) -> Beams:
        """One beam per user at the trie root (the empty SID prefix), score 0."""
        return cls(torch.arange(n_users, device=device), torch.zeros(n_users, dtype=torch.long, device=device),
                   torch.zeros(n_users, dtype=torch.float32, device=device), np.zeros(n_users, dtype=np.int64))


def constrained_step(beams: Beams, logp: torch.Tensor, trie: PrefixTrie, depth: int, n_users: int, num_beams: int,
                     normalization: str, forbidden: list[dict] | None) -> tuple[Beams, torch.Tensor, torch.Tensor]:
    """One SID level: ``logp`` (R, C_depth) of the live beams, masked to the codes the trie allows after each beam's
    prefix (renormalised over them with ``normalization == "trie"``) minus the user's forbidden ones, then the top
    ``min(num_beams, #allowed)`` (beam, code) pairs per user. Returns the new beams and, per new beam, its origin row
    (R',) and code (R',)."""
    device = logp.device
    in_trie = trie.allowed(depth, beams.node)
    if normalization == "trie":  # renormalise over the codes the catalogue has after this prefix
        logp = torch.log_softmax(logp.masked_fill(~torch.from_numpy(in_trie).to(device), -math.inf), dim=-1)
    # excluded items are masked after normalising: the survivors keep their scores, only their rank moves up
    allowed = torch.from_numpy(without_forbidden(in_trie, depth, beams.node, beams.user, forbidden)).to(device)
    cum = (beams.score[:, None] + logp).masked_fill(~allowed, -math.inf)
    origin, code, user, rank, score = select_beams(cum, allowed, beams.user, beams.rank, n_users, num_beams)
    node = trie.step(depth, beams.node[origin.cpu().numpy()], code.cpu().numpy()).astype(np.int64)
    return Beams(user, rank, score, node), origin, code
