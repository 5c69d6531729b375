"""The on-disk index: FAISS (dense) + BM25 over jieba tokens, with a checked manifest.

Layout of an index folder:
    CURRENT              name of the live version folder (replaced atomically)
    v-<time>-<pid>/      manifest.json, chunks.jsonl, vectors.npy, dense.faiss, bm25/
A build writes a new version folder, then switches CURRENT with os.replace, so a crash at
any point leaves the previous index live. Nothing is pickled.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .chunking import chunk_source
from .config import Settings
from .documents import find_files, load_file
from .models import Chunk, GovragError
from .stores import StoredChunks
from .tables import build_records, save_records

if TYPE_CHECKING:
    from .stores import IndexStore

FORMAT_VERSION = 1
# One document over this size is refused when indexing: it would take hours to embed on a CPU
# (a 50 MB text file is ~18M characters, ~360k chunks; the real documents are < 100 KB).
MAX_INDEX_FILE_BYTES = 10 * 2**20
VIEW_CHARS = 160  # a long chunk is also embedded in windows of about this many characters
STOP_WORDS = frozenset(
    "的 了 和 与 及 等 是 在 有 对 为 将 把 被 由 以 于 中 上 下 个 之 其 或 并 也 都 而 就 从 到 "
    "多少 哪些 哪个 什么 几 吗 呢 是否 怎么 如何 年内 我区 全区 进行 开展 推进 加快 完成 工作".split()
)
_TOKEN_OK = re.compile(r"[\w%]", re.UNICODE)


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """BM25 tokens: jieba search-mode words, lower-cased; numbers and years kept; stop words
    and punctuation dropped."""
    return [t for t in (w.strip().lower() for w in _jieba().cut_for_search(text))
            if t and _TOKEN_OK.search(t) and t not in STOP_WORDS]


def bm25_terms(chunk: Chunk) -> list[str]:
    """The BM25 tokens of a chunk (title, heading path and text); never empty."""
    return tokenize(chunk.embed_text) or ["∅"]


def chunk_views(chunk: Chunk) -> list[str]:
    """The texts embedded for a chunk: the whole chunk (title, heading path, text) and, when it
    is long, windows of whole sentences with its heading as context, so that one fact inside
    a long passage still finds it (the small encoder reads only the start of long texts)."""
    views = [chunk.embed_text]
    if len(chunk.text) <= VIEW_CHARS * 1.5:
        return views
    context = chunk.heading_path[-1] if chunk.heading_path else chunk.meta.get("title", "")
    window = ""
    for sentence in re.findall(r"[^。!?;!?;\n]+[。!?;!?;]*", chunk.text):
        if window and len(window) + len(sentence) > VIEW_CHARS:
            views.append(f"{context}\n{window}")
            window = ""
        window += sentence
    if window:
        views.append(f"{context}\n{window}")
    return views


def _stable_id(chunk_id: str) -> int:
    return int.from_bytes(hashlib.sha256(chunk_id.encode()).digest()[:8], "big") & (2**63 - 1)


def _view_ids(chunks: list[Chunk], view_chunk: np.ndarray) -> np.ndarray:
    """Stable FAISS ids of the views: chunk id + view number."""
    counts: dict[int, int] = {}
    ids = []
    for pos in view_chunk:
        j = counts.get(int(pos), 0)
        counts[int(pos)] = j + 1
        ids.append(_stable_id(f"{chunks[pos].id}#{j}"))
    return np.array(ids, dtype=np.int64)


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fix(index_dir: Path, sources: Any = None) -> str:
    """The command that rebuilds the index, naming the documents it was built from when known
    (a bare `govrag index` would index the default folder instead)."""
    paths = [str(p) for p in sources] if isinstance(sources, list) and sources else []
    words = ["govrag", "index", *paths, "--index", str(index_dir)]
    return f"rebuild it with: {shlex.join(words)}"


@dataclass
class Index(StoredChunks):
    """A loaded index: chunks, their vectors, the FAISS and BM25 structures, the manifest."""

    dir: Path
    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: Any
    bm25: Any
    view_chunk: np.ndarray  # chunk position of each embedded view (row of `vectors`)
    view_hashes: list[str]  # content hash of each view's text (what its vector encodes)
    id_to_view: dict[int, int] = field(default_factory=dict)

    def dense_search(self, query_vec: np.ndarray, n: int, filters: dict[str, Any] | None = None
                     ) -> list[tuple[int, float]]:
        """(chunk position, cosine of its best view) for the n nearest chunks (`filters` are
        applied by the Retriever afterwards)."""
        n = min(n, len(self.chunks))
        if n == 0:
            return []
        k = min(len(self.view_chunk), n * max(2, round(len(self.view_chunk) / len(self.chunks)) + 1))
        scores, ids = self.faiss_index.search(query_vec.reshape(1, -1).astype(np.float32), k)
        best: dict[int, float] = {}
        for score, vid in zip(scores[0], ids[0]):
            if vid >= 0:
                pos = int(self.view_chunk[self.id_to_view[int(vid)]])
                best.setdefault(pos, float(score))
        return sorted(best.items(), key=lambda kv: -kv[1])[:n]

    @property
    def vocabulary(self) -> dict[str, int]:
        """The BM25 vocabulary (token -> id): the words the indexed documents use."""
        return self.bm25.vocab_dict

    def idf(self, token: str) -> float:
        """BM25 IDF of a token in this index (an unknown token counts as rare)."""
        return bm25_idf(self.bm25, len(self.chunks), token)

    def bm25_search(self, weighted_tokens: list[tuple[str, float]], n: int,
                    filters: dict[str, Any] | None = None) -> list[tuple[int, float]]:
        """(chunk position, BM25 score) of the n best chunks with a positive score (`filters`
        are applied by the Retriever afterwards)."""
        scores = self.bm25_scores(weighted_tokens)
        top = np.argsort(-scores, kind="stable")[:n]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def bm25_scores(self, weighted_tokens: list[tuple[str, float]]) -> np.ndarray:
        """BM25 score of every chunk for weighted query tokens."""
        total = np.zeros(len(self.chunks), dtype=np.float32)
        by_weight: dict[float, list[str]] = {}
        for token, weight in weighted_tokens:
            if token in self.bm25.vocab_dict:
                by_weight.setdefault(round(weight, 3), []).append(token)
        for weight, tokens in by_weight.items():  # one pass per distinct weight
            total += weight * self.bm25.get_scores(tokens).astype(np.float32)
        return total


def bm25_idf(bm25: Any, n_docs: int, token: str) -> float:
    """IDF of a token in a bm25s index over n_docs documents (an unknown token counts as rare)."""
    tid = bm25.vocab_dict.get(token)
    indptr = bm25.scores["indptr"]
    return idf(n_docs, 0 if tid is None else int(indptr[tid + 1] - indptr[tid]))


def idf(n_docs: int, df: int) -> float:
    """BM25 IDF (Lucene's, as bm25s and Milvus compute it) of a token in df of n_docs documents."""
    return math.log(1 + (max(1, n_docs) - df + 0.5) / (df + 0.5))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _make_faiss(vectors: np.ndarray, ids: np.ndarray, kind: str):
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efSearch = 128
    elif kind == "flat":
        base = faiss.IndexFlatIP(dim)
    else:
        raise GovragError(f"unknown faiss index kind {kind!r} (use flat or hnsw)")
    index = faiss.IndexIDMap2(base)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    return index


def _make_bm25(chunks: list[Chunk]):
    import bm25s

    bm25 = bm25s.BM25()
    corpus = [bm25_terms(c) for c in chunks]
    if corpus:
        bm25.index(corpus, show_progress=False)
    return bm25


def write_index(index_dir: Path, chunks: list[Chunk], vectors: np.ndarray, view_chunk: np.ndarray,
                view_hashes: list[str], embedder_id: str, files: dict[str, str], faiss_kind: str = "flat",
                sources: list[str] | None = None) -> Path:
    """Write a complete new version and switch CURRENT to it atomically; returns the version dir."""
    import faiss

    tmp = new_version_dir(index_dir)
    view_chunk = np.asarray(view_chunk, dtype=np.int32)
    ids = _view_ids(chunks, view_chunk)
    write_chunks(tmp, chunks)
    np.save(tmp / "vectors.npy", vectors.astype(np.float32), allow_pickle=False)
    np.save(tmp / "views.npy", view_chunk, allow_pickle=False)
    _write_json(tmp / "view_hashes.json", list(view_hashes))
    faiss.write_index(_make_faiss(vectors.astype(np.float32), ids, faiss_kind), str(tmp / "dense.faiss"))
    _make_bm25(chunks).save(str(tmp / "bm25"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "store": "local",
        "embedder": embedder_id,
        "dim": int(vectors.shape[1]),
        "chunk_count": len(chunks),
        "view_count": int(len(view_chunk)),
        "faiss": faiss_kind,
        "documents": files,
        "sources": list(sources or []),  # the paths it was built from (named in error messages)
        "chunk_hashes": {c.id: hashlib.sha256(c.embed_text.encode()).hexdigest()[:32] for c in chunks},
    }
    return publish_version(index_dir, tmp, manifest)


def new_version_dir(index_dir: Path) -> Path:
    """A new temporary folder for the next version of an index (see `publish_version`)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    tmp = index_dir / f".tmp-v-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.time_ns() % 10**6}"
    tmp.mkdir()
    return tmp


def publish_version(index_dir: Path, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Complete the manifest (file hashes, build time), write it, make the version folder live by
    switching CURRENT atomically and remove older versions; returns the version dir."""
    version = index_dir / tmp.name.removeprefix(".tmp-")
    manifest["file_hashes"] = {p.relative_to(tmp).as_posix(): _file_sha(p) for p in sorted(tmp.rglob("*"))
                               if p.is_file()}
    manifest["build_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_json(tmp / "manifest.json", manifest)
    _fsync_tree(tmp)
    os.rename(tmp, version)
    pointer = index_dir / ".CURRENT.tmp"
    pointer.write_text(version.name, encoding="utf-8")
    with open(pointer, "rb") as f:
        os.fsync(f.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    for old in index_dir.iterdir():  # older versions and leftovers of killed builds
        if old.is_dir() and old != version and (old.name.startswith("v-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
    return version


def write_chunks(folder: Path, chunks: list[Chunk]) -> None:
    """chunks.jsonl (one chunk per line) and the task records built from them (tasks.jsonl)."""
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
    save_records(folder, build_records(chunks))


def read_chunks(version: Path) -> list[Chunk]:
    """The chunks of an index version (chunks.jsonl)."""
    return [Chunk.from_dict(json.loads(line)) for line in
            (version / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def load_index(index_dir: str | Path, embedder_id: str | None = None, dim: int | None = None,
               settings: Settings | None = None) -> "IndexStore":
    """Load and check an index of any store (the manifest names it; `settings` give a database
    store its credentials); every problem is a GovragError naming the fix."""
    import bm25s
    import faiss

    index_dir = Path(index_dir)
    current = index_dir / "CURRENT"
    if not current.is_file():
        raise GovragError(f"no index at {index_dir}; build one with: govrag index --index {index_dir}")
    version = index_dir / current.read_text(encoding="utf-8").strip()
    try:
        manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise GovragError(f"index at {index_dir} has no readable manifest ({exc}); {_fix(index_dir)}") from exc
    fix = _fix(index_dir, manifest.get("sources"))
    fmt = manifest.get("format_version")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise GovragError(f"index at {index_dir} has format version {fmt}, newer than this govrag "
                          f"reads ({FORMAT_VERSION}); upgrade govrag or {fix}")
    if embedder_id and manifest.get("embedder") != embedder_id:
        raise GovragError(f"index at {index_dir} was built with embedder {manifest.get('embedder')!r} "
                          f"but {embedder_id!r} is configured; {fix}")
    if dim and manifest.get("dim") != dim:
        raise GovragError(f"index at {index_dir} has dimension {manifest.get('dim')}, the embedder "
                          f"gives {dim}; {fix}")
    for rel, sha in manifest.get("file_hashes", {}).items():
        path = version / rel
        if not path.is_file() or _file_sha(path) != sha:
            raise GovragError(f"index file {rel} in {index_dir} is missing or damaged; {fix}")
    if manifest.get("store", "local") != "local":  # a database store (rag/stores)
        from .stores import open_store

        return open_store(version, manifest, settings, fix)
    try:
        chunks = read_chunks(version)
        vectors = np.load(version / "vectors.npy", allow_pickle=False)
        view_chunk = np.load(version / "views.npy", allow_pickle=False)
        view_hashes = json.loads((version / "view_hashes.json").read_text(encoding="utf-8"))
        dense = faiss.read_index(str(version / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(version / "bm25"), allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise GovragError(f"index at {index_dir} cannot be read ({type(exc).__name__}); {fix}") from exc
    n, views = manifest.get("chunk_count"), manifest.get("view_count")
    if not (n == len(chunks) and views == vectors.shape[0] == dense.ntotal == len(view_chunk) == len(view_hashes)) \
            or vectors.shape[1] != manifest.get("dim") or (len(view_chunk) and int(view_chunk.max()) >= len(chunks)):
        raise GovragError(f"index at {index_dir} is out of step (manifest {n} chunks / {views} vectors, chunks "
                          f"file {len(chunks)}, vectors {vectors.shape[0]}, faiss {dense.ntotal}); {fix}")
    id_to_view = {int(v): i for i, v in enumerate(_view_ids(chunks, view_chunk))}
    return Index(version, manifest, chunks, vectors, dense, bm25, view_chunk, view_hashes, id_to_view)


@dataclass
class BuildReport:
    """What `build_index` did."""

    index_dir: Path
    documents: int
    chunks: int
    embedded: int
    reused: int
    removed_documents: list[str]
    added_documents: list[str]
    skipped: list[str]
    seconds: float

    def summary(self) -> str:
        parts = [f"indexed {self.documents} documents, {self.chunks} chunks into {self.index_dir}",
                 f"embedded {self.embedded} new texts (chunks and their sentence windows), reused {self.reused}"]
        if self.added_documents:
            parts.append(f"added {len(self.added_documents)}")
        if self.removed_documents:
            parts.append(f"removed {len(self.removed_documents)}: {', '.join(self.removed_documents)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}")
        return "; ".join(parts) + f" ({self.seconds:.1f} s)"


def load_chunks(paths: list[str | Path], settings: Settings) -> tuple[list[Chunk], dict[str, str], list[str]]:
    """Chunks of every readable document; (chunks, {file name: text sha}, skipped messages).
    Files with the same cleaned content are indexed once."""
    chunks: list[Chunk] = []
    files: dict[str, str] = {}
    skipped: list[str] = []
    for path in find_files(list(paths)):
        size = path.stat().st_size
        if size > MAX_INDEX_FILE_BYTES:
            skipped.append(f"{path.name}: {size / 2**20:.0f} MB is over the {MAX_INDEX_FILE_BYTES // 2**20} MB "
                           "limit for one document (embedding it would take hours); split it into smaller files")
            continue
        try:
            source = load_file(path)
        except GovragError as exc:
            skipped.append(str(exc))
            continue
        if source.sha256 in files.values():
            skipped.append(f"{path.name}: same content as an indexed file")
            continue
        if path.name in files:
            skipped.append(f"{path}: another file named {path.name} is already indexed")
            continue
        new = chunk_source(source, settings.chunk_tokens, settings.chunk_overlap_tokens)
        if not new:
            skipped.append(f"{path.name}: no content after removing boilerplate")
            continue
        files[path.name] = source.sha256
        chunks.extend(new)
    return chunks, files, skipped


def build_index(paths: list[str | Path], settings: Settings, index_dir: str | Path | None = None,
                progress: bool = True) -> BuildReport:
    """Build or update the index so it holds exactly the documents under `paths`.
    Unchanged chunks reuse their vectors (from the previous index or the embedding cache)."""
    from embeddings import get_embedder
    from embeddings.cache import EmbeddingCache, content_hash

    started = time.perf_counter()
    index_dir = Path(index_dir or settings.index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time
        chunks, files, skipped = load_chunks(paths, settings)
        if not chunks:  # one line: why each file was skipped
            why = f": {'; '.join(skipped[:3])}{'; …' if len(skipped) > 3 else ''}" if skipped else ""
            raise GovragError(f"nothing to index in {', '.join(map(str, paths))}{why}")
        for msg in skipped:
            print(f"skipped {msg}", file=sys.stderr)
        embedder = get_embedder(settings.embedder)
        sources = [str(Path(p).resolve()) for p in paths]
        from .stores import write_store, writing_settings

        settings = writing_settings(index_dir, settings)
        if settings.store != "local":  # a database store writes its own way (rag/stores)

            old_files, embedded, total = write_store(index_dir, chunks, files, embedder, settings, sources, progress)
            return _report(index_dir, files, old_files, len(chunks), embedded, total, skipped, started)
        old_files: dict[str, str] = {}
        known: dict[str, np.ndarray] = {}
        try:
            old = load_index(index_dir, embedder.id, embedder.dim)
            old_files = old.manifest.get("documents", {})
            known = dict(zip(old.view_hashes, old.vectors))
        except GovragError:
            pass  # no usable previous index: everything comes from the cache or the model
        texts, view_chunk = [], []
        for pos, chunk in enumerate(chunks):
            for view in chunk_views(chunk):
                texts.append(view)
                view_chunk.append(pos)
        todo = list(dict.fromkeys(t for t in texts if content_hash(t) not in known))
        cache = EmbeddingCache(settings.cache_dir, embedder)
        fresh, embedded = cache.embed(todo, progress=progress) if todo else (None, 0)
        vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        fresh_by_hash = dict(zip(map(content_hash, todo), fresh)) if todo else {}
        for i, t in enumerate(texts):
            h = content_hash(t)
            vectors[i] = known[h] if h in known else fresh_by_hash[h]
        write_index(index_dir, chunks, vectors, np.array(view_chunk), [content_hash(t) for t in texts],
                    embedder.id, files, settings.faiss_index, sources)
    return _report(index_dir, files, old_files, len(chunks), embedded, len(texts), skipped, started)


def _report(index_dir: Path, files: dict[str, str], old_files: dict[str, str], chunks: int, embedded: int,
            views: int, skipped: list[str], started: float) -> BuildReport:
    return BuildReport(index_dir, len(files), chunks, embedded, views - embedded,
                       sorted(set(old_files) - set(files)), sorted(set(files) - set(old_files)) if old_files else [],
                       skipped, time.perf_counter() - started)
