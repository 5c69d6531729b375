"""Baselines run side by side with ours by `govrag eval --compare`.

- langchain-default: the LangChain tutorial pipeline (RecursiveCharacterTextSplitter 500/50 over
  the raw files, FAISS.from_documents with the same embedding model) feeding our extractive
  answerer, so only chunking and retrieval differ.
- bm25-only / dense-only: our chunks and pipeline with one retrieval channel
  (`eval.run.PipelineSystem(pipeline, channel=...)`).
"""
from __future__ import annotations

import time
import warnings
from functools import partial
from pathlib import Path

from langchain_core.embeddings import Embeddings

from rag.reader import Reader
from rag.config import Settings
from rag.models import Answer, Chunk, Hit
from rag.pipeline import clean_question, finish
from rag.retriever import understand


class CachedEmbeddings(Embeddings):
    """An embedder whose document vectors come from the content-hash cache (reruns embed nothing)."""

    def __init__(self, settings: Settings) -> None:
        from embeddings import get_embedder
        from embeddings.cache import EmbeddingCache

        self.embedder = get_embedder(settings.embedder)
        self.cache = EmbeddingCache(settings.cache_dir, self.embedder)
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors, fresh = self.cache.embed(texts, progress=True)
        self.embedded += fresh
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)


class LangChainBaseline:
    """Tutorial chunking + FAISS vector store, answered by our reader."""

    name = "langchain-default"

    def __init__(self, docs: str | Path, settings: Settings) -> None:
        from langchain_community.document_loaders import TextLoader
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.vectorstores import FAISS
        import bm25s

        from rag.documents import find_files
        from rag.index import bm25_idf, tokenize

        started = time.perf_counter()
        raw = [d for p in find_files([docs]) for d in TextLoader(str(p), encoding="utf-8").load()]
        splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50, add_start_index=True)
        docs_lc = splitter.split_documents(raw)
        self.chunks: list[Chunk] = []
        for i, d in enumerate(docs_lc):
            name, start = Path(d.metadata["source"]).name, d.metadata["start_index"]
            d.metadata["chunk"] = i
            self.chunks.append(Chunk(f"{name}:lc:{i}", name, "section", d.page_content, [], start,
                                     start + len(d.page_content)))
        embeddings = CachedEmbeddings(settings)
        self.store = FAISS.from_documents(docs_lc, embeddings)
        bm25 = bm25s.BM25()  # only for the answerer's IDF weights
        bm25.index([tokenize(c.text) or ["∅"] for c in self.chunks], show_progress=False)
        self.answerer = Reader(partial(bm25_idf, bm25, len(self.chunks)), "\n".join(c.text for c in self.chunks))
        self.max_chars = settings.max_question_chars
        self.build = {"seconds": round(time.perf_counter() - started, 2), "chunks": len(self.chunks),
                      "embedded": embeddings.embedded}

    def ask(self, question: str, k: int = 5) -> tuple[Answer, list[Hit]]:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        q = understand(clean_question(question, self.max_chars))
        timings["understand_ms"] = round((time.perf_counter() - started) * 1000, 2)
        t0 = time.perf_counter()
        found = self.store.similarity_search_with_score(question, k=max(k, 5))
        # FAISS (IndexFlatL2) gives squared L2 of unit vectors: cosine = 1 - d / 2
        hits = [Hit(self.chunks[d.metadata["chunk"]], 1 - float(dist) / 2, {"dense": r})
                for r, (d, dist) in enumerate(found, 1)]
        timings["retrieve_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        t0 = time.perf_counter()
        answer = self.answerer.answer(q, hits[:k])
        timings["answer_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return finish(answer, hits, timings, started), hits

