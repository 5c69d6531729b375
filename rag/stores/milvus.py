"""The Milvus store: the index's vectors and BM25 postings in Milvus, through pymilvus.

`milvus_uri` is a Milvus Lite file (`./milvus.db`, embedded in the process, one process at a
time) or a Milvus server or cluster (`http://HOST:19530`, credentials in `milvus_token`).

Two collections per index, `<name>_chunks` and `<name>_views`:
    chunks: pk (chunk key), doc, kind, district, year, doc_kind, text, terms, sparse, version
    views:  pk (chunk key#view), chunk (chunk key), doc, kind, district, year, doc_kind, vector, version
A chunk is embedded as several views (the whole chunk and sentence windows; see
rag.index.chunk_views) and its dense score is its best view's, while BM25 must count each chunk
once (document frequencies and lengths), so views and chunks are rows of two collections.

BM25: `terms` holds our own jieba tokens (rag.index.bm25_terms), each written as an ASCII word
(`term_word`), and Milvus's BM25 function indexes it with the `standard` analyzer. So Milvus
Lite and a server split it alike (neither re-segments Chinese) and it ranks as the local store
does (same tokens, k1=1.5, b=0.75, Lucene IDF), and the words the Retriever and the reader know
(vocabulary, IDF, kept in the index folder) are the ones Milvus matches. Query tokens carry
weights (an English question's translations): Milvus multiplies each query term's score by how
often it occurs in the query (Lite does; a server is expected to: its BM25 function counts the
query's tokens too), so a weight becomes a repeat count (`query_text`: weights in
40ths of the largest, divided by their common divisor; all-equal weights, as in every Chinese
question, are exact).

Versions: each row records the index version that wrote it. A build inserts only the rows of new
or changed chunks (a key is the chunk id plus a hash of its content and the embedder), under
version V+1, then publishes the index folder's new version (manifest, chunks.jsonl, terms.json)
by switching CURRENT, then deletes the rows of chunks that left. Readers search only
`version <= V` of the version they loaded and ignore keys their chunk list does not hold, so a
half-written update is never read; a build first deletes rows newer than the live version (left
by a build that died).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, reduce
from math import gcd
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException

from ..config import Settings
from ..index import (FORMAT_VERSION, _write_json, best_chunks, bm25_terms, chunk_views, idf, new_version_dir,
                     publish_version, read_chunks, write_chunks)
from ..models import Chunk, GovragError
from . import StoredChunks, live_manifest

MAX_TOPK = 16384  # Milvus's limit on results per search
BATCH_ROWS = 500  # rows per insert request (well under gRPC's message limit)
WEIGHT_STEPS = 40  # query-token weights are quantised to 1/40 of the largest
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults, as the local store uses
HNSW_PARAMS = {"M": 32, "efConstruction": 200}  # as the local FAISS HNSW (M=32); ef=128 at search
OWNER = "govrag.index"  # collection property: the index folder that writes the collection
FILTER_FIELDS = {"doc": str, "kind": str, "district": str, "doc_kind": str, "year": int}
_META_LENGTHS = {"doc": 1024, "kind": 64, "district": 256, "doc_kind": 64}
_TEXT_BYTES = 65535
_SERVER = re.compile(r"^(https?|tcp|grpc)://", re.I)

for _name in ("pymilvus", "milvus_lite"):  # their errors reach the user as one GovragError line
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def term_word(token: str) -> str:
    """A BM25 token as an ASCII word that every Milvus analyzer keeps whole (a 64-bit hash)."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return "w" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def query_text(weighted_tokens: list[tuple[str, float]]) -> tuple[str, float]:
    """(BM25 query text, factor turning Milvus's score into the weighted score): each token's
    word repeated in proportion to its weight (see the module docstring)."""
    top = max(w for _, w in weighted_tokens)
    repeats = [max(1, round(WEIGHT_STEPS * w / top)) for _, w in weighted_tokens]
    common = reduce(gcd, repeats)
    words = [" ".join([term_word(t)] * (r // common)) for (t, _), r in zip(weighted_tokens, repeats)]
    return " ".join(words), top * common / WEIGHT_STEPS


def filter_expr(version: int, filters: dict[str, Any] | None) -> str:
    """A Milvus boolean expression: rows of index version <= `version` matching the metadata
    filters (doc, kind, district, doc_kind, year; other keys are left to the Retriever)."""
    parts = [f"version <= {int(version)}"]
    for key, wanted in (filters or {}).items():
        kind = FILTER_FIELDS.get(key)
        if kind is None:
            continue
        values = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
        if kind is int:
            literals = [str(int(v)) for v in values if re.fullmatch(r"-?\d+", str(v).strip())]
        else:  # Milvus string literals know \" and \\ only; no metadata holds control characters
            literals = ['"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                        for v in values if not re.search(r"[\x00-\x1f]", str(v))]
        parts.append(f"{key} in [{', '.join(literals)}]")
    return " and ".join(parts)


def resolve_uri(uri: str) -> str:
    """A server URI as given, or a Milvus Lite file as an absolute path; GovragError otherwise."""
    uri = uri.strip()
    if _SERVER.match(uri):
        if "@" in urlsplit(uri).netloc:
            raise GovragError("put Milvus credentials in milvus_token (GOVRAG_MILVUS_TOKEN), not in the URI")
        return uri
    if not uri.endswith(".db"):
        raise GovragError(f"Milvus URI {uri!r} is neither a Milvus Lite file (a path ending in .db) "
                          "nor a server address (http://HOST:19530)")
    return str(Path(uri).expanduser().resolve())


@contextmanager
def _calls(uri: str, doing: str) -> Iterator[None]:
    """Milvus errors as one GovragError line naming the URI (never the token)."""
    try:
        yield
    except MilvusException as exc:
        raise GovragError(f"Milvus at {uri} failed while {doing}: {exc.message}") from exc


def connect(uri: str, token: str = "", timeout: float = 10.0) -> MilvusClient:
    """A client for a resolved URI; GovragError naming the URI when it cannot be reached."""
    lite = not _SERVER.match(uri)
    try:
        if lite:  # Lite's in-process server answers idle keep-alive pings with GOAWAY (too_many_pings)
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(uri=uri, timeout=timeout, grpc_options={"grpc.keepalive_permit_without_calls": False})
        return MilvusClient(uri=uri, token=token, timeout=timeout)
    except MilvusException as exc:
        why = ("it is in use by another process (Milvus Lite allows one at a time; stop the other "
               "govrag process or use a Milvus server) or cannot be created there") if lite else exc.message
        raise GovragError(f"cannot open Milvus at {uri}: {why}") from exc
    except OSError as exc:
        raise GovragError(f"cannot open Milvus at {uri}: {exc.strerror or exc}") from exc


def _names(prefix: str) -> tuple[str, str]:
    return f"{prefix}_chunks", f"{prefix}_views"


def default_collection(index_dir: Path) -> str:
    """The collection name prefix of an index folder: govrag_<hash of its absolute path>."""
    return "govrag_" + hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:12]


def chunk_key(chunk: Chunk, embedder_id: str) -> str:
    """A chunk's row key: its id plus a hash of its content and the embedder (a changed chunk
    or another model gives a new key, so rows are only ever inserted and deleted)."""
    data = json.dumps([chunk.to_dict(), embedder_id], ensure_ascii=False, sort_keys=True)
    return f"{chunk.id}@{hashlib.sha256(data.encode()).hexdigest()[:16]}"


def _clip(text: str, limit: int = _TEXT_BYTES) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _meta(chunk: Chunk) -> dict[str, Any]:
    year = chunk.meta.get("year")
    return {"doc": chunk.doc, "kind": chunk.kind, "district": chunk.meta.get("district"),
            "year": int(year) if isinstance(year, int) else None, "doc_kind": chunk.meta.get("doc_kind")}


def _create(client: MilvusClient, name: str, dim: int | None, dense: str, owner: str) -> None:
    """One of the two collections (views when `dim` is given, else chunks)."""
    schema = client.create_schema()
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=1024)
    for meta, length in _META_LENGTHS.items():
        schema.add_field(meta, DataType.VARCHAR, max_length=length, nullable=meta in ("district", "doc_kind"))
    schema.add_field("year", DataType.INT64, nullable=True)
    schema.add_field("version", DataType.INT64)
    index = client.prepare_index_params()
    if dim:
        schema.add_field("chunk", DataType.VARCHAR, max_length=1024)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        if dense == "hnsw":
            index.add_index("vector", index_type="HNSW", metric_type="IP", params=HNSW_PARAMS)
        else:
            index.add_index("vector", index_type="FLAT", metric_type="IP")
    else:
        schema.add_field("text", DataType.VARCHAR, max_length=_TEXT_BYTES)
        schema.add_field("terms", DataType.VARCHAR, max_length=_TEXT_BYTES, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"], output_field_names=["sparse"]))
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong",
                             properties={OWNER: owner})


def _vector_dim(client: MilvusClient, name: str) -> int | None:
    for f in client.describe_collection(name)["fields"]:
        if f["name"] == "vector":
            return int(f["params"]["dim"])
    return None


def _count(client: MilvusClient, name: str, expr: str) -> int:
    return int(client.query(name, filter=expr, output_fields=["count(*)"])[0]["count(*)"])


def _delete_keys(client: MilvusClient, names: tuple[str, str], keys: list[str]) -> None:
    """Delete the rows of these chunk keys from both collections."""
    for i in range(0, len(keys), BATCH_ROWS):
        batch = keys[i:i + BATCH_ROWS]
        client.delete(names[0], ids=batch)
        client.delete(names[1], filter=f"chunk in {json.dumps(batch, ensure_ascii=False)}")


def _sweep(client: MilvusClient, names: tuple[str, str], version: int, keep: set[str]) -> None:
    """Delete every row of version <= `version` whose chunk key is not in `keep` (what a build
    that died between publishing and deleting left behind)."""
    for name, key in zip(names, ("pk", "chunk")):
        it = client.query_iterator(name, filter=f"version <= {version}", output_fields=[key], batch_size=4096)
        stale: set[str] = set()
        while batch := it.next():
            stale.update(r[key] for r in batch if r[key] not in keep)
        it.close()
        _delete_keys(client, names, sorted(stale))


def _document_frequencies(previous: dict[str, int], added: list[list[str]], removed: list[list[str]]
                          ) -> dict[str, int]:
    """Token -> number of chunks holding it: the previous table minus the chunks that left plus
    the chunks that came (so only those are tokenised)."""
    df = dict(previous)
    for sign, group in ((-1, removed), (1, added)):
        for terms in group:
            for t in set(terms):
                df[t] = df.get(t, 0) + sign
    return {t: n for t, n in df.items() if n > 0}


def _previous_terms(old_dir: Path | None, old: dict[str, Any], gone: set[str]
                    ) -> tuple[dict[str, int], list[list[str]]] | None:
    """(previous document frequencies, BM25 terms of the chunks that left), or None when the
    previous version has no readable terms table."""
    try:
        previous = json.loads((old_dir / "terms.json").read_text(encoding="utf-8"))
        left = [c for c in read_chunks(old_dir) if f"{c.id}@{old['chunk_hashes'].get(c.id)}" in gone]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return previous, [bm25_terms(c) for c in left]


def write_index(index_dir: Path, chunks: list[Chunk], files: dict[str, str], embedder: Any, settings: Settings,
                sources: list[str], progress: bool = False, vectors: dict[str, np.ndarray] | None = None
                ) -> tuple[dict[str, str], int, int]:
    """Bring the collections up to `chunks`, embedding only the views of new or changed chunks
    (through the embedding cache, or from `vectors` by view text when given, as the scale
    benchmark does), and publish the index folder's new version. Returns (previous documents,
    texts embedded now, views of all chunks)."""
    from embeddings.cache import EmbeddingCache

    uri = resolve_uri(settings.milvus_uri)
    prefix = settings.milvus_collection or default_collection(index_dir)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", prefix):
        raise GovragError(f"Milvus collection name {prefix!r} must be letters, digits and underscores")
    names = _names(prefix)
    old, old_dir = live_manifest(index_dir)
    same = old.get("store") == "milvus" and old.get("milvus", {}).get("uri") == uri \
        and old["milvus"].get("collection") == prefix
    live = int(old["milvus"]["version"]) if same else 0
    old_keys = {f"{cid}@{h}" for cid, h in old.get("chunk_hashes", {}).items()} if same else set()
    client = connect(uri, settings.milvus_token)
    with _calls(uri, f"writing collections {names[0]} and {names[1]}"):
        dense = _open_for_writing(client, uri, names, embedder.dim, settings.faiss_index, str(index_dir.resolve()))
        for name in names:  # rows of a build that died before publishing
            client.delete(name, filter=f"version > {live}")
        keys = [chunk_key(c, embedder.id) for c in chunks]
        new = [(k, c) for k, c in zip(keys, chunks) if k not in old_keys]
        texts = [chunk_views(c) for _, c in new]
        terms = [bm25_terms(c) for _, c in new]
        flat = list(dict.fromkeys(t for views in texts for t in views))
        if vectors is not None:
            by_text, embedded = vectors, 0
        else:
            fresh, embedded = EmbeddingCache(settings.cache_dir, embedder).embed(flat, progress) if flat else (None, 0)
            by_text = dict(zip(flat, fresh)) if flat else {}
        version = live + 1
        _insert(client, names, new, texts, terms, by_text, version, progress)
        for name in names:
            client.flush(name)
    gone = sorted(old_keys - set(keys))
    previous = _previous_terms(old_dir, old, set(gone)) if old_keys else None
    if previous:
        df = _document_frequencies(previous[0], terms, previous[1])
    else:  # counted afresh (tokenising every chunk unless all are new)
        df = _document_frequencies({}, terms if len(new) == len(chunks) else [bm25_terms(c) for c in chunks], [])
    views = _publish(index_dir, chunks, keys, df, embedder, files, sources,
                     {"uri": uri, "collection": prefix, "version": version, "dense_index": dense})
    with _calls(uri, "deleting the rows of removed and changed chunks"):
        _delete_keys(client, names, gone)
        if _count(client, names[0], f"version <= {version}") != len(chunks) \
                or _count(client, names[1], f"version <= {version}") != views:
            _sweep(client, names, version, set(keys))
    return old.get("documents", {}), embedded, views


def _open_for_writing(client: MilvusClient, uri: str, names: tuple[str, str], dim: int, dense: str, owner: str) -> str:
    """Create the collections, or check that the existing ones are this index folder's and hold
    vectors of this dimension, and load them; returns the dense index type (flat | hnsw)."""
    for name, vector_dim in zip(names, (None, dim)):
        if not client.has_collection(name):
            _create(client, name, vector_dim, dense, owner)
            continue
        holder = client.describe_collection(name).get("properties", {}).get(OWNER)
        if holder != owner:
            raise GovragError(f"Milvus collection {name} at {uri} belongs to the index at {holder}; "
                              "choose another name (--collection / milvus_collection) or drop it")
        if vector_dim and _vector_dim(client, name) != vector_dim:
            raise GovragError(f"Milvus collection {name} at {uri} holds {_vector_dim(client, name)}-dimensional "
                              f"vectors, the embedder gives {dim}; choose another collection name or index folder")
        client.load_collection(name)
    return str(client.describe_index(names[1], "vector")["index_type"]).lower()


def _publish(index_dir: Path, chunks: list[Chunk], keys: list[str], df: dict[str, int], embedder: Any,
             files: dict[str, str], sources: list[str], milvus: dict[str, Any]) -> int:
    """Write and switch to the index folder's new version; returns the number of views."""
    tmp = new_version_dir(index_dir)
    write_chunks(tmp, chunks)
    _write_json(tmp / "terms.json", df)
    views = sum(len(chunk_views(c)) for c in chunks)
    publish_version(index_dir, tmp, {
        "format_version": FORMAT_VERSION,
        "store": "milvus",
        "embedder": embedder.id,
        "dim": int(embedder.dim),
        "chunk_count": len(chunks),
        "view_count": views,
        "documents": files,
        "sources": sources,
        "chunk_hashes": {k.rsplit("@", 1)[0]: k.rsplit("@", 1)[1] for k in keys},
        "milvus": milvus,
    })
    return views


def _insert(client: MilvusClient, names: tuple[str, str], new: list[tuple[str, Chunk]], texts: list[list[str]],
            terms: list[list[str]], by_text: dict[str, np.ndarray], version: int, progress: bool) -> None:
    """Insert the chunk rows and view rows of new chunks under `version`, in batches."""
    from tqdm import tqdm

    with tqdm(total=len(new), disable=not progress or len(new) < BATCH_ROWS, desc="milvus", unit="chunk") as bar:
        for i in range(0, len(new), BATCH_ROWS):
            batch = new[i:i + BATCH_ROWS]
            client.insert(names[0], [{"pk": k, **_meta(c), "text": _clip(c.text),
                                      "terms": _clip(" ".join(map(term_word, words))), "version": version}
                                     for (k, c), words in zip(batch, terms[i:i + BATCH_ROWS])])
            client.insert(names[1], [{"pk": f"{k}#{j}", "chunk": k, **_meta(c), "version": version,
                                      "vector": by_text[view].tolist()}
                                     for (k, c), views in zip(batch, texts[i:i + BATCH_ROWS])
                                     for j, view in enumerate(views)])
            bar.update(len(batch))


@dataclass
class MilvusIndex(StoredChunks):
    """A loaded Milvus index: the chunk list, terms and manifest from the index folder, the
    searches in Milvus (implements rag.stores.IndexStore)."""

    dir: Path
    manifest: dict[str, Any]
    chunks: list[Chunk]
    df: dict[str, int]
    client: Any
    uri: str
    names: tuple[str, str]
    version: int
    key_pos: dict[str, int] = field(default_factory=dict)

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        """The corpus's BM25 tokens (token -> id)."""
        return {t: i for i, t in enumerate(self.df)}

    def idf(self, token: str) -> float:
        """BM25 IDF of a token in this index (an unknown token counts as rare)."""
        return idf(len(self.chunks), self.df.get(token, 0))

    def bm25_search(self, weighted_tokens: list[tuple[str, float]], n: int,
                    filters: dict[str, Any] | None = None) -> list[tuple[int, float]]:
        """(chunk position, weighted BM25 score) of the n best chunks matching `filters`."""
        known = [(t, w) for t, w in weighted_tokens if t in self.df and w > 0]
        if not known or n <= 0:
            return []
        text, factor = query_text(known)
        hits = self._search(self.names[0], text, "sparse", min(n, MAX_TOPK), filters, {}, ["pk"])
        # Milvus Lite reports a BM25 score as a negative distance, a server as the score; both
        # multiply the term scores by k1 + 1 (bm25s does not)
        factor /= BM25_PARAMS["bm25_k1"] + 1
        return [(self.key_pos[h["pk"]], abs(float(h["distance"])) * factor) for h in hits if h["pk"] in self.key_pos]

    def dense_search(self, query_vec: np.ndarray, n: int,
                     filters: dict[str, Any] | None = None) -> list[tuple[int, float]]:
        """(chunk position, cosine of its best view) for the n nearest chunks matching `filters`."""
        n = min(n, len(self.chunks))
        if n <= 0:
            return []
        per_chunk = max(2, round(int(self.manifest["view_count"]) / len(self.chunks)) + 1)
        limit = min(MAX_TOPK, n * per_chunk)
        params = {"ef": max(128, limit)} if self.manifest["milvus"].get("dense_index") == "hnsw" else {}
        hits = self._search(self.names[1], np.asarray(query_vec, dtype=np.float32).tolist(), "vector",
                            limit, filters, params, ["chunk", "vector"])
        hits = [h["entity"] for h in hits if h["entity"]["chunk"] in self.key_pos]
        if not hits:
            return []
        # Milvus picks the candidates; they are scored as the local store scores them, so the
        # fitted models read the same numbers whichever store and CPU computed the search
        return best_chunks([self.key_pos[h["chunk"]] for h in hits],
                           np.array([h["vector"] for h in hits], dtype=np.float32), query_vec, n)

    def _search(self, name: str, data: Any, field_name: str, limit: int, filters: dict[str, Any] | None,
                params: dict[str, Any], output: list[str]) -> list[dict[str, Any]]:
        with _calls(self.uri, f"searching {name}"):
            return self.client.search(name, data=[data], anns_field=field_name, limit=limit, output_fields=output,
                                      filter=filter_expr(self.version, filters), search_params={"params": params})[0]


def open_index(version_dir: Path, manifest: dict[str, Any], settings: Settings, fix: str) -> MilvusIndex:
    """Load a Milvus index folder and check its collections against the manifest."""
    index_dir = version_dir.parent
    info = manifest.get("milvus") or {}
    uri, prefix, version = info.get("uri", ""), info.get("collection", ""), info.get("version")
    if not (uri and prefix and isinstance(version, int)):
        raise GovragError(f"index at {index_dir} names no Milvus collection; {fix}")
    try:
        chunks = read_chunks(version_dir)
        df = json.loads((version_dir / "terms.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GovragError(f"index at {index_dir} cannot be read ({type(exc).__name__}); {fix}") from exc
    client = connect(uri, settings.milvus_token)
    names = _names(prefix)
    expected = (manifest.get("chunk_count"), manifest.get("view_count"))
    with _calls(uri, f"opening collections {names[0]} and {names[1]}"):
        missing = [n for n in names if not client.has_collection(n)]
        if missing:
            raise GovragError(f"Milvus at {uri} has no collection {missing[0]} (index at {index_dir}); {fix}")
        for name in names:
            client.load_collection(name)
        dim = _vector_dim(client, names[1])
        counts = tuple(_count(client, n, f"version <= {version}") for n in names)
    if dim != manifest.get("dim") or len(chunks) != expected[0] or counts[0] < expected[0] or counts[1] < expected[1]:
        raise GovragError(f"index at {index_dir} is out of step with Milvus at {uri} (manifest {expected[0]} chunks / "
                          f"{expected[1]} views of dimension {manifest.get('dim')}, chunks file {len(chunks)}, "
                          f"collections {counts[0]} / {counts[1]} of dimension {dim}); {fix}")
    key_pos = {f"{c.id}@{manifest['chunk_hashes'][c.id]}": i for i, c in enumerate(chunks)}
    return MilvusIndex(version_dir, manifest, chunks, df, client, uri, names, version, key_pos)
