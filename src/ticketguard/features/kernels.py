"""Counting "strictly before t, within a key" over sorted arrays — the one operation offline features need.

Every windowed count or sum over history reduces to: for each query (key g, time t), how many items of
group g have a value below t (or at most t). Items are sorted once by (group, value); each query is then a
binary search. Windows are differences of two searches; windows whose ends move differently per item
(labels that become known later, distinct values) are interval-stabbing counts — items contributing on
``(L, R]`` are counted as #(L < t) − #(R < t).

Pure numpy; values are int64 (microseconds), groups non-negative int64 codes.
"""

from __future__ import annotations

import numpy as np

_COMPOSITE_LIMIT = 2**62


def positions(
    sorted_groups: np.ndarray,
    sorted_values: np.ndarray,
    query_groups: np.ndarray,
    query_values: np.ndarray,
    *,
    strict: bool = True,
    force_merge: bool = False,
) -> np.ndarray:
    """For each query, the number of items ordered before it: items of lower groups, plus items of its group
    with value < (strict) or <= (not strict) the query value. Items must be sorted by (group, value)."""
    n, m = len(sorted_groups), len(query_groups)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 0:
        return np.zeros(m, dtype=np.int64)
    vmin = int(min(sorted_values.min(), query_values.min()))
    vmax = int(max(sorted_values.max(), query_values.max()))
    span = vmax - vmin + 1
    gmax = int(max(sorted_groups.max(), query_groups.max())) + 1
    if not force_merge and gmax * span < _COMPOSITE_LIMIT:
        # Fast path: one int64 key (group, value) and a vectorised binary search.
        items = sorted_groups * np.int64(span) + (sorted_values - np.int64(vmin))
        queries = query_groups * np.int64(span) + (query_values - np.int64(vmin))
        return np.searchsorted(items, queries, side="left" if strict else "right").astype(np.int64)
    # Wide keys (many groups × long spans) would overflow: merge items and queries in one lexsort instead.
    groups = np.concatenate([sorted_groups, query_groups])
    values = np.concatenate([sorted_values, query_values])
    # At equal (group, value) a strict query sorts before the items, a non-strict one after them.
    tie = np.concatenate([np.ones(n, np.int8), np.zeros(m, np.int8)])
    if not strict:
        tie = 1 - tie
    order = np.lexsort((tie, values, groups))
    is_item = order < n
    items_before: np.ndarray = np.cumsum(is_item) - is_item
    out = np.empty(m, dtype=np.int64)
    out[order[~is_item] - n] = items_before[~is_item]
    return out


class SortedIndex:
    """Items sorted by (group, value), with prefix sums of an optional weight."""

    def __init__(self, groups: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> None:
        groups = np.asarray(groups, dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        order = np.lexsort((values, groups))
        self.groups = groups[order]
        self.values = values[order]
        self.order = order
        w = np.ones(len(order)) if weights is None else np.asarray(weights, dtype=np.float64)[order]
        self.cum = np.concatenate([[0.0], np.cumsum(w)])

    def __len__(self) -> int:
        return len(self.groups)

    def before(
        self, query_groups: np.ndarray, query_values: np.ndarray, *, strict: bool = True
    ) -> np.ndarray:
        return positions(self.groups, self.values, query_groups, query_values, strict=strict)

    def group_start(self, query_groups: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.groups, query_groups, side="left").astype(np.int64)

    def count_below(
        self, query_groups: np.ndarray, query_values: np.ndarray, *, strict: bool = True
    ) -> np.ndarray:
        """Items of the query's group with value < t (strict) or <= t."""
        return self.before(query_groups, query_values, strict=strict) - self.group_start(query_groups)

    def weight_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return self.cum[hi] - self.cum[lo]


def stab_count(
    groups: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray | None,
    query_groups: np.ndarray,
    query_values: np.ndarray,
    *,
    upper_inclusive: bool = True,
) -> np.ndarray:
    """How many items of the query's group have lower < t and (t <= upper, or t < upper when not inclusive).

    ``upper`` None means no upper end. Items with an empty interval are dropped first.
    """
    groups = np.asarray(groups, dtype=np.int64)
    lower = np.asarray(lower, dtype=np.int64)
    if upper is not None:
        upper = np.asarray(upper, dtype=np.int64)
        keep = lower < upper
        groups, lower, upper = groups[keep], lower[keep], upper[keep]
    counts = SortedIndex(groups, lower).count_below(query_groups, query_values, strict=True)
    if upper is not None:
        # Drop items whose interval ended before t: upper < t (inclusive end) or upper <= t (open end).
        ended = SortedIndex(groups, upper).count_below(query_groups, query_values, strict=upper_inclusive)
        counts = counts - ended
    return counts


def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) for each pair of positions, NaN where the range is empty.

    A sparse table (the maximum of every run of 2^k values), built only up to the longest range asked
    for: each query is then the larger of two overlapping runs. O(n log L) for ranges of at most L.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    out = np.full(len(lo), np.nan)
    length = hi - lo
    some = length > 0
    if not some.any():
        return out
    lo, length = lo[some], length[some]
    levels = [np.asarray(values, dtype=np.float64)]
    k = np.zeros(len(lo), dtype=np.int64)  # floor(log2(length))
    k = np.floor(np.log2(length)).astype(np.int64)
    # Guard the float log: 2^k must not exceed the length, 2^(k+1) must.
    k = np.where((1 << k) > length, k - 1, k)
    k = np.where((1 << (k + 1)) <= length, k + 1, k)
    for level in range(1, int(k.max()) + 1):
        prev = levels[-1]
        half = 1 << (level - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    result = np.empty(len(lo))
    for level in np.unique(k):
        rows = k == level
        table = levels[int(level)]
        a = lo[rows]
        b = lo[rows] + length[rows] - (1 << int(level))
        result[rows] = np.maximum(table[a], table[b])
    out[some] = result
    return out
