"""The reader: answers a question from the retrieved passages alone, no LLM.

    from rag.reader import Reader
    reader = Reader(index.idf, corpus_text, retriever.understand)
    answer = reader.answer(query, hits)

Layout (each part imports only the parts below it): `cues` (the knowledge of question and
report language, read from rag/data/reader_cues.toml), `question` (what is asked), `candidates`
(every span that could answer), `features` (what is known about each), `model` (the fitted
trees and the calibrated probability, from rag/data/reader_model.json), `render` (the fact first,
the cited sentence). The model is fitted by `python -m eval.train_reader` on the question
bank's train split; the margin by which P(right) must exceed P(no answer) is chosen on the
validation split and the training questions out of fold.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..index import tokenize
from ..models import Answer, Hit
from ..retriever import Query, contradicts, understand
from . import cues, render
from .candidates import Candidate, candidates
from .features import QuestionContext, feature_matrix, specific_weights
from .model import ReaderModel, load_model
from .question import (Ask, anchors_zh, asked_type, build_ask, evidence_weights, is_multi, part_weights,
                       split_parts)

__all__ = ["Reader", "Half", "asked_type", "is_multi", "split_parts"]


@dataclass
class Half:
    """One half of a question (the whole of a one-fact question): its Ask, candidates, features."""

    ask: Ask
    cands: list[Candidate]
    X: np.ndarray


class Reader:
    """Picks the answer among the candidates with the fitted model; abstains when P(right)
    does not exceed P(no answer in the documents) by the margin chosen on held-out questions
    for the kind of document the answer comes from."""

    def __init__(self, idf: Callable[[str], float], corpus_text: str = "",
                 understand: Callable[[str], Query] = understand, model: ReaderModel | None = None,
                 threshold: float = 0.0) -> None:
        self.idf = idf
        self.threshold = threshold  # the margin P(right) - P(no answer) must reach; 0: the model's own
        self.corpus_text = corpus_text  # to tell a paraphrase from a thing the documents never name
        self.understand = understand
        self._model = model

    @property
    def model(self) -> ReaderModel:
        """The fitted model (rag/data/reader_model.json unless one was given), loaded on first use."""
        if self._model is None:
            self._model = load_model()
        return self._model

    def _unknown_nouns(self, q: Query) -> int:
        """Nouns of a Chinese question that occur nowhere in the corpus (火星基地)."""
        if q.lang != "zh" or not self.corpus_text:
            return 0
        import jieba
        import jieba.posseg

        return sum(1 for w, flag in jieba.posseg.cut(q.text) if flag.startswith("n") and len(w) >= 2
                   and jieba.dt.FREQ.get(w, 0) >= 20 and w not in cues.QUESTION_WORDS and w not in self.corpus_text)

    def _anchors(self, question: str, lang: str) -> list[str]:
        """Words the answer to a which-question sits next to: around 哪/什么, or the Chinese for
        the noun after "which (two)"."""
        if lang == "zh":
            return anchors_zh(question)
        m = re.search(r"\bwhich\s+(?:(?:two|three|four|five|six|\d+)\s+)?([a-z][\w-]+)", question, re.I)
        if not m or m.group(1).lower() in cues.PHRASE_END:
            return []
        return [t for t, _ in self.understand(m.group(1)).bm25_tokens[:2]]

    def halves(self, q: Query, hits: list[Hit]) -> list[Half]:
        """The candidates and their features for each half of the question."""
        asked = asked_type(q.text, q.lang)
        weights = evidence_weights(q, self.idf)
        parts = split_parts(q.text, q.lang) if is_multi(q.text, q.lang) else [q.text]
        known = {t.lower() for t in {t for t, _ in q.bm25_tokens} | set(tokenize(q.text)) | set(tokenize(q.zh_text))}
        # a passage about another district or year than the question names is no source for it
        usable = [i for i, h in enumerate(hits) if not contradicts(h.chunk, q.years, q.districts, q.doc_years)]
        cands = [c for c in candidates(hits, known, who=bool(cues.PERSON_Q.search(q.text))) if c.hit in usable]
        unknown = self._unknown_nouns(q)
        out = []
        for part in parts:
            own, others = part_weights(parts, part, weights, self.understand)
            part_asked = asked_type(part, q.lang) if len(parts) > 1 else asked
            ask = build_ask(q, part, own, asked if part_asked in ("fact", "entity") else part_asked,
                            self._anchors(part, q.lang), others)
            ctx = QuestionContext(q, ask, len(parts) > 1, unknown, specific_weights(own, hits))
            out.append(Half(ask, cands, feature_matrix(cands, hits, ctx)))
        return out

    def answer(self, q: Query, hits: list[Hit]) -> Answer:
        """An Answer with the fact first and citations; abstains when the evidence is weak."""
        if not hits:
            return render.abstain(q, hits, "no passages retrieved")
        if meta := self._publication(q, hits):
            return meta
        halves = [h for h in self.halves(q, hits) if h.cands]
        scores = [self.model.scores(h.X) for h in halves]
        named = [self._named_cell(h) for h in halves]
        ranked = [self._ranked(h, s) if n is None else [(n, self.model.confidence(s, h.X, n, rival(h.cands, s, n)))]
                  for h, s, n in zip(halves, scores, named)]
        # (candidate, asked kind, P(right), P(right) - P(no answer), the margin it must reach, from a named cell)
        chosen = []
        for h, s, (i, p), n in zip(halves, scores, _assign(halves, ranked), named):
            absent = self.model.no_answer(s, h.X, i, rival(h.cands, s, i))
            need = self.threshold or self.model.threshold(doc_kind(h.cands[i], hits))
            chosen.append((h.cands[i], h.ask.asked, p, p - absent, need, n is not None))
        kept = [(c, a, p) for c, a, p, lead, need, cell in chosen if cell or lead >= need]
        if not kept:
            if not chosen:
                return render.abstain(q, hits, "no candidate")
            c, _, p, lead, need, _ = max(chosen, key=lambda x: x[3] - x[4])
            return render.abstain(q, hits, f"P(right) {p:.2f} - P(no answer) {p - lead:.2f} below {need:.2f}",
                                  (render.lead_text(c, q.lang), p))
        answer = render.compose(q, hits, [(c, a) for c, a, _ in kept], min(p for _, _, p in kept))
        answer.notes.insert(0, f"asked: {'+'.join(a for _, a, _ in kept)}")
        return answer

    def _ranked(self, half: Half, scores: np.ndarray, top: int = 8) -> list[tuple[int, float]]:
        """The half's best candidates by score, each with its probability of being right."""
        best = [int(i) for i in np.argsort(-scores, kind="stable")[:top]]
        p = self.model.confidences(scores, half.X, best, [rival(half.cands, scores, i) for i in best])
        return [(i, float(v)) for i, v in zip(best, p)]

    @staticmethod
    def _named_cell(half: Half) -> int | None:
        """A half that names a task-row column (完成时限 / time limit, 主办单位 / lead unit) is
        answered by that cell of the best-ranked row that has it: the table states it. Few bank
        questions name a column, too few for the trees to learn it."""
        ask = half.ask
        kind = ("cell_deadline" if ask.asked == "deadline" and cues.TIME_LIMIT_CELL.search(ask.text) else
                "cell_unit" if ask.asked == "unit" and cues.LEAD_CELL.search(ask.text) else None)
        cells = [i for i, c in enumerate(half.cands) if c.kind == kind]
        return min(cells, key=lambda i: half.cands[i].hit) if cells else None

    @staticmethod
    def _publication(q: Query, hits: list[Hit]) -> Answer | None:
        """When was this document published: from its metadata."""
        named = re.findall(r"《([^》]+)》", q.text)
        if asked_type(q.text, q.lang) != "deadline" or not cues.PUBLISH.search(q.text) \
                or not (named or cues.DOC_SELF.search(q.text)):
            return None
        i = next((i for i, h in enumerate(hits) if h.chunk.meta.get("publish_date") and (
            not named or any(n in h.chunk.meta.get("title", "") or h.chunk.meta.get("title", "") in n for n in named))), None)
        return None if i is None else render.metadata_answer(q, hits, i, hits[i].chunk.meta["publish_date"])


def same_answer(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates put the same fact first (one lead inside the other, or one figure)."""
    return a.lead in b.lead or b.lead in a.lead or bool(a.figure and b.figure and a.figure.value == b.figure.value)


def doc_kind(cand: Candidate, hits: list[Hit]) -> str:
    """The kind of document the candidate's passage comes from ("" when it names none)."""
    return str(hits[cand.hit].chunk.meta.get("doc_kind") or "")


def rival(cands: list[Candidate], scores: np.ndarray, i: int) -> float | None:
    """The score of the best candidate that is a different answer than candidate i."""
    rivals = [v for j, v in enumerate(scores) if not same_answer(cands[j], cands[i])]
    return max(rivals) if rivals else None


def _assign(halves: list[Half], ranked: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """(candidate, probability) for each half: the best of a one-fact question; for two halves
    the pair of different answers most likely right together (the sum of their probabilities),
    as each half's best alone may be the same fact."""
    if len(halves) != 2:
        return [r[0] for r in ranked]
    (a, b), (ra, rb) = halves, ranked
    pairs = [(x, y) for x in ra for y in rb if not same_answer(a.cands[x[0]], b.cands[y[0]])]
    return list(max(pairs, key=lambda xy: xy[0][1] + xy[1][1])) if pairs else [ra[0]]
