"""Hybrid retrieval: dense (FAISS) + BM25 (jieba), reciprocal-rank fusion, metadata filters,
query understanding (language, year, district, task number), de-duplication of overlaps.

Public API for other apps:
    from rag.retriever import Retriever
    r = Retriever.load(".govrag/index")
    hits = r.search("即墨区2022年新增了多少个5G基站?", k=5, filters={"year": 2022})
    lc = r.as_langchain(k=5)          # a LangChain BaseRetriever
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import Settings, load_settings
from .documents import DISTRICTS, fold_width
from .english import PinyinIndex, Vocabulary, chinese_query, detect_language, expand_query, pinyin_index, pinyin_terms
from .index import Index, load_index, tokenize
from .models import Chunk, GovragError, Hit

FILTER_KEYS = ("doc", "district", "year", "kind", "doc_kind")
_ROW_RE = re.compile(r"第\s*(\d{1,3})\s*(?:项|条|行|号)|(?:row|task|item)\s*(?:no\.?|#)?\s*(\d{1,3})\b", re.I)
_YEAR_Q = re.compile(r"(?<!\d)(20\d{2})(?!\d)")
# A year that names a document ("2021年政府工作报告", "2021年报告", "its 2022 key task list"), not an event.
_DOC_YEAR = re.compile(r"(?<!\d)(20\d{2})(?!\d)(?=[^,,。;;??]{0,12}?(?:报告|任务清单|重点工作任务|进展情况表|进展表"
                       r"|work report|report\b|task list|progress table))", re.I)


def question_years(text: str) -> tuple[list[int], list[int]]:
    """(every year a question names, the ones that name a document rather than an event)."""
    return sorted({int(y) for y in _YEAR_Q.findall(text)}), sorted({int(y) for y in _DOC_YEAR.findall(text)})
META_BOOST = 0.5  # a year/district/row match adds this many "first-rank" RRF shares


@dataclass
class Query:
    """What the question asks about, as understood before search."""

    text: str
    lang: str
    zh_text: str  # the text searched in Chinese (the question, or its translation)
    bm25_tokens: list[tuple[str, float]]
    years: list[int] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    translation: str = "none"  # none | glossary | llm
    doc_years: list[int] = field(default_factory=list)  # the years among `years` naming a document


def understand(question: str, translated: str | None = None,
               pinyin: PinyinIndex | None = None, vocabulary: Vocabulary | None = None) -> Query:
    """Language, Chinese search text and weighted BM25 tokens, years, districts, task numbers.
    `pinyin` (toneless reading -> corpus words) lets romanised names in English match;
    `vocabulary` (the corpus's words) resolves dictionary translations to words it uses."""
    question = fold_width(question)
    lang = detect_language(question)
    if lang == "en":
        names = pinyin_terms(question, pinyin) if pinyin else []
        expansions = expand_query(question, vocabulary)
        zh_text = translated or " ".join([chinese_query(expansions)] + [t for t, _ in names])
        expansions += names
        weighted: dict[str, float] = {}
        for term, weight in expansions + ([(translated, 1.0)] if translated else []):
            toks = tokenize(term) or [term.lower()]
            for tok in toks:
                weighted[tok] = max(weighted.get(tok, 0.0), weight / max(1, len(toks)) ** 0.5)
        tokens = list(weighted.items())
        how = "llm" if translated else "glossary"
    else:
        zh_text, how = question, "none"
        tokens = [(t, 1.0) for t in dict.fromkeys(tokenize(question))]
    text_for_meta = question + " " + zh_text
    districts = [name for name, aliases in DISTRICTS.items() if any(a in text_for_meta for a in aliases)]
    rows = [int(a or b) for a, b in _ROW_RE.findall(question)]
    years, doc_years = question_years(question)
    return Query(question, lang, zh_text, tokens, years, districts, rows, how, doc_years)


def understand_part(part: str, whole: Query, understand: Callable[[str], Query] = understand) -> Query:
    """A query for one half of a two-fact question: its own words count fully, the rest of the
    question (the shared subject) at a lower weight; years and districts fall back to the whole."""
    own = understand(part)
    own_tokens = {t for t, _ in own.bm25_tokens}
    tokens = own.bm25_tokens + [(t, 0.4 * w) for t, w in whole.bm25_tokens if t not in own_tokens]
    return Query(part, whole.lang, own.zh_text, tokens, own.years or whole.years,
                 own.districts or whole.districts, own.rows or whole.rows, whole.translation,
                 own.doc_years if own.years else whole.doc_years)


def contradicts(chunk: Chunk, years: list[int], districts: list[str], doc_years: list[int] = ()) -> bool:
    """True when the chunk is about another year or district than the question names (and
    does not mention the named one). A section whose headings name years is about those
    years ("2020年工作回顾"); otherwise a work report of year Y is about Y and Y-1, and a news
    item about every year it names and its publication year. `doc_years` (among `years`) name
    the document itself ("the 2021 work report"): they are checked against the document's year
    only."""
    meta = chunk.meta
    year, district = meta.get("year"), meta.get("district")
    if doc_years and year is not None and year not in doc_years:
        return True
    years = [y for y in years if y not in doc_years]
    if years and not any(str(y) in chunk.text for y in years):
        named = {int(y) for h in chunk.heading_path[1:] for y in _YEAR_Q.findall(h)} if chunk.kind == "section" else set()
        if named:  # a section about named years ("2020年工作回顾", "2021年主要工作安排")
            ok = named
        elif year is None:
            ok = set(years)
        else:
            ok = {year}
            if meta.get("doc_kind") == "work_report":
                ok.add(year - 1)
            elif meta.get("doc_kind") == "news":
                ok.update(meta.get("years", ()))
                if meta.get("publish_date"):
                    ok.add(int(str(meta["publish_date"])[:4]))
        if not ok & set(years):
            return True
    return bool(districts and district and district not in districts
                and not any(a in chunk.text for d in districts for a in DISTRICTS[d]))


def _matches(chunk: Chunk, filters: dict[str, Any]) -> bool:
    for key, wanted in filters.items():
        value = chunk.doc if key == "doc" else chunk.kind if key == "kind" else chunk.meta.get(key)
        allowed = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
        if value not in allowed and str(value) not in {str(a) for a in allowed}:
            return False
    return True


def _overlaps(a: Chunk, b: Chunk) -> bool:
    """True when two chunks of one document share more than half of the smaller span."""
    if a.doc != b.doc:
        return False
    shared = min(a.end, b.end) - max(a.start, b.start)
    return shared > 0.5 * min(a.end - a.start, b.end - b.start)


class Retriever:
    """Hybrid search over a loaded index. Load once per process; searches reload nothing."""

    def __init__(self, index: Index, settings: Settings, embedder) -> None:
        self.index = index
        self.settings = settings
        self.embedder = embedder
        self._pinyin: PinyinIndex | None = None
        self._vocabulary: Vocabulary | None = None
        self._ranker: Any = False  # not loaded yet
        self.dense_langs = {"zh", "en"}  # the languages whose questions are encoded (the ranker may say fewer)

    def understand(self, question: str, translated: str | None = None) -> Query:
        """`understand` with this corpus's words for romanised names and dictionary
        translations (built on first use)."""
        if self._pinyin is None and detect_language(question) == "en":
            self._pinyin = pinyin_index(self.index.vocabulary)
        return understand(question, translated, self._pinyin, self.vocabulary if self._pinyin is not None else None)

    @property
    def vocabulary(self) -> Vocabulary:
        """This corpus's words, for translating English words (built on first use)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self.index.vocabulary)
        return self._vocabulary

    def terms(self, english: str) -> list[tuple[str, float]]:
        """Weighted Chinese terms of English words, resolved against this corpus's words."""
        return expand_query(english, self.vocabulary)

    @classmethod
    def load(cls, index_dir: str | Path | None = None, settings: Settings | None = None) -> "Retriever":
        """Load the index (checked against the configured embedder) and the embedder."""
        from embeddings import get_embedder

        settings = settings or load_settings()
        embedder = get_embedder(settings.embedder)
        index = load_index(index_dir or settings.index_dir, embedder.id, embedder.dim, settings)
        return cls(index, settings, embedder)

    @property
    def ranker(self):
        """The learned passage ranker (rag/ranker.py) when the settings ask for it, its model file
        exists and the index holds the kinds of documents it was fitted on; else None (RRF)."""
        if self._ranker is False:
            from .ranker import load_ranker

            model = load_ranker() if self.settings.fusion == "learned" else None
            self._ranker = model if model is not None and model.fits(self.index.chunks) else None
            if self._ranker is not None:
                self.dense_langs = self._ranker.dense_langs(self.index.chunks)
        return self._ranker

    def _channels(self, q: Query, n: int, channels: tuple[str, ...],
                  filters: dict[str, Any] | None = None) -> dict[str, list[tuple[int, float]]]:
        ranked: dict[str, list[tuple[int, float]]] = {}
        if "dense" in channels and self.index.retrieval == "hybrid":
            # the multilingual encoder takes an English question as it is; its Chinese
            # rendering serves BM25 (encoding it too cost time and gained nothing on the dev set)
            ranked["dense"] = self.index.dense_search(self.embedder.encode([q.text], is_query=True)[0], n, filters)
        if "bm25" in channels and q.bm25_tokens:
            ranked["bm25"] = self.index.bm25_search(q.bm25_tokens, n, filters)
        return ranked

    def retrieval(self, channels: tuple[str, ...] = ("dense", "bm25")) -> str:
        """Which retrieval a search with these channels does: "hybrid", or "lexical" (BM25 only,
        also while the index's vectors are still being computed)."""
        return self.index.retrieval if "dense" in channels else "lexical"

    def _weights(self, lang: str) -> dict[str, float]:
        s = self.settings
        if lang == "en":
            return {"dense": s.dense_weight_en, "bm25": s.bm25_weight_en}
        return {"dense": s.dense_weight, "bm25": s.bm25_weight}

    def _boost(self, chunk: Chunk, q: Query) -> float:
        """Shares of a first rank added for a matching year, district and task number; a
        chunk about another year or district (see `contradicts`) costs more."""
        bonus = 0.0
        if chunk.about_year(q.years):
            bonus += META_BOOST
        if q.districts and chunk.meta.get("district") in q.districts:
            bonus += META_BOOST
        if contradicts(chunk, q.years, q.districts, q.doc_years):
            bonus -= 2 * META_BOOST
        if q.rows and chunk.meta.get("row", chunk.meta.get("item")) in q.rows:
            bonus += META_BOOST
        return bonus

    def search(self, query: str | Query, k: int = 5, filters: dict[str, Any] | None = None,
               channels: tuple[str, ...] = ("dense", "bm25"), timings: dict[str, float] | None = None,
               fusion: str | None = None) -> list[Hit]:
        """The k best chunks for a question: the union of the requested channels' candidates
        ordered by the learned ranker (`fusion` "learned", the default when it is available and
        both channels are asked for) or by reciprocal-rank fusion with metadata boosts ("rrf")."""
        started = time.perf_counter()
        q = query if isinstance(query, Query) else self.understand(query)
        ranker = self.ranker if (fusion or self.settings.fusion) == "learned" and len(channels) > 1 else None
        asked = channels
        if ranker is not None and q.lang not in self.dense_langs:
            channels = tuple(c for c in channels if c != "dense")  # the ranker learned dense adds nothing here
        filters = {key: v for key, v in (filters or {}).items() if v not in (None, "", [])}
        unknown = set(filters) - set(FILTER_KEYS)
        if unknown:
            raise GovragError(f"unknown filter(s) {sorted(unknown)}; use {', '.join(FILTER_KEYS)}")
        chunks = self.index.chunks
        n = max(self.settings.candidates if not filters else len(chunks), k)
        ranks, raw, rrf = self.gather(q, n, channels, filters)
        if len(rrf) < k and channels != asked:  # too few words in common: the dense channel finds the rest
            ranks, raw, rrf = self.gather(q, n, asked, filters)
        scored = sorted(((s, p) for p, s in rrf.items()), reverse=True)
        if ranker is not None and scored:
            scored = self._learned(ranker, q, [p for _, p in scored], ranks, raw, rrf)
        hits: list[Hit] = []
        for score, pos in scored:
            if any(_overlaps(chunks[pos], h.chunk) for h in hits):
                continue
            hits.append(Hit(chunks[pos], score, ranks[pos], raw[pos]))
            if len(hits) == k:
                break
        if timings is not None:
            timings["retrieve_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return hits

    def gather(self, q: Query, n: int, channels: tuple[str, ...], filters: dict[str, Any] | None = None
               ) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, float]], dict[int, float]]:
        """The candidates of the channels: each one's rank and score per channel, and its
        reciprocal-rank fusion score with the metadata boosts."""
        ranked = self._channels(q, n, channels, filters)
        weights = self._weights(q.lang)
        rrf_k = self.settings.rrf_k
        chunks = self.index.chunks
        fused: dict[int, float] = {}
        ranks: dict[int, dict[str, int]] = {}
        raw: dict[int, dict[str, float]] = {}
        for name, results in ranked.items():
            results = [(p, s) for p, s in results if not filters or _matches(chunks[p], filters)]
            for rank, (pos, score) in enumerate(results, start=1):
                fused[pos] = fused.get(pos, 0.0) + weights.get(name, 1.0) / (rrf_k + rank)
                ranks.setdefault(pos, {})[name] = rank
                raw.setdefault(pos, {})[name] = round(score, 4)
        unit = 1.0 / (rrf_k + 1)
        return ranks, raw, {p: s + self._boost(chunks[p], q) * unit for p, s in fused.items()}

    def ranking_features(self, q: Query, positions: list[int], ranks: dict[int, dict[str, int]],
                         raw: dict[int, dict[str, float]], rrf: dict[int, float]) -> tuple[np.ndarray, bool]:
        """The learned ranker's features of the candidates `gather` returned, and whether the
        dense channel ran (it picks the forest)."""
        from .ranker import Channels, features
        from .reader.question import asked_type, asked_unit

        def channel(name: str) -> dict[int, tuple[int, float]]:
            return {p: (ranks[p][name], raw[p][name]) for p in positions if name in ranks[p]}

        ch = Channels(channel("bm25"), channel("dense") if any("dense" in ranks[p] for p in positions) else None)
        X = features(q, positions, ch, self.index, asked_type(q.text, q.lang), asked_unit(q.text, q.lang),
                     lambda c: contradicts(c, q.years, q.districts, q.doc_years), rrf)
        return X, ch.dense is not None

    def _learned(self, ranker, q: Query, positions: list[int], ranks: dict[int, dict[str, int]],
                 raw: dict[int, dict[str, float]], rrf: dict[int, float]) -> list[tuple[float, int]]:
        """(score, position) of the candidates ordered by the learned ranker."""
        X, dense = self.ranking_features(q, positions, ranks, raw, rrf)
        scores = ranker.scores(X, dense)
        return sorted(zip(scores.tolist(), positions), key=lambda sp: -sp[0])

    def as_langchain(self, k: int = 5, filters: dict[str, Any] | None = None):
        """This retriever behind LangChain's BaseRetriever interface (rag.lc_retriever; imported
        here, not at start-up: LangChain's retriever module takes longer to import than a question)."""
        from .lc_retriever import GovragRetriever

        return GovragRetriever(retriever=self, k=k, filters=filters or {})
