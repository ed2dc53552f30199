"""The model's trees as flat numpy arrays: one row's margin and Saabas contributions without a DMatrix.

XGBoost computes contributions only from a DMatrix (~0.25 ms to build) and then walks the trees again
(`approx_contribs`, ~0.4 ms), after `inplace_predict` walked them once (~0.3 ms). Walking them once here,
all trees a level at a time, gives the margin and XGBoost's approximate contributions together: for each tree,
the bias gets the root's mean value and each split on the path credits its feature with the change of the
node mean value (the mean of the leaves below, weighted by hessian cover) — XGBoost's
``CalculateContributionsApprox``. bias + contributions = margin, exactly as in XGBoost.

Built from the booster's JSON; `FastTrees.from_booster` checks itself against XGBoost on probe rows and
refuses (ValueError) a model it does not reproduce (another objective, categorical splits, multi-target,
DART), in which case the caller keeps XGBoost's own path. Pure numpy (+ the booster object it is given).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

_SUPPORTED_OBJECTIVES = ("binary:logistic", "binary:logitraw", "reg:logistic")


class FastTrees:
    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        default_left: np.ndarray,
        mean: np.ndarray,
        base_margin: float,
        n_features: int,
        depth: int,
    ) -> None:
        self.n_features = n_features
        self.depth = depth
        self.n_trees, width = left.shape
        self.bias = float(base_margin + mean[:, 0].sum())
        # All trees' nodes in flat arrays (node g = tree × width + its id), so that one level of every tree
        # is a handful of 1-D numpy takes. A leaf (or padding) is its own child with feature 0: once a tree
        # reaches its leaf, later levels move it nowhere and credit nothing.
        ids = np.arange(self.n_trees * width).reshape(self.n_trees, width)
        offset = (np.arange(self.n_trees) * width)[:, None]
        leaf = left < 0
        go_left = np.where(leaf, ids, left + offset)
        go_right = np.where(leaf, ids, right + offset)
        self._children = np.stack([go_right.ravel(), go_left.ravel()], axis=1).ravel()  # [2g + went_left]
        self._feature = np.where(leaf, 0, feature).ravel()
        self._threshold = threshold.ravel()
        self._default_left = default_left.ravel()
        self._mean = mean.ravel()
        self._roots = ids[:, 0].copy()

    @classmethod
    def from_booster(cls, booster: Any, *, check_rows: np.ndarray | None = None) -> FastTrees:
        model = json.loads(bytes(booster.save_raw(raw_format="json")))
        learner = model["learner"]
        objective = learner["objective"]["name"]
        booster_kind = learner["gradient_booster"]["name"]
        params = learner["learner_model_param"]
        if objective not in _SUPPORTED_OBJECTIVES or booster_kind != "gbtree":
            raise ValueError(
                f"fast path supports gbtree {_SUPPORTED_OBJECTIVES}, got {booster_kind} {objective}"
            )
        if int(params.get("num_target", "1")) != 1 or int(params.get("num_class", "0")) > 1:
            raise ValueError("fast path supports single-target models only")
        base_score = float(str(params["base_score"]).strip("[]"))
        base_margin = (
            base_score if objective == "binary:logitraw" else math.log(base_score / (1.0 - base_score))
        )
        trees = learner["gradient_booster"]["model"]["trees"]
        n_features = int(params["num_feature"])
        width = max(len(t["left_children"]) for t in trees)
        shape = (len(trees), width)
        left = np.full(shape, -1, dtype=np.int64)
        right = np.full(shape, -1, dtype=np.int64)
        feature = np.zeros(shape, dtype=np.int64)
        threshold = np.zeros(shape, dtype=np.float32)
        default_left = np.zeros(shape, dtype=bool)
        mean = np.zeros(shape, dtype=np.float64)
        depth = 0
        for i, tree in enumerate(trees):
            if tree.get("categories_nodes"):
                raise ValueError("fast path does not support categorical splits")
            n = len(tree["left_children"])
            lc = np.asarray(tree["left_children"], dtype=np.int64)
            rc = np.asarray(tree["right_children"], dtype=np.int64)
            cond = np.asarray(tree["split_conditions"], dtype=np.float32)
            hess = np.asarray(tree["sum_hessian"], dtype=np.float64)
            left[i, :n], right[i, :n] = lc, rc
            feature[i, :n] = np.asarray(tree["split_indices"], dtype=np.int64)
            threshold[i, :n] = cond
            default_left[i, :n] = np.asarray(tree["default_left"], dtype=bool)
            means, tree_depth = _node_means(lc, rc, cond, hess)
            mean[i, :n] = means
            depth = max(depth, tree_depth)
        fast = cls(left, right, feature, threshold, default_left, mean, base_margin, n_features, depth)
        fast._check(booster, check_rows)
        return fast

    def explain(self, row: np.ndarray) -> tuple[float, np.ndarray]:
        """(margin, contributions per feature) of one float32 row; bias is `self.bias`."""
        x = np.asarray(row, dtype=np.float32).reshape(-1)
        missing = np.isnan(x)
        contributions = np.zeros(self.n_features, dtype=np.float64)
        node = self._roots
        children, feature, mean = self._children, self._feature, self._mean
        for _ in range(self.depth):
            f = feature[node]
            # XGBoost: value < split condition goes left; a missing value takes the default direction.
            went_left = (x[f] < self._threshold[node]) | (missing[f] & self._default_left[node])
            nxt = children[2 * node + went_left]
            contributions += np.bincount(f, weights=mean[nxt] - mean[node], minlength=self.n_features)
            node = nxt
        return self.bias + float(contributions.sum()), contributions

    def _check(self, booster: Any, rows: np.ndarray | None) -> None:
        import xgboost as xgb

        rng = np.random.default_rng(0)
        probe = rows if rows is not None else rng.normal(0, 50, size=(8, self.n_features)).astype(np.float32)
        probe = np.asarray(probe, dtype=np.float32)
        margins = booster.inplace_predict(probe, predict_type="margin", validate_features=False)
        matrix = xgb.DMatrix(probe, feature_names=booster.feature_names, nthread=1)
        contribs = booster.predict(matrix, pred_contribs=True, approx_contribs=True)
        for i, row in enumerate(probe):
            margin, ours = self.explain(row)
            if not math.isclose(margin, float(margins[i]), abs_tol=1e-4):
                raise ValueError(f"fast path margin {margin} != XGBoost {float(margins[i])}")
            if not np.allclose(ours, contribs[i, :-1], atol=1e-4) or not math.isclose(
                self.bias, float(contribs[i, -1]), abs_tol=1e-4
            ):
                raise ValueError("fast path contributions differ from XGBoost's approx_contribs")


def _node_means(lc: np.ndarray, rc: np.ndarray, cond: np.ndarray, hess: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean value of every node (hessian-weighted mean of its leaves; a leaf's is its value) and the depth."""
    n = len(lc)
    means = np.zeros(n, dtype=np.float64)
    order: list[tuple[int, int]] = []
    stack = [(0, 0)]
    while stack:  # pre-order; processed in reverse so children come before parents
        nid, d = stack.pop()
        order.append((nid, d))
        if lc[nid] >= 0:
            stack.append((int(lc[nid]), d + 1))
            stack.append((int(rc[nid]), d + 1))
    depth = 0
    for nid, d in reversed(order):
        depth = max(depth, d)
        if lc[nid] < 0:
            means[nid] = float(cond[nid])
        else:
            left, right = int(lc[nid]), int(rc[nid])
            means[nid] = (means[left] * hess[left] + means[right] * hess[right]) / hess[nid]
    return means, depth
