"""Warm-search latency: load the index once, then time Retriever.search over many questions.

    .venv/bin/python scripts/bench_search.py [--index DIR] [--rounds N] [--k 5] [--limit N] [--json]

Questions come from eval/dev.jsonl (Chinese and English); each round searches all of them.
Prints p50 / p95 / mean / max in milliseconds (query embedding + BM25 + fusion, per search),
and the CPU time per search, which other load on the machine disturbs less.
A benchmark, not a test: run it on an idle machine and compare runs on the same machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = ["即墨区2022年新增了多少个5G基站?", "城阳区2023年绿色建筑占比目标是多少?",
            "潮海街道2020年固定资产投资完成多少?", "How long is the growing cycle of morel mushrooms?"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    i = (len(ordered) - 1) * p / 100
    lo, hi = int(i), min(int(i) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (i - lo)


def questions(path: Path) -> list[str]:
    if not path.is_file():
        return FALLBACK
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [it["question"] for it in items if it.get("question")] or FALLBACK


def main(argv: list[str] | None = None) -> int:
    from rag.config import load_settings
    from rag.models import GovragError
    from rag.retriever import Retriever

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="index folder (default: the configured one, .govrag/index)")
    parser.add_argument("--dataset", default=str(ROOT / "eval" / "dev.jsonl"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit", type=int, help="use only the first N questions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    settings = load_settings(index_dir=args.index)
    started = time.perf_counter()
    try:
        retriever = Retriever.load(settings.index_dir, settings)
    except GovragError as exc:
        print(f"bench_search: error: {exc}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - started
    qs = questions(Path(args.dataset))[: args.limit or None]
    for q in qs[:5]:  # warm-up: first calls pay for lazy initialisation
        retriever.search(q, k=args.k)
    times: list[float] = []
    cpu: list[float] = []  # CPU time of this process per search: less disturbed by other load
    for _ in range(max(1, args.rounds)):
        for q in qs:
            t, c = time.perf_counter(), time.process_time()
            retriever.search(q, k=args.k)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    result = {
        "queries": len(times), "chunks": len(retriever.index.chunks), "k": args.k,
        "p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
        "mean_ms": round(statistics.fmean(times), 2), "max_ms": round(max(times), 2),
        "cpu_p50_ms": round(percentile(cpu, 50), 2), "cpu_p95_ms": round(percentile(cpu, 95), 2),
        "load_s": round(load_s, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['queries']} warm searches over {result['chunks']} chunks (k={args.k}), "
              f"index+model load {result['load_s']} s")
        print(f"p50 {result['p50_ms']} ms   p95 {result['p95_ms']} ms   "
              f"mean {result['mean_ms']} ms   max {result['max_ms']} ms")
        print(f"CPU time per search: p50 {result['cpu_p50_ms']} ms   p95 {result['cpu_p95_ms']} ms "
              "(wall-clock numbers above grow when other processes share the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
