"""The JSON forests score rows as LightGBM itself does (missing values included)."""
from __future__ import annotations

import lightgbm
import numpy as np

from rag.trees import Forest, lightgbm_trees


def _depth(tree: dict, node: int) -> int:
    if tree["leaf"][node]:
        return 0
    return 1 + max(_depth(tree, tree["left"][node]), _depth(tree, tree["right"][node]))


def test_forest_scores_equal_lightgbms_predictions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take each split's default branch
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 > 0.5).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 0,
              "deterministic": True, "num_threads": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=40)
    trees = lightgbm_trees(booster)
    forest = Forest.from_json(trees)
    rows = rng.normal(size=(200, 6))
    complete = rows.copy()  # no missing value: the walk skips the missing-branch test
    rows[rng.random(rows.shape) < 0.2] = np.nan
    depths = {_depth(t, 0) for t in trees}
    assert max(depths) > 2 and len(depths) > 1  # pairs leave the walk at different levels
    for X in (rows, complete):
        np.testing.assert_allclose(forest.scores(X), booster.predict(X, raw_score=True), rtol=0, atol=1e-9)
    assert forest.scores(rows[:0]).shape == (0,)
    stump = {"feature": [0], "threshold": [0.0], "left": [0], "right": [0], "leaf": [True],
             "value": [0.5], "missing_left": [False]}  # a tree that is a single leaf adds its value to every row
    with_stump = Forest.from_json([*trees, stump])
    np.testing.assert_allclose(with_stump.scores(rows), forest.scores(rows) + 0.5, rtol=0, atol=1e-9)
