"""Gradient-boosted trees stored as plain JSON, and their evaluation with numpy.

A model file holds its trees as flat node lists (`feature`, `threshold`, `left`, `right`,
`leaf`, `value`, `missing_left`, `depth`), as written by eval/train_reader.py and
eval/train_ranker.py from LightGBM; scoring walks all trees at once, level by level, so a few
hundred rows cost about a millisecond. Nothing is pickled.
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
    """Flat arrays of all trees: node i splits on feature[i] at threshold[i]."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray  # a leaf's children are itself
    value: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    depth: int

    @classmethod
    def from_json(cls, trees: list[dict[str, Any]]) -> "Forest":
        """Concatenate the trees' node lists (child indices shifted to the forest's numbering)."""
        keys = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left")
        cols: dict[str, list] = {k: [] for k in keys}
        roots, depth = [], 0
        for t in trees:
            base = len(cols["feature"])
            roots.append(base)
            depth = max(depth, int(t["depth"]))
            for k in keys:
                cols[k] += [v + base for v in t[k]] if k in ("left", "right") else t[k]
        leaf = np.array(cols["leaf"], dtype=bool)
        index = np.arange(len(leaf), dtype=np.int32)
        # a leaf points at itself whatever it is asked, so every row walks `depth` levels alike
        left = np.where(leaf, index, np.array(cols["left"], dtype=np.int32))
        right = np.where(leaf, index, np.array(cols["right"], dtype=np.int32))
        threshold = np.where(leaf, np.inf, np.array(cols["threshold"], dtype=np.float64))
        missing_left = np.array(cols["missing_left"], dtype=bool) | leaf
        return cls(np.array(cols["feature"], dtype=np.int32), threshold, left, right,
                   np.array(cols["value"], dtype=np.float64), missing_left, np.array(roots, dtype=np.int32), depth)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The sum of the trees' leaf values for each row of X (NaN takes the missing branch)."""
        if len(X) == 0 or len(self.roots) == 0:
            return np.zeros(len(X))
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        X = X.astype(np.float64, copy=False)
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = (x <= self.threshold[node]) | (np.isnan(x) & self.missing_left[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node].sum(axis=1)


def lightgbm_trees(booster: Any) -> list[dict[str, Any]]:
    """A LightGBM booster's trees as flat node lists (for the model files)."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        cols: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right", "leaf", "value",
                                                  "missing_left")}

        def add(node: dict[str, Any], depth: int) -> tuple[int, int]:
            i = len(cols["feature"])
            for k, empty in (("feature", 0), ("threshold", 0.0), ("left", 0), ("right", 0), ("leaf", False),
                             ("value", 0.0), ("missing_left", False)):
                cols[k].append(empty)
            if "leaf_value" in node:
                cols["leaf"][i], cols["value"][i] = True, float(node["leaf_value"])
                return i, depth
            cols["feature"][i], cols["threshold"][i] = int(node["split_feature"]), float(node["threshold"])
            cols["missing_left"][i] = bool(node["default_left"])
            cols["left"][i], d1 = add(node["left_child"], depth + 1)
            cols["right"][i], d2 = add(node["right_child"], depth + 1)
            return i, max(d1, d2)

        _, depth = add(info["tree_structure"], 0)
        trees.append({"depth": depth, **cols})
    return trees
