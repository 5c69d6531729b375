"""What the two fitting commands share: the command line (`--index`, `--out`) around a fit that
writes a model file as plain JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from rag.config import Settings
from rag.models import GovragError

# questions over documents of another kind than the seeds (news articles), and the articles
NEWS_TRAIN, NEWS_DOCS = Path("eval/news/train.jsonl"), Path("eval/news/docs3")
NEWS_VALIDATION, NEWS_VALIDATION_DOCS = Path("eval/news/validation2.jsonl"), Path("eval/news/docs2")


def training_items(paths: list[Path]) -> list[dict[str, Any]]:
    """The items of the training files, each with its writer (the file's name when it has none:
    eval/dev.jsonl's questions are one writer's)."""
    from eval.metrics import load_dataset

    return [{**i, "writer": i.get("writer") or path.stem} for path in paths for i in load_dataset(path)]


def news_index(settings: Settings, docs: Path = NEWS_DOCS, name: str = "news-train") -> Settings:
    """Build, or bring up to date, the index of the news articles `docs` beside the main index
    (`<index>-<name>`); the settings that load it."""
    from dataclasses import replace

    from rag.index import build_index

    main = Path(settings.index_dir)
    news = replace(settings, index_dir=str(main.with_name(f"{main.name}-{name}")))
    build_index([docs], news)
    return news


def write_model(out: Path, data: dict[str, Any]) -> None:
    """The model as JSON (numbers as Python writes floats, so a refit compares bit for bit)."""
    out.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def command(prog: str, doc: str, default_out: Path, fit: Callable[[Any, Path], dict[str, Any]],
            load: Callable[[str, Any], Any], argv: list[str] | None = None) -> int:
    """`python -m PROG [--index DIR] [--out FILE]`: load what `fit` needs from the index, fit,
    print what the fit reports; errors in use exit 2 with one line."""
    from rag.config import load_settings

    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n")[0])
    p.add_argument("--index", help="index folder (default: the configured one)")
    p.add_argument("--out", default=str(default_out), help="where to write the model JSON")
    args = p.parse_args(argv)
    try:
        settings = load_settings(index_dir=args.index)
        data = fit(load(settings.index_dir, settings), Path(args.out))
    except GovragError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(data["trained"], ensure_ascii=False, indent=1))
    return 0
