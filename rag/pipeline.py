"""Pipeline: question -> understand -> retrieve -> answer (extractive or LLM) -> verify figures.

    from rag.pipeline import Pipeline
    p = Pipeline.load()                     # index and model loaded once
    answer = p.ask("即墨区2022年新建了多少个5G基站?")
"""
from __future__ import annotations

import re
import threading
import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .config import Settings, load_settings
from .documents import fold_width
from .english import detect_language
from .grounding import find_figures, same_figure
from .index import current_version, tokenize
from .library import AddReport, DenseWorker, DocumentInfo, Uploads, list_documents
from .models import Answer, Citation, Figure, GovragError, Hit
from .reader import Reader, is_multi, split_parts
from .reader.cues import QUESTION_WORDS
from .reader.render import citation
from .retriever import Query, Retriever, understand_part
from .tables import TableAnswerer, parse, task_filter

_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
_SENT = re.compile(r"[^。!?;!?;\n]+[。!?;!?;]*")


def clean_question(question: Any, max_chars: int) -> str:
    """The question with control characters removed; GovragError when it is not a question."""
    if not isinstance(question, str):
        raise GovragError("the question must be text")
    text = "".join(ch for ch in question if unicodedata.category(ch)[0] != "C" or ch in "\n\t")
    text = " ".join(fold_width(text).split())
    if not text:
        raise GovragError("the question is empty")
    if len(text) > max_chars:
        raise GovragError(f"the question is too long ({len(text)} characters; the limit is {max_chars})")
    if not _WORDLIKE.search(text):
        raise GovragError("the question has no words, only punctuation or symbols")
    return text


def _matches_doc(tasks, doc: str, filters: dict[str, Any]) -> bool:
    """True when a document's task records pass the ask() filters (doc, district, year)."""
    rec = next(r for r in tasks.records if r["doc"] == doc)
    return all(str(v) == str({"doc": rec["doc"], "district": rec["district"], "year": rec["year"]}.get(k, v))
               for k, v in filters.items())


def verify_figures(answer: Answer, hits: list[Hit], topic: set[str] | None = None) -> None:
    """Fill answer.figures: each figure of the answer text, checked against its cited chunks
    (the figures inside quoted spans are the sources' own and are not listed again). With
    `topic` (the question's content tokens), a figure counts only when the cited sentence that
    holds it shares one of them, so a figure lifted from an unrelated (or injected) sentence
    is not verified."""
    lead = re.sub(r"“[^”]*”", "", answer.answer)
    cited = {c.n: next((h.chunk.text for h in hits if h.chunk.id == c.chunk_id), c.quote)
             for c in answer.citations}
    figures = []
    for f in find_figures(lead):
        where = next((n for n, text in cited.items() for m in _SENT.finditer(text)
                      if any(same_figure(f, g) for g in find_figures(m.group(0)))
                      and (topic is None or topic & set(tokenize(m.group(0))))), None)
        figures.append(Figure(f.text, f.value, f.unit, where is not None, where))
    answer.figures = figures


def finish(answer: Answer, hits: list[Hit], timings: dict[str, float], started: float) -> Answer:
    """Check the answer's figures and stamp the timings (verify_ms, total_ms) on it."""
    t0 = time.perf_counter()
    verify_figures(answer, hits)
    timings["verify_ms"] = round((time.perf_counter() - t0) * 1000, 2)
    timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
    answer.timings = timings
    return answer


class Pipeline:
    """The one object the CLI, the app and other programs use."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.settings = settings
        self._use(retriever)
        self._reload_lock = threading.Lock()
        self._documents_lock = threading.Lock()  # one add or remove at a time
        self._worker: DenseWorker | None = None

    def _use(self, retriever: Retriever) -> None:
        """Answer from this retriever's index from now on (questions in flight finish on the old)."""
        s = self.settings
        self.reader = Reader(retriever.index.idf, "\n".join(c.text for c in retriever.index.chunks),
                             retriever.understand, threshold=s.abstain_threshold)
        self.retriever = retriever

    @classmethod
    def load(cls, index_dir: str | Path | None = None, settings: Settings | None = None) -> "Pipeline":
        settings = settings or load_settings()
        return cls(Retriever.load(index_dir, settings), settings)

    def ask(self, question: str, k: int | None = None, filters: dict[str, Any] | None = None,
            use_llm: bool = False, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer one question (see `ask_with_hits`)."""
        return self.ask_with_hits(question, k, filters, use_llm, on_token)[0]

    def ask_with_hits(self, question: str, k: int | None = None, filters: dict[str, Any] | None = None,
                      use_llm: bool = False, on_token: Callable[[str], None] | None = None,
                      channels: tuple[str, ...] = ("dense", "bm25"), fusion: str | None = None
                      ) -> tuple[Answer, list[Hit]]:
        """(Answer, retrieved hits in rank order). Raises GovragError on a bad question.
        `channels` and `fusion` ("learned" | "rrf") choose the retrieval (for baselines)."""
        started = time.perf_counter()
        text = clean_question(question, self.settings.max_question_chars)
        k = k or self.settings.k
        if not 1 <= k <= 50:
            raise GovragError(f"k must be between 1 and 50, not {k}")
        timings: dict[str, float] = {}
        notes: list[str] = []
        translated = None
        if use_llm and self.settings.llm_configured and detect_language(text) == "en":
            translated = self._translate(text, notes, timings)
        t0 = time.perf_counter()
        q = self.retriever.understand(text, translated)
        timings["understand_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        table = self._table_answer(q, filters, timings)
        if table is not None:  # a question over a whole task table: counted from the records
            table.timings = {**timings, "total_ms": round((time.perf_counter() - started) * 1000, 2)}
            table.retrieval = self.retriever.retrieval(channels)
            return table, [Hit(self.retriever.index.chunk(c.chunk_id), 1.0) for c in table.citations]
        hits, k = self.retrieve(q, k, filters, channels, timings, fusion)
        t0 = time.perf_counter()
        answer = None
        if use_llm:
            answer = self._llm_answer(q, hits[:k], notes, on_token)
        if answer is None:
            answer = self.reader.answer(q, hits[:k])
            if on_token is not None:
                on_token(answer.answer)
        timings["answer_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        finish(answer, hits, timings, started)
        answer.retrieval = self.retriever.retrieval(channels)
        answer.notes = notes + answer.notes + [f"translation: {q.translation}"] * (q.lang == "en")
        return answer, hits

    def retrieve(self, q: Query, k: int, filters: dict[str, Any] | None = None,
                 channels: tuple[str, ...] = ("dense", "bm25"), timings: dict[str, float] | None = None,
                 fusion: str | None = None) -> tuple[list[Hit], int]:
        """(hits in rank order, how many of them the answer reads): the top k; a two-fact
        question's halves also retrieve on their own and up to four of their passages join."""
        hits = self.retriever.search(q, k=max(k, 5), filters=filters, channels=channels, timings=timings, fusion=fusion)
        if is_multi(q.text, q.lang):
            extra = [h for part in split_parts(q.text, q.lang) if part != q.text
                     for h in self.retriever.search(understand_part(part, q, self.retriever.understand), k=3,
                                                    filters=filters, channels=channels, fusion=fusion)]
            top = {h.chunk.id for h in hits[:k]}
            added = list({h.chunk.id: h for h in extra if h.chunk.id not in top}.values())[:4]
            rest = [h for h in hits[k:] if h.chunk.id not in {a.chunk.id for a in added}]
            hits, k = hits[:k] + added + rest, k + len(added)
        return hits, k

    def _table_answer(self, q: Query, filters: dict[str, Any] | None, timings: dict[str, float]) -> Answer | None:
        """The answer to a question over a whole task table, or None for any other question."""
        t0 = time.perf_counter()
        tasks = self.retriever.index.tasks
        tq = parse(q.text, q.lang, tasks, q.districts, q.years, self.retriever.terms)
        timings["table_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        if tq is None:
            return None
        f = tq.filter
        if filters:
            f.docs = [d for d in f.docs or [] if _matches_doc(tasks, d, filters)]
        return TableAnswerer(tasks, self.retriever.index.chunk).answer(q.text, q.lang, tq)

    def tasks(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Task records that pass a filter (see rag.table_questions.task_filter for the
        arguments: doc, district, unit, role, section, status, due_before, words)."""
        table = self.retriever.index.tasks
        f, _ = task_filter(table, self.retriever.terms, **kwargs)
        return table.select(f)

    # ---------------------------------------------------------------- the documents behind the index

    @property
    def index_settings(self) -> Settings:
        """The settings with index_dir set to the folder this pipeline's index lives in."""
        return replace(self.settings, index_dir=str(self.retriever.index.dir.parent))

    def reload(self) -> bool:
        """Switch to the live version on disk when it changed (documents added or removed,
        vectors switched in); True when it did."""
        with self._reload_lock:
            index_dir = self.retriever.index.dir.parent
            if current_version(index_dir) in (None, self.retriever.index.dir.name):
                return False
            self._use(Retriever.load(index_dir, self.settings))
            return True

    def documents(self) -> list[DocumentInfo]:
        """Every indexed document: title, district, year, kind, chunk count, when it was added."""
        return list_documents(self.retriever.index, self.settings.uploads_dir)

    def add_documents(self, paths: list[str | Path], names: list[str] | None = None,
                      on_progress: Callable[[int, int, str], None] | None = None) -> AddReport:
        """Add files (kept in settings.uploads_dir): answerable by BM25 when this returns, by
        both channels once their vectors are computed in the background. Refused or unreadable
        files are listed in the report's `skipped`; the others go in."""
        with self._documents_lock:
            report = Uploads(self.index_settings).add(self.retriever.index, paths, names, on_progress)
            if report.added or report.replaced:
                self.reload()
        if report.added or report.replaced:
            self.embed_in_background()
        return report

    def remove_document(self, name: str) -> None:
        """Take one document out of the index (an uploaded file is deleted too)."""
        with self._documents_lock:
            Uploads(self.index_settings).remove(self.retriever.index, name)
            self.reload()
        self.embed_in_background()

    def embed_in_background(self) -> None:
        """Compute the vectors the index lacks in a background thread, then switch to hybrid."""
        if self.retriever.index.retrieval == "hybrid":
            return
        if self._worker is None:
            self._worker = DenseWorker(self.index_settings, self.reload)
        self._worker.kick()

    def wait_for_vectors(self, timeout: float | None = None) -> bool:
        """Compute the missing vectors in the background (if not under way) and wait for them;
        True when the pipeline is hybrid."""
        self.embed_in_background()
        if self._worker is not None:
            self._worker.wait(timeout)
        self.reload()
        return self.retriever.index.retrieval == "hybrid"

    def embedding_progress(self) -> tuple[int, int] | None:
        """(texts embedded, texts to embed) while the background embedding runs, else None."""
        w = self._worker
        return (w.done, w.total) if w is not None and not w.wait(0) else None

    def _translate(self, text: str, notes: list[str], timings: dict[str, float]) -> str | None:
        from .llm import translate_query

        t0 = time.perf_counter()
        try:
            return translate_query(self.settings, text) or None
        except GovragError as exc:
            notes.append(f"query translation fell back to the glossary: {exc}")
            return None
        finally:
            timings["translate_ms"] = round((time.perf_counter() - t0) * 1000, 2)

    def _llm_answer(self, q: Query, hits: list[Hit], notes: list[str],
                    on_token: Callable[[str], None] | None) -> Answer | None:
        """The LLM's answer with parsed citations, or None (with a note) to fall back."""
        if not self.settings.llm_configured:
            notes.append("no LLM endpoint is configured (set GOVRAG_LLM_BASE_URL); extractive answer")
            return None
        from .llm import generate, is_abstention, parse_citations

        try:
            text = generate(self.settings, q.text, hits, q.lang, on_token)
        except GovragError as exc:  # endpoint down, slow, garbage, or the llm extra missing
            notes.append(f"{exc}; extractive answer instead")
            return None
        if is_abstention(text):
            closest = [citation(i + 1, h, 0, min(160, len(h.chunk.text))) for i, h in enumerate(hits[:3])]
            return Answer(q.text, text, [], [], True, "llm", {}, q.lang, [], closest)
        numbers = parse_citations(text, len(hits))
        figures = find_figures(text)
        citations = []
        for n in numbers:
            chunk = hits[n - 1].chunk
            span = self._span_for(chunk.text, figures)
            citations.append(Citation(n, chunk.id, chunk.doc, chunk.meta.get("title", ""), chunk.heading_path,
                                      chunk.text[span[0]:span[1]].strip(), chunk.start + span[0],
                                      chunk.start + span[1], round(hits[n - 1].score, 6),
                                      {k: v for k, v in chunk.meta.items() if k in ("row", "lead_unit", "deadline")}))
        answer = Answer(q.text, text, citations, [], False, "llm", {}, q.lang)
        verify_figures(answer, hits, {t for t, _ in q.bm25_tokens if t not in QUESTION_WORDS and not t.isdigit()})
        bad = [f for f in answer.figures if not f.verified]
        if not citations or (answer.figures and len(bad) > len(answer.figures) / 2):
            why = "cited no source" if not citations else f"{len(bad)} of {len(answer.figures)} figures not found in the cited sources"
            notes.append(f"the LLM answer {why}; extractive answer instead")
            return None
        return answer

    @staticmethod
    def _span_for(text: str, figures) -> tuple[int, int]:
        """The first sentence of a cited chunk that holds one of the answer's figures."""
        for m in _SENT.finditer(text):
            found = find_figures(m.group(0))
            if any(same_figure(f, g) for f in figures for g in found):
                return m.start(), m.end()
        return 0, min(len(text), 160)
