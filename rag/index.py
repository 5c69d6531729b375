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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from .chunking import chunk_source
from .config import Settings
from .documents import find_files, load_file
from .jieba_dict import jieba_ready
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


def tokenize(text: str) -> list[str]:
    """BM25 tokens: jieba search-mode words, lower-cased; numbers and years kept; stop words
    and punctuation dropped."""
    return [t for t in (w.strip().lower() for w in jieba_ready().cut_for_search(text))
            if t and _TOKEN_OK.search(t) and t not in STOP_WORDS]


def bm25_terms(chunk: Chunk) -> list[str]:
    """The BM25 tokens of a chunk (title, heading path and text); never empty."""
    return tokenize(chunk.embed_text) or ["∅"]


# Which sentence windows of a chunk (numbered from 1) are embedded beside it whole (setting
# `views`); eval/views.py measures what each kind is worth (eval/RESULTS.md, issue 16).
VIEW_POLICIES: dict[str, Callable[[Chunk, int], bool]] = {
    # the default: a task row's windows after the first, i.e. its progress and next steps; the
    # first repeats the task and target the row opens with, which its whole vector holds
    "rows": lambda chunk, j: chunk.kind == "task_row" and j > 1,
    "all": lambda chunk, j: True,  # every window of every chunk over 1.5 windows (before issue 16)
    "none": lambda chunk, j: False,  # each chunk whole, nothing else
}


def dense_text(chunk: Chunk) -> str:
    """The chunk as the encoder reads it: heading path (starting with the title) and text. Not
    `Chunk.embed_text`, which names the title twice when the path starts with it (a tenth of
    the characters embedded, for nothing)."""
    heads = [h for h in chunk.heading_path if h]
    title = chunk.meta.get("title", "")
    if title and (not heads or heads[0] != title):
        heads.insert(0, title)
    return "\n".join(p for p in (" > ".join(heads), chunk.text) if p)


def chunk_views(chunk: Chunk, policy: str = "rows") -> list[str]:
    """The texts embedded for a chunk: the whole chunk (`dense_text`) and, when it is long, the
    windows of whole sentences (with its heading as context) the view policy keeps, so that a
    fact deep inside a passage still finds it (a chunk's one vector averages what it says)."""
    if policy not in VIEW_POLICIES:
        raise GovragError(f"unknown views setting {policy!r} (use {', '.join(VIEW_POLICIES)})")
    views = [dense_text(chunk)]
    if len(chunk.text) <= VIEW_CHARS * 1.5:
        return views
    context = chunk.heading_path[-1] if chunk.heading_path else chunk.meta.get("title", "")
    windows, window = [], ""
    for sentence in re.findall(r"[^。!?;!?;\n]+[。!?;!?;]*", chunk.text):
        if window and len(window) + len(sentence) > VIEW_CHARS:
            windows.append(window)
            window = ""
        window += sentence
    windows += [window] if window else []
    keep = VIEW_POLICIES[policy]
    return views + [f"{context}\n{w}" for j, w in enumerate(windows, 1) if keep(chunk, j)]


def all_views(chunks: list[Chunk], policy: str) -> tuple[list[str], list[int]]:
    """(every view text, the chunk position of each)."""
    texts, view_chunk = [], []
    for pos, chunk in enumerate(chunks):
        for view in chunk_views(chunk, policy):
            texts.append(view)
            view_chunk.append(pos)
    return texts, view_chunk


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

    @property
    def pending_views(self) -> int:
        """Views of the chunks not embedded yet (see `embed_pending`)."""
        return int(self.manifest.get("pending_views", 0))

    @property
    def retrieval(self) -> str:
        """"hybrid" when every view is embedded, else "lexical": search is BM25 only until then
        (a dense channel over some chunks would push the not yet embedded ones down the fusion)."""
        return "lexical" if self.pending_views or not len(self.view_chunk) else "hybrid"

    def dense_search(self, query_vec: np.ndarray, n: int, filters: dict[str, Any] | None = None
                     ) -> list[tuple[int, float]]:
        """(chunk position, cosine of its best view) for the n nearest chunks (`filters` are
        applied by the Retriever afterwards)."""
        n = min(n, len(self.chunks))
        if n == 0 or not len(self.view_chunk):
            return []
        k = min(len(self.view_chunk), n * max(2, round(len(self.view_chunk) / len(self.chunks)) + 1))
        _, ids = self.faiss_index.search(query_vec.reshape(1, -1).astype(np.float32), k)
        views = [self.id_to_view[int(vid)] for vid in ids[0] if vid >= 0]
        return best_chunks([int(self.view_chunk[v]) for v in views], self.vectors[views], query_vec, n)

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


def exact_scores(vectors: np.ndarray, query_vec: np.ndarray) -> np.ndarray:
    """Inner products summed in float64 and rounded to float32: the same on every CPU. FAISS's
    kernels sum in an order that depends on the CPU's SIMD level, which moved the fitted models'
    split thresholds from machine to machine; FAISS still chooses the candidates."""
    return (vectors.astype(np.float64) @ np.asarray(query_vec, dtype=np.float64).ravel()).astype(np.float32)


def best_chunks(positions: list[int], vectors: np.ndarray, query_vec: np.ndarray, n: int) -> list[tuple[int, float]]:
    """(chunk position, `exact_scores` of its best view) of the n best chunks, given the views a
    store's search found (their chunks' positions and vectors); ties in chunk order."""
    best: dict[int, float] = {}
    for pos, score in zip(positions, exact_scores(vectors, query_vec)):
        best[pos] = max(best.get(pos, -np.inf), float(score))
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


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
                sources: list[str] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a complete new version and switch CURRENT to it atomically; returns the version dir.
    `extra` adds manifest keys (pending_views, added, excluded, views, content)."""
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
        **(extra or {}),
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
    """What a build did (`index_lexical`, then `embed_pending` fills `embedded`)."""

    index_dir: Path
    documents: int
    chunks: int
    embedded: int  # texts encoded now
    reused: int  # views whose vectors came from the previous index or the cache
    removed_documents: list[str]
    added_documents: list[str]
    skipped: list[str]
    seconds: float
    pending: int = 0  # views still to embed
    written: bool = True  # False when the index already held exactly this

    def summary(self) -> str:
        parts = [f"indexed {self.documents} documents, {self.chunks} chunks into {self.index_dir}",
                 f"embedded {self.embedded} new texts (chunks and their sentence windows), reused {self.reused}"]
        if self.pending:
            parts.append(f"{self.pending} still to embed (lexical search until then)")
        if self.added_documents:
            parts.append(f"added {len(self.added_documents)}")
        if self.removed_documents:
            parts.append(f"removed {len(self.removed_documents)}: {', '.join(self.removed_documents)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}")
        return "; ".join(parts) + f" ({self.seconds:.1f} s)"


def load_chunks(paths: list[str | Path], settings: Settings,
                excluded: Iterable[str] = ()) -> tuple[list[Chunk], dict[str, str], list[str]]:
    """Chunks of every readable document (but those named in `excluded`); (chunks, {file name:
    text sha}, skipped messages). Files with the same cleaned content are indexed once."""
    chunks: list[Chunk] = []
    files: dict[str, str] = {}
    skipped: list[str] = []
    for path in find_files(list(paths)):
        if path.name in excluded:
            continue
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


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index folder (across processes)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def current_version(index_dir: Path) -> str | None:
    """Name of the live version folder, or None."""
    try:
        return (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _previous(index_dir: Path, embedder: Any) -> Index | None:
    """The live index when it is usable with this embedder (its vectors can be reused)."""
    try:
        return load_index(index_dir, embedder.id, embedder.dim)
    except GovragError:
        return None


def _write_version(index_dir: Path, chunks: list[Chunk], known: dict[str, np.ndarray], embedder: Any,
                   fields: dict[str, Any], old: Index | None) -> tuple[int, bool]:
    """Write a version of `chunks` with the vectors of the views in `known` (the rest pending),
    unless the live one `old` holds exactly that; (pending views, written)."""
    from embeddings.cache import content_hash

    texts, view_chunk = all_views(chunks, fields["views"])
    hashes = [content_hash(t) for t in texts]
    rows = [i for i, h in enumerate(hashes) if h in known]
    fields = {**fields, "pending_views": len(texts) - len(rows)}
    content = hashlib.sha256(json.dumps([fields, [c.to_dict() for c in chunks], [hashes[i] for i in rows]],
                                        ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]
    if old is not None and old.manifest.get("content") == content:
        return fields["pending_views"], False
    vectors = np.stack([known[hashes[i]] for i in rows]) if rows else np.zeros((0, embedder.dim), np.float32)
    extra = {key: fields[key] for key in ("pending_views", "added", "excluded", "views")}
    write_index(index_dir, chunks, vectors, np.array([view_chunk[i] for i in rows], dtype=np.int32),
                [hashes[i] for i in rows], embedder.id, fields["documents"], fields["faiss"], fields["sources"],
                {**extra, "content": content})
    return fields["pending_views"], True


def index_lexical(paths: list[str | Path], settings: Settings, index_dir: str | Path | None = None,
                  excluded: Iterable[str] = ()) -> BuildReport:
    """Make the index hold exactly the documents under `paths` (but `excluded` names), at once
    searchable by BM25: chunks, BM25 and the vectors already known (previous index, embedding
    cache); the views not embedded yet are left pending for `embed_pending`."""
    from embeddings import get_embedder
    from embeddings.cache import EmbeddingCache

    started = time.perf_counter()
    index_dir = Path(index_dir or settings.index_dir)
    excluded = sorted(set(excluded))
    with writer_lock(index_dir):
        chunks, files, skipped = load_chunks(paths, settings, excluded)
        if not chunks:  # one line: why each file was skipped
            why = f": {'; '.join(skipped[:3])}{'; …' if len(skipped) > 3 else ''}" if skipped else ""
            raise GovragError(f"nothing to index in {', '.join(map(str, paths))}{why}")
        for msg in skipped:
            print(f"skipped {msg}", file=sys.stderr)
        embedder = get_embedder(settings.embedder)
        old = _previous(index_dir, embedder)
        known = EmbeddingCache(settings.cache_dir, embedder).vectors
        if old is not None:
            known = {**known, **dict(zip(old.view_hashes, old.vectors))}
        old_files = old.manifest.get("documents", {}) if old else {}
        fields = {"documents": files, "sources": [str(Path(p).resolve()) for p in paths], "excluded": excluded,
                  "views": settings.views, "faiss": settings.faiss_index, "added": _added(old, files)}
        pending, written = _write_version(index_dir, chunks, known, embedder, fields, old)
    views = len(all_views(chunks, settings.views)[0])
    return BuildReport(index_dir, len(files), len(chunks), 0, views - pending,
                       sorted(set(old_files) - set(files)), sorted(set(files) - set(old_files)) if old_files else [],
                       skipped, time.perf_counter() - started, pending, written)


def _added(old: Index | None, files: dict[str, str]) -> dict[str, str]:
    """When each document entered the index (kept while its content stays the same)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    before = old.manifest.get("added", {}) if old else {}
    old_files = old.manifest.get("documents", {}) if old else {}
    since = old.manifest.get("build_time", now) if old else now  # indexes from before "added"
    return {name: (before.get(name, since) if old_files.get(name) == sha else now) for name, sha in files.items()}


def embed_pending(index_dir: str | Path, settings: Settings, progress: bool = False,
                  on_progress: Callable[[int, int], None] | None = None) -> int:
    """Embed the views the live index lacks and switch in the complete (hybrid) version; returns
    how many texts were encoded. Vectors reach the embedding cache as they come, so a run that
    is killed resumes where it stopped; a version written meanwhile (documents added or removed)
    is caught up with in another round."""
    from embeddings import get_embedder
    from embeddings.cache import EmbeddingCache, content_hash

    index_dir = Path(index_dir)
    embedder = get_embedder(settings.embedder)
    cache = EmbeddingCache(settings.cache_dir, embedder)
    encoded = 0
    while True:
        index = load_index(index_dir, embedder.id, embedder.dim)
        if not index.pending_views:
            return encoded
        have = dict(zip(index.view_hashes, index.vectors))
        texts = all_views(index.chunks, index.manifest.get("views", "all"))[0]
        todo = [t for t in dict.fromkeys(texts) if content_hash(t) not in have]
        encoded += cache.embed(todo, progress=progress, on_progress=on_progress)[1]
        with writer_lock(index_dir):
            if current_version(index_dir) != index.dir.name:
                continue  # changed meanwhile: embed what the new version lacks
            m = index.manifest
            fields = {"documents": m["documents"], "sources": m.get("sources", []), "excluded": m.get("excluded", []),
                      "views": m.get("views", "all"), "faiss": m.get("faiss", "flat"), "added": m.get("added", {})}
            _write_version(index_dir, index.chunks, {**cache.vectors, **have}, embedder, fields, index)
            return encoded


def build_index(paths: list[str | Path], settings: Settings, index_dir: str | Path | None = None,
                progress: bool = True) -> BuildReport:
    """Build or update the index so it holds exactly the documents under `paths`: the lexical
    part first, then every missing vector (from the previous index, the cache or the model)."""
    from .stores import writing_settings

    started = time.perf_counter()
    settings = writing_settings(Path(index_dir or settings.index_dir), settings)
    if settings.store != "local":  # a database store writes its own way (rag/stores)
        return _build_store(paths, settings, Path(index_dir or settings.index_dir), progress, started)
    report = index_lexical(paths, settings, index_dir)
    if report.pending:
        report.embedded = embed_pending(report.index_dir, settings, progress)
        report.reused += report.pending - report.embedded
        report.pending, report.written = 0, True
    report.seconds = time.perf_counter() - started
    return report


def _build_store(paths: list[str | Path], settings: Settings, index_dir: Path, progress: bool,
                 started: float) -> BuildReport:
    """Build a database store's index (settings.store names it): chunks, vectors and BM25 in
    the database, the manifest and chunk list in the index folder."""
    from embeddings import get_embedder

    from .stores import write_store

    with writer_lock(index_dir):
        chunks, files, skipped = load_chunks(paths, settings)
        if not chunks:
            why = f": {'; '.join(skipped[:3])}{'; …' if len(skipped) > 3 else ''}" if skipped else ""
            raise GovragError(f"nothing to index in {', '.join(map(str, paths))}{why}")
        for msg in skipped:
            print(f"skipped {msg}", file=sys.stderr)
        sources = [str(Path(p).resolve()) for p in paths]
        old_files, embedded, total = write_store(index_dir, chunks, files, get_embedder(settings.embedder), settings,
                                                 sources, progress)
    return BuildReport(index_dir, len(files), len(chunks), embedded, total - embedded,
                       sorted(set(old_files) - set(files)), sorted(set(files) - set(old_files)) if old_files else [],
                       skipped, time.perf_counter() - started)
