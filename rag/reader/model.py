"""The fitted reader model, loaded from plain JSON (no pickle): gradient-boosted trees that rank
the candidate answers of a question, and two small forests that read the best candidate (its
score, its lead over the others, its features): the probability that it is right, and the
probability that the documents hold no answer to the question at all.

    model = load_model()                             # rag/data/reader_model.json
    scores = model.scores(X)                         # one per row of features.FEATURES
    p = model.confidence(scores, X, best, rival)     # P(right)
    u = model.no_answer(scores, X, best, rival)      # P(no answer in the documents)
    answer = p - u >= model.threshold(doc_kind)      # the margin for the kind of document it comes from

The file names its feature list; a file made for other features is refused with a message
naming the command that rebuilds it (`python -m eval.train_reader`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..models import GovragError
from ..trees import Forest, read_model
from .features import FEATURES

MODEL_PATH = Path(__file__).resolve().parents[1] / "data" / "reader_model.json"
FORMAT = 2  # 2: abstention margins per kind of document (1: one margin)
REBUILD = "rebuild it with: python -m eval.train_reader"
ALL_KINDS = "*"  # the thresholds' key of the margin chosen over every kind of document


class ReaderModel:
    """Scores candidates and turns the best score into a calibrated probability."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.forest = Forest.from_json(data["trees"])
        self.baseline = float(data["baseline"])
        self.calibration = Forest.from_json(data["calibration"]["trees"])
        self.absent = Forest.from_json(data["no_answer"]["trees"]) if "no_answer" in data else None
        self.thresholds = data["thresholds"]

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The raw ranking score of each row of features."""
        return self.baseline + self.forest.scores(X)

    def confidence(self, scores: np.ndarray, X: np.ndarray, best: int, rival: float | None) -> float:
        """P(candidate `best` is a right answer), from its score, its lead over the best other
        answer (`rival`: that answer's score) and over the fifth-best, and its features."""
        return float(self.confidences(scores, X, [best], [rival])[0])

    def confidences(self, scores: np.ndarray, X: np.ndarray, rows: list[int], rivals: list[float | None]) -> np.ndarray:
        """`confidence` of several candidates at once (one pass over the forest)."""
        rows_in = np.stack([calibration_row(scores, X, i, r) for i, r in zip(rows, rivals)])
        return _probabilities(self.calibration, rows_in)

    def no_answer(self, scores: np.ndarray, X: np.ndarray, best: int, rival: float | None) -> float:
        """P(the documents do not answer the question), read from the same best candidate (0
        for a model file without that forest: then P(right) alone meets the threshold)."""
        if self.absent is None:
            return 0.0
        return float(_probabilities(self.absent, calibration_row(scores, X, best, rival)[None])[0])

    def threshold(self, doc_kind: str | None) -> float:
        """The margin P(right) - P(no answer) an answer from a passage of this kind of document must
        reach: the kind's own where the trainer had enough of its questions, else the pooled one."""
        return float(self.thresholds.get(doc_kind or "", self.thresholds[ALL_KINDS]))


def _probabilities(forest: Forest, rows: np.ndarray) -> np.ndarray:
    """The forest's raw scores of the rows through the logistic function."""
    return 1 / (1 + np.exp(-forest.scores(rows)))


def calibration_row(scores: np.ndarray, X: np.ndarray, best: int, rival: float | None) -> np.ndarray:
    """What the calibration reads: the best score, its margin over the best different answer and
    over the fifth-best candidate, then the best candidate's features."""
    top = float(scores[best])
    fifth = float(np.sort(scores)[::-1][min(4, len(scores) - 1)])
    margin = top - rival if rival is not None else 5.0
    return np.concatenate([[top, margin, top - fifth], X[best]]).astype(np.float64)


def check(data: Any, where: str) -> dict[str, Any]:
    """The model data, or GovragError when it is not a reader model for these features."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GovragError(f"{where} is not a reader model of format {FORMAT}; {REBUILD}")
    if data.get("features") != list(FEATURES):
        raise GovragError(f"{where} was fitted on other features than this govrag computes; {REBUILD}")
    return data


@lru_cache(maxsize=4)
def load_model(path: str | Path = MODEL_PATH) -> ReaderModel:
    """The reader model stored at `path` (checked against the feature list)."""
    path = Path(path)
    return ReaderModel(check(read_model(path, "reader model", REBUILD), str(path)))
