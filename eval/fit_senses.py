"""Count which dictionary senses English questions mean, for ordering CC-CEDICT's translations.

    python -m eval.fit_senses [--index DIR] [--out rag/data/en_zh_senses.tsv]

For every English question of the bank's train split and of eval/dev.jsonl that the documents
answer, each English word or phrase CC-CEDICT translates is looked up as the retriever does
(its headwords resolved to the corpus's words); for each of its first KEEP headwords, "asked"
counts the question and "held" counts it when the search tokens of the passages holding the
gold quote (with their titles and headings) include the headword's. "train" is asked about training (培训) here, not railways
(列车); "fine" about penalties (罚款), not quality (优良). The test split is never read.

The counts are written as a TSV (key, headword, asked, held), read by rag.english.Senses.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rag.english import Senses

from eval.fitting import command, training_items
from eval.metrics import gold_quotes, normalise

TRAIN = [Path("eval/bank/train.jsonl"), Path("eval/dev.jsonl")]
KEEP = 8  # headwords counted per word: the ones that could reach the query's three


def gold_words(chunks: list, items: list[dict[str, Any]]) -> list[set[str]]:
    """Per item: the search tokens (title, headings, body) of the passages holding a gold quote."""
    from rag.index import tokenize

    texts = [normalise(c.text) for c in chunks]
    words: dict[int, set[str]] = {}
    out = []
    for item in items:
        quotes = gold_quotes(item)
        held = [i for i, t in enumerate(texts) if any(q in t for q in quotes)]
        out.append(set().union(*(words.setdefault(i, set(tokenize(chunks[i].embed_text))) for i in held)))
    return out


def count(items: list[dict[str, Any]], golds: list[set[str]], vocabulary) -> dict[str, dict[str, tuple[int, int]]]:
    """(asked, held) per English key and corpus headword over the items."""
    from rag.english import dictionary_senses
    from rag.index import tokenize

    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for item, gold in zip(items, golds):
        seen: set[tuple[str, str]] = set()
        for key, heads in dictionary_senses(item["question"], vocabulary):
            for head in heads[:KEEP]:
                if (key, head) in seen:
                    continue
                seen.add((key, head))
                asked, held = counts.setdefault(key, {}).get(head, (0, 0))
                counts[key][head] = (asked + 1, held + int(set(tokenize(head) or [head]) <= gold))
    return counts


def answerable_english(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["lang"] == "en" and i["type"] not in ("unanswerable", "table")]


def folds(retriever, items: list[dict[str, Any]]) -> dict[str, Senses]:
    """Per writer, the sense counts of the other writers' questions: a training question is
    translated as a question from an unseen writer would be (the trainers' features must not
    see senses counted on their own answers)."""
    english = answerable_english(items)
    golds = gold_words(retriever.index.chunks, english)
    return {w: Senses(count([i for i in english if i["writer"] != w], [g for i, g in zip(english, golds) if i["writer"] != w],
                            retriever.vocabulary))
            for w in sorted({i["writer"] for i in items})}


def write(out: Path, counts: dict[str, dict[str, tuple[int, int]]], sources: list[Path]) -> None:
    lines = [f"# dictionary senses asked (key, corpus headword, questions asking, answers holding it); "
             f"fitted by eval.fit_senses on {' '.join(map(str, sources))}"]
    for key in sorted(counts):
        for head, (asked, held) in sorted(counts[key].items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0])):
            lines.append(f"{key}\t{head}\t{asked}\t{held}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fit(retriever, out: Path) -> dict[str, Any]:
    items = answerable_english(training_items(TRAIN))
    counts = count(items, gold_words(retriever.index.chunks, items), retriever.vocabulary)
    write(out, counts, TRAIN)
    return {"trained": {"questions": len(items), "keys": len(counts),
                        "pairs": sum(len(v) for v in counts.values())}}


def main(argv: list[str] | None = None) -> int:
    from rag.english import SENSES_PATH
    from rag.retriever import Retriever

    return command("eval.fit_senses", __doc__, SENSES_PATH, fit, Retriever.load, argv)


if __name__ == "__main__":
    sys.exit(main())
