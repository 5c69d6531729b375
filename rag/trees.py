"""Gradient-boosted trees stored as plain JSON, and their evaluation with numpy.

A model file holds its trees as flat node lists (`feature`, `threshold`, `left`, `right`,
`leaf`, `value`, `missing_left`), as written by eval/train_reader.py and
eval/train_ranker.py from LightGBM; scoring walks every (row, tree) pair at once, level by
level, dropping the pairs that reached a leaf. Nothing is pickled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .models import GovragError


def read_model(path: Path, what: str, rebuild: str) -> Any:
    """The JSON of a model file; GovragError naming the file and the command that rebuilds it
    when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GovragError(f"{what} {path} cannot be read ({exc}); {rebuild}") from exc


@dataclass
class Forest:
    """Flat arrays of all trees: node i splits on feature[i] at threshold[i]; its children are
    children[2i] (left) and children[2i + 1] (right)."""

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray

    @classmethod
    def from_json(cls, trees: list[dict[str, Any]]) -> "Forest":
        """Concatenate the trees' node lists (child indices shifted to the forest's numbering)."""
        keys = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left")
        cols: dict[str, list] = {k: [] for k in keys}
        roots = []
        for t in trees:
            base = len(cols["feature"])
            roots.append(base)
            for k in keys:
                cols[k] += [v + base for v in t[k]] if k in ("left", "right") else t[k]
        children = np.array([cols["left"], cols["right"]], dtype=np.int32).T.ravel()
        return cls(np.array(cols["feature"], dtype=np.int32), np.array(cols["threshold"], dtype=np.float64), children,
                   np.array(cols["leaf"], dtype=bool), np.array(cols["value"], dtype=np.float64),
                   np.array(cols["missing_left"], dtype=bool), np.array(roots, dtype=np.int32))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The sum of the trees' leaf values for each row of X (NaN takes the missing branch).
        Every (row, tree) pair walks down one level per step; pairs that reach a leaf drop out."""
        if len(X) == 0 or len(self.roots) == 0:
            return np.zeros(len(X))
        X = np.ascontiguousarray(X, dtype=np.float64)
        rows, trees = X.shape[0], len(self.roots)
        flat, nan = X.ravel(), bool(np.isnan(X).any())
        node = np.tile(self.roots, rows)  # pair p = (row p // trees, tree p % trees)
        start = np.repeat(np.arange(rows, dtype=np.int64) * X.shape[1], trees)
        walking = np.flatnonzero(~self.leaf[node])
        while len(walking):
            at = node[walking]
            x = flat[start[walking] + self.feature[at]]
            right = ~(x <= self.threshold[at])
            if nan:
                right &= ~(np.isnan(x) & self.missing_left[at])
            at = self.children[2 * at + right]
            node[walking] = at
            walking = walking[~self.leaf[at]]
        return self.value[node.reshape(rows, trees)].sum(axis=1)


def lightgbm_trees(booster: Any) -> list[dict[str, Any]]:
    """A LightGBM booster's trees as flat node lists (for the model files)."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        cols: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right", "leaf", "value",
                                                  "missing_left")}

        def add(node: dict[str, Any]) -> int:
            i = len(cols["feature"])
            for k, empty in (("feature", 0), ("threshold", 0.0), ("left", 0), ("right", 0), ("leaf", False),
                             ("value", 0.0), ("missing_left", False)):
                cols[k].append(empty)
            if "leaf_value" in node:
                cols["leaf"][i], cols["value"][i] = True, float(node["leaf_value"])
                return i
            cols["feature"][i], cols["threshold"][i] = int(node["split_feature"]), float(node["threshold"])
            cols["missing_left"][i] = bool(node["default_left"])
            cols["left"][i] = add(node["left_child"])
            cols["right"][i] = add(node["right_child"])
            return i

        add(info["tree_structure"])
        trees.append(cols)
    return trees
