"""Index stores: where the chunks' vectors and BM25 postings live and are searched.

- "local" (default): FAISS + bm25s files in the index folder (rag/index.py).
- "milvus": a Milvus collection pair through pymilvus: Milvus Lite embedded in the process
  (a `*.db` path) or a Milvus server / cluster (`http://HOST:19530`); see rag/stores/milvus.py.

Either way the index folder keeps a manifest naming its store (and for Milvus the URI and
collection), so loading needs no flags: `load_index(folder)` reads the manifest and opens the
store it names. The Retriever and the reader use only the `IndexStore` interface below.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..config import Settings, load_settings
from ..models import Chunk, GovragError

if TYPE_CHECKING:
    from ..tables import TaskTable

STORES = ("local", "milvus")
DEFAULT_LITE_URI = ".govrag/milvus.db"


class StoredChunks:
    """What every store's loaded index offers over its chunk list and folder: a chunk by id and
    the task records stored beside the chunks (rag/tables)."""

    dir: Path
    chunks: list[Chunk]

    @property
    def retrieval(self) -> str:
        """"hybrid" when every chunk's vectors are searchable (a database store writes them with
        the chunks), "lexical" while they are not."""
        return "hybrid"

    @cached_property
    def _by_id(self) -> dict[str, Chunk]:
        return {c.id: c for c in self.chunks}

    @cached_property
    def doc_texts(self) -> dict[str, str]:
        """Each document's chunks' text, lower-cased and joined: what the ranker matches a
        question's description of a document against ("the report that mentions ...")."""
        texts: dict[str, list[str]] = {}
        for c in self.chunks:
            texts.setdefault(c.doc, []).append(c.text.lower())
        return {doc: "\n".join(parts) for doc, parts in texts.items()}

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this id (KeyError if the index has none)."""
        return self._by_id[chunk_id]

    @cached_property
    def tasks(self) -> "TaskTable":
        """The task records of the indexed progress tables and task lists."""
        from ..tables import TaskTable, load_records

        try:
            return TaskTable(load_records(self.dir, self.chunks))
        except (OSError, ValueError, KeyError) as exc:
            raise GovragError(f"task records in {self.dir} cannot be read ({exc}); rebuild the index "
                              f"with: govrag index --index {self.dir.parent}") from exc


class IndexStore(Protocol):
    """A loaded index as the Retriever and the reader see it. Positions index `chunks`."""

    dir: Path
    chunks: list[Chunk]
    manifest: dict[str, Any]
    tasks: "TaskTable"

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this id."""

    @property
    def vocabulary(self) -> dict[str, int]:
        """The corpus's BM25 tokens (token -> id)."""

    def idf(self, token: str) -> float:
        """BM25 IDF of a token (an unknown token counts as rare)."""

    def bm25_search(self, weighted_tokens: list[tuple[str, float]], n: int,
                    filters: dict[str, Any] | None = None) -> list[tuple[int, float]]:
        """(chunk position, BM25 score) of the n best chunks; a store may apply `filters`
        (the Retriever's metadata filters) itself, the Retriever checks them again."""

    def dense_search(self, query_vec: np.ndarray, n: int,
                     filters: dict[str, Any] | None = None) -> list[tuple[int, float]]:
        """(chunk position, cosine of its best view) of the n nearest chunks; `filters` as above."""


def live_manifest(index_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """(manifest, version folder) of an index folder's live version, or ({}, None)."""
    try:
        version = index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
        return json.loads((version / "manifest.json").read_text(encoding="utf-8")), version
    except (OSError, ValueError):
        return {}, None


def writing_settings(index_dir: Path, settings: Settings) -> Settings:
    """The settings a build of `index_dir` uses: the store, Milvus URI and collection left unset
    are those the folder's live manifest names, else local / DEFAULT_LITE_URI / derived."""
    manifest, _ = live_manifest(index_dir)
    store = settings.store or manifest.get("store", "local")
    if store not in STORES:
        raise GovragError(f"unknown store {store!r}; use one of {', '.join(STORES)}")
    milvus = manifest.get("milvus", {}) if manifest.get("store") == "milvus" else {}
    return replace(settings, store=store, milvus_uri=settings.milvus_uri or milvus.get("uri", DEFAULT_LITE_URI),
                   milvus_collection=settings.milvus_collection or milvus.get("collection", ""))


def _milvus():
    try:
        from . import milvus
    except ImportError as exc:  # pymilvus (and milvus-lite) are an extra
        raise GovragError(f"the Milvus store needs pymilvus ({exc.name} is missing): "
                          "pip install 'govrag[milvus]'") from exc
    return milvus


def open_store(version: Path, manifest: dict[str, Any], settings: Settings | None, fix: str) -> IndexStore:
    """Open the database store a checked manifest names (the local store loads in rag/index.py)."""
    store = manifest.get("store")
    if store != "milvus":
        raise GovragError(f"index at {version.parent} uses store {store!r}, which this govrag does not "
                          f"know ({', '.join(STORES)}); upgrade govrag or {fix}")
    return _milvus().open_index(version, manifest, settings or load_settings(), fix)


def write_store(index_dir: Path, chunks: list[Chunk], files: dict[str, str], embedder: Any, settings: Settings,
                sources: list[str], progress: bool) -> tuple[dict[str, str], int, int]:
    """Bring a database store up to `chunks` (settings.store names it, see `writing_settings`)
    and publish a new version of the index folder; (previous documents, texts embedded now,
    texts embedded in all)."""
    return _milvus().write_index(index_dir, chunks, files, embedder, settings, sources, progress)
