"""The learned passage ranker: orders the union of both channels' candidates (BM25 top 30 and
dense top 30) with gradient-boosted trees fitted on the question bank (eval/train_ranker.py).

Features per candidate passage: its BM25 score and rank, its dense cosine and rank (NaN where
the channel did not run or did not return it), the reciprocal-rank fusion of both, the
question's language, year / district / task-number agreement, the kind of chunk and document,
IDF-weighted overlap of the question's words with the passage, its headings and title, shared
character pairs, and whether the passage holds what the question asks for (a figure in the
asked unit, a date, a lead-unit or deadline cell). The model file (rag/data/ranker_model.json)
also says, for each kind of document, in which languages the dense channel pays (for the
seeds' reports and tables only in English; for news articles in Chinese too); a question is
encoded when its language pays for the kinds of document of at least half of the index.
Without a model file, or on an index of other kinds of documents than the ones it was fitted
on, the retriever falls back to reciprocal-rank fusion.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .grounding import find_figures
from .models import Chunk, GovragError
from .trees import Forest, read_model

MODEL_PATH = Path(__file__).with_name("data") / "ranker_model.json"
FORMAT = 2  # 2: the dense channel's languages per kind of document (1: one list)
REBUILD = "rebuild it with: python -m eval.train_ranker"
DOC_KINDS = ("progress_table", "task_list", "work_report", "news")
ASKED = ("count", "amount", "share", "deadline", "unit", "status", "entity", "meaning", "fact")
ABSENT_RANK = 40.0

FEATURES: tuple[str, ...] = (
    "bm25", "bm25_norm", "bm25_rank", "dense", "dense_gap", "dense_rank", "rrf", "both", "en",
    "year", "district", "contradicts", "row", "task_row", "task_item", "section", *(f"doc_{k}" for k in DOC_KINDS),
    "cov", "cov_text", "cov_heading", "cov_title", "cov_doc", "cov_doc_gap", "bigrams", "length",
    *(f"asked_{t}" for t in ASKED), "unit_figure", "has_date", "has_lead", "has_deadline", "figures",
)
_INDEX = {n: i for i, n in enumerate(FEATURES)}
_CJK_PAIR = re.compile(r"[\u4e00-\u9fff]{2}")


@dataclass
class Channels:
    """What each channel returned for one question: chunk position -> (rank 1.., score)."""

    bm25: dict[int, tuple[int, float]]
    dense: dict[int, tuple[int, float]] | None  # None: the dense channel did not run


def _coverage(text: str, weights: dict[str, float]) -> float:
    low = text.lower()
    return sum(w for t, w in weights.items() if t in low)


@lru_cache(maxsize=16384)
def _figure_units(text: str) -> tuple[str | None, ...]:
    """The unit of each figure in a passage (a passage is a candidate for many questions)."""
    return tuple(g.unit for g in find_figures(text))


def features(q: Any, positions: list[int], ch: Channels, index: Any,
             asked: str, unit: str | None, contradicts: Callable[[Chunk], bool], rrf: dict[int, float]) -> np.ndarray:
    """One row of FEATURES per candidate position (`index`: the loaded index, for its chunks,
    IDF and whole documents' text)."""
    chunks = index.chunks
    X = np.zeros((len(positions), len(FEATURES)), dtype=np.float32)
    weights = {t: w * index.idf(t) for t, w in q.bm25_tokens if not re.fullmatch(r"20\d\d", t)}
    total = sum(weights.values()) or 1.0
    # how much of the question the candidate's whole document holds, against the best document
    cov_doc = {doc: _coverage(index.doc_texts[doc], weights) / total for doc in {chunks[p].doc for p in positions}}
    best_doc = max(cov_doc.values(), default=0.0)
    pairs = set(_CJK_PAIR.findall(q.zh_text)) | {q.zh_text[i:i + 2] for i in range(len(q.zh_text) - 1)
                                                 if _CJK_PAIR.fullmatch(q.zh_text[i:i + 2])}
    top_bm25 = max((s for _, s in ch.bm25.values()), default=0.0) or 1.0
    top_dense = max((s for _, s in ch.dense.values()), default=0.0) if ch.dense else 0.0
    top_rrf = max(rrf.values(), default=0.0) or 1.0
    for row, pos in enumerate(positions):
        c = chunks[pos]
        meta = c.meta
        b_rank, b = ch.bm25.get(pos, (ABSENT_RANK, 0.0))
        d_rank, d = ch.dense.get(pos, (ABSENT_RANK, math.nan)) if ch.dense is not None else (math.nan, math.nan)
        units = _figure_units(c.text)
        heading = " ".join(c.heading_path[1:])
        f = {"bm25": b, "bm25_norm": b / top_bm25, "bm25_rank": math.log(b_rank), "dense": d,
             "dense_gap": d - top_dense if ch.dense is not None and pos in ch.dense else math.nan,
             "dense_rank": math.log(d_rank) if not math.isnan(d_rank) else math.nan,
             "rrf": rrf.get(pos, 0.0) / top_rrf, "both": float(pos in ch.bm25 and bool(ch.dense) and pos in ch.dense),
             "en": float(q.lang == "en"), "year": float(c.about_year(q.years)),
             "district": float(bool(q.districts) and meta.get("district") in q.districts),
             "contradicts": float(contradicts(c)), "row": float(bool(q.rows) and meta.get("row", meta.get("item")) in q.rows),
             "task_row": float(c.kind == "task_row"), "task_item": float(c.kind == "task_item"),
             "section": float(c.kind == "section"), f"doc_{meta.get('doc_kind')}": 1.0,
             "cov": _coverage(c.embed_text, weights) / total, "cov_text": _coverage(c.text, weights) / total,
             "cov_heading": _coverage(heading, weights) / total,
             "cov_title": _coverage(meta.get("title", ""), weights) / total,
             "cov_doc": cov_doc[c.doc], "cov_doc_gap": cov_doc[c.doc] - best_doc,
             "bigrams": sum(p in c.text for p in pairs) / len(pairs) if pairs else 0.0,
             "length": math.log1p(len(c.text)), f"asked_{asked}": 1.0,
             "unit_figure": float(bool(unit) and unit in units), "has_date": float("date" in units),
             "has_lead": float(bool(meta.get("lead_unit"))),
             "has_deadline": float(bool(meta.get("deadline"))), "figures": math.log1p(len(units))}
        for name, v in f.items():
            if name in _INDEX:
                X[row, _INDEX[name]] = v
    return X


class RankerModel:
    """The fitted trees over FEATURES (one forest for both channels, one for BM25 alone: a
    lexical-only index, or a language the dense channel does not pay for) and, per kind of
    document, the languages the dense channel is used for."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.forest = Forest.from_json(data["trees"])
        self.lexical = Forest.from_json(data["lexical_trees"])
        self.dense_by_kind = {kind: set(langs) for kind, langs in data["dense_langs"].items()}
        self.doc_kinds = set(data.get("doc_kinds", DOC_KINDS))

    def scores(self, X: np.ndarray, dense: bool) -> np.ndarray:
        """Ranking scores of the candidates' features (`dense`: the dense channel ran)."""
        return (self.forest if dense else self.lexical).scores(X)

    def dense_langs(self, chunks: list[Chunk]) -> set[str]:
        """The languages the dense channel pays for on the kinds of document of at least half of
        `chunks`: a few article-like pages inside a report do not make its questions pay ~20 ms."""
        return {lang for lang in ("zh", "en")
                if _half_of(chunks, {kind for kind, langs in self.dense_by_kind.items() if lang in langs})}

    def fits(self, chunks: list[Chunk]) -> bool:
        """True when at least half of the index is of the kinds of documents the ranker was fitted on."""
        return _half_of(chunks, self.doc_kinds)


def _half_of(chunks: list[Chunk], kinds: set[str]) -> bool:
    """True when at least half of `chunks` (and one) come from documents of these kinds."""
    return bool(chunks) and sum(c.meta.get("doc_kind") in kinds for c in chunks) >= 0.5 * len(chunks)


@lru_cache(maxsize=4)
def load_ranker(path: str | Path = MODEL_PATH) -> RankerModel | None:
    """The ranker model stored at `path`; None when there is none (reciprocal-rank fusion)."""
    path = Path(path)
    if not path.is_file():
        return None
    data = read_model(path, "ranker model", REBUILD)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("features") != list(FEATURES):
        raise GovragError(f"ranker model {path} does not match this govrag's features; {REBUILD}")
    return RankerModel(data)
