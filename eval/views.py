"""Which embedded views pay: retrieval hit@1 / hit@5 per language, dense-only and hybrid (the
learned ranker when its model is present, with the dense channel in both languages), for
each kind of view (a chunk whole, sentence windows by chunk kind, position and chunk length),
with the characters each kind costs to embed.

    .venv/bin/python -m eval.views [--index DIR] [--dataset FILE ...] [--json]

Every variant is a subset of the views of `rag.index.all_views(chunks, "all")`, so it reuses
the vectors of one index built with every view (`--index`, default: a temp build of settings.docs with
GOVRAG_VIEWS=all, vectors from the embedding cache). Searches are `Retriever.search(question,
k=5)`; a hit is a retrieved chunk containing the item's quote (as in eval/metrics.py).
Use only development and validation questions here (never the test splits).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from eval.metrics import load_dataset, normalise
from rag.models import Chunk

DATASETS = ["eval/dev.jsonl", "eval/bank/validation.jsonl"]
# A variant keeps a view when the rule says so; view 0 (the chunk whole) is always kept.
Rule = Callable[[Chunk, int], bool]
VARIANTS: dict[str, Rule] = {
    "chunks whole only (views none)": lambda c, j: False,
    "+ every window (views all, before)": lambda c, j: True,
    "+ windows of sections": lambda c, j: c.kind == "section",
    "+ windows of task items": lambda c, j: c.kind == "task_item",
    "+ windows of task rows": lambda c, j: c.kind == "task_row",
    "+ windows of task rows but the first (views rows)": lambda c, j: c.kind == "task_row" and j > 1,
    "+ windows of chunks > 400 chars": lambda c, j: len(c.text) > 400,
    "+ windows of chunks > 600 chars (all of them task rows)": lambda c, j: len(c.text) > 600,
    "+ windows but the first": lambda c, j: j > 1,
}


def subset(index, keep: Rule):
    """A copy of `index` holding only the views `keep` accepts (and every chunk whole)."""
    from rag.index import Index, _make_faiss, _view_ids

    seen: dict[int, int] = {}
    rows = []
    for row, pos in enumerate(index.view_chunk):
        j = seen.get(int(pos), 0)
        seen[int(pos)] = j + 1
        if j == 0 or keep(index.chunks[int(pos)], j):
            rows.append(row)
    view_chunk = index.view_chunk[rows]
    ids = _view_ids(index.chunks, view_chunk)
    vectors = index.vectors[rows]
    return Index(index.dir, index.manifest, index.chunks, vectors, _make_faiss(vectors, ids, "flat"), index.bm25,
                 view_chunk, [index.view_hashes[r] for r in rows], {int(v): i for i, v in enumerate(ids)})


class QueryMemo:
    """The embedder with each question's vector computed once for all variants."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.memo: dict[tuple[str, bool], np.ndarray] = {}

    def encode(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        for t in texts:
            if (t, is_query) not in self.memo:
                self.memo[t, is_query] = self.embedder.encode([t], is_query=is_query)[0]
        return np.stack([self.memo[t, is_query] for t in texts])


def hits(retriever, items: list[dict], channels: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """hit@1 and hit@5 per language over the answerable items."""
    out: dict[str, list[int | None]] = {}
    for item in items:
        if item["type"] == "unanswerable":
            continue
        quote = normalise(item["quote"])
        found = retriever.search(item["question"], k=5, channels=channels)
        rank = next((r for r, h in enumerate(found, 1) if quote in normalise(h.chunk.text)), None)
        out.setdefault(item["lang"], []).append(rank)
    return {lang: {"n": len(r), "hit@1": round(sum(x == 1 for x in r) / len(r), 3),
                   "hit@5": round(sum(x is not None for x in r) / len(r), 3)} for lang, r in out.items()}


def view_chars(index) -> int:
    """Characters embedded for the views of an index."""
    from rag.index import chunk_views

    from embeddings.cache import content_hash

    wanted = set(index.view_hashes)
    return sum(len(v) for c in index.chunks for v in chunk_views(c, "all") if content_hash(v) in wanted)


def full_index(settings, folder: Path):
    """An index of settings.docs with every view embedded (vectors from the cache)."""
    from rag.index import build_index, load_index

    build_index([settings.docs], replace(settings, views="all"), folder, progress=True)
    return load_index(folder)


def run(index_dir: str | None, datasets: list[str]) -> list[dict]:
    from embeddings import get_embedder
    from rag.config import load_settings
    from rag.index import load_index
    from rag.retriever import Retriever

    settings = load_settings()
    embedder = get_embedder(settings.embedder)
    with tempfile.TemporaryDirectory() as tmp:
        index = load_index(index_dir) if index_dir else full_index(settings, Path(tmp))
    items = {name: load_dataset(name) for name in datasets}
    retriever = Retriever(index, settings, QueryMemo(embedder))  # one, so its English word maps are built once
    if retriever.ranker is not None:  # "hybrid" is the learned ranker; measure it with dense in both languages
        retriever.dense_langs = {"zh", "en"}
    rows = []
    for name, keep in VARIANTS.items():
        part = retriever.index = subset(index, keep)
        row = {"variant": name, "views": len(part.view_chunk), "chars": view_chars(part)}
        for ds, its in items.items():
            row[ds] = {mode: hits(retriever, its, channels) for mode, channels in
                       (("dense", ("dense",)), ("hybrid", ("dense", "bm25")))}
        rows.append(row)
        print(f"{name}: {row['views']} views", file=sys.stderr)
    return rows


def markdown(rows: list[dict], datasets: list[str]) -> str:
    head = ["variant", "views", "chars"]
    cols = [(ds, mode, lang) for ds in datasets for mode in ("dense", "hybrid") for lang in ("zh", "en")]
    head += [f"{Path(ds).stem} {mode} {lang} @1/@5" for ds, mode, lang in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["views"]), str(r["chars"])]
        for ds, mode, lang in cols:
            m = r[ds][mode].get(lang)
            cells.append(f"{m['hit@1']:.3f} / {m['hit@5']:.3f}" if m else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", help="an index built with every view (default: build one in a temp dir)")
    p.add_argument("--dataset", action="append", help="JSON-lines questions (default: dev and validation)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    datasets = args.dataset or DATASETS
    if any("test" in Path(d).name for d in datasets):
        p.error("test splits are for the final report only, not for choosing views")
    rows = run(args.index, datasets)
    print(json.dumps(rows, ensure_ascii=False, indent=1) if args.json else markdown(rows, datasets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
