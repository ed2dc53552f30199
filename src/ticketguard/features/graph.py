"""social_graph_centrality: PageRank on the wallet transfer graph, as a daily point-in-time snapshot.

The graph of a snapshot dated D (00:00 UTC) holds every resale strictly before D as an edge seller → buyer
(weight = number of resales between them). Scores are PageRank × node count, so 1 is the average wallet
whatever the graph's size; a wallet with no transfer before D is not in the graph and scores 0.

Offline, a transaction at t uses the snapshot of floor(t) to the day; online reads the latest stored
snapshot at or before t (the daily job writes one per day, `ticketguard features refresh-graph`), which is
the same snapshot once the job has run for the day.

Pure: numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Snapshot:
    nodes: np.ndarray  # node ids (caller's wallet codes), sorted
    scores: np.ndarray  # PageRank × len(nodes), aligned with nodes
    edges: int
    iterations: int

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Scores of these wallet codes, 0 for wallets not in the graph."""
        if len(self.nodes) == 0:
            return np.zeros(len(codes))
        pos = np.clip(np.searchsorted(self.nodes, codes), 0, len(self.nodes) - 1)
        return np.where(self.nodes[pos] == codes, self.scores[pos], 0.0)


def pagerank(
    sources: np.ndarray, targets: np.ndarray, *, damping: float, tolerance: float, max_iter: int
) -> Snapshot:
    """PageRank of the directed multigraph sources[i] → targets[i] (int codes), by power iteration.

    Dangling wallets (no outgoing transfer) spread their rank uniformly. Deterministic: starts uniform,
    stops when the L1 change is below ``tolerance`` or after ``max_iter`` iterations.
    """
    if len(sources) == 0:
        return Snapshot(np.zeros(0, np.int64), np.zeros(0), 0, 0)
    nodes, inverse = np.unique(np.concatenate([sources, targets]), return_inverse=True)
    n = len(nodes)
    src, dst = inverse[: len(sources)], inverse[len(sources) :]
    matrix = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out_weight == 0
    inv_out = np.where(dangling, 0.0, 1.0 / np.where(dangling, 1.0, out_weight))
    transition_t = (sparse.diags(inv_out) @ matrix).T.tocsr()
    rank = np.full(n, 1.0 / n)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        new = damping * (transition_t @ rank + rank[dangling].sum() / n) + (1.0 - damping) / n
        change = np.abs(new - rank).sum()
        rank = new
        if change < tolerance:
            break
    return Snapshot(nodes=nodes, scores=rank * n, edges=len(sources), iterations=iterations)


def snapshots_for_days(
    transfer_times_us: np.ndarray,
    sellers: np.ndarray,
    buyers: np.ndarray,
    days: np.ndarray,
    *,
    damping: float,
    tolerance: float,
    max_iter: int,
) -> dict[int, Snapshot]:
    """One snapshot per day number (days since epoch), each from transfers strictly before that day."""
    order = np.argsort(transfer_times_us, kind="stable")
    times, s, b = transfer_times_us[order], sellers[order], buyers[order]
    out: dict[int, Snapshot] = {}
    previous_cut = -1
    previous: Snapshot | None = None
    for day in np.unique(days):
        cut = int(np.searchsorted(times, int(day) * DAY_US, side="left"))
        if cut != previous_cut or previous is None:
            previous = pagerank(s[:cut], b[:cut], damping=damping, tolerance=tolerance, max_iter=max_iter)
            previous_cut = cut
        out[int(day)] = previous
    return out
