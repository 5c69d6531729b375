"""Eval dataset loading and the metrics of DESIGN.md ("Eval dataset format").

A *system* is anything with `ask(question) -> (Answer, hits in rank order)`; `score_item` turns
one (item, answer, hits) into a result record and `aggregate` turns records into metrics.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from rag.models import Answer, GovragError, Hit

TYPES = ("figure", "entity", "deadline", "status", "multi", "unanswerable", "table")
TABLE_KINDS = ("count", "list", "superlative")
REQUIRED = ("id", "question", "answer", "accept", "doc", "quote", "type")
MAX_ANSWER_CHARS = 200  # longer answers (spaces not counted) are chunk dumps, not answers
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), all whitespace removed, case-folded."""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def gold_quotes(item: dict[str, Any]) -> list[str]:
    """The item's gold quotes (`quote` and a multi-fact item's `quotes`), normalised."""
    return [normalise(q) for q in [item["quote"], *item.get("quotes", [])] if q]


def _check_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise GovragError(f"{where}: not a JSON object")
    missing = [f for f in REQUIRED if f not in item]
    if missing:
        raise GovragError(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(item["question"], str) or not item["question"].strip():
        raise GovragError(f"{where}: question must be non-empty text")
    if item["type"] not in TYPES:
        raise GovragError(f"{where}: type {item['type']!r} is not one of {', '.join(TYPES)}")
    groups = item.get("accept_all") or [item["accept"]]
    if not all(isinstance(g, list) and all(isinstance(a, str) and a.strip() for a in g) for g in groups):
        raise GovragError(f"{where}: accept / accept_all must be lists of non-empty strings")
    if item["type"] == "table":
        _check_table_item(item, where)
    elif item["type"] != "unanswerable" and not (all(groups) and item["quote"]):
        raise GovragError(f"{where}: an answerable item needs accept strings and a quote")
    if not isinstance(item.get("quotes", []), list):
        raise GovragError(f"{where}: quotes must be a list of strings")
    if item.get("lang") not in (None, "zh", "en"):
        raise GovragError(f"{where}: lang must be zh or en")
    return item


def _check_table_item(item: dict[str, Any], where: str) -> None:
    """A question over a whole table: its kind, the rows it expects and, for counts, the count."""
    if item.get("kind") not in TABLE_KINDS:
        raise GovragError(f"{where}: a table item needs kind {' | '.join(TABLE_KINDS)}")
    items = item.get("gold_items", [])
    if not isinstance(items, list) or not all(isinstance(g, str) and g for g in items):
        raise GovragError(f"{where}: gold_items must be a list of non-empty strings")
    if item["kind"] == "count" and not isinstance(item.get("gold_count"), int):
        raise GovragError(f"{where}: a count item needs an integer gold_count")


def load_dataset(path: str | Path) -> list[dict[str, Any]]:
    """Items of a JSON-lines dataset; GovragError naming the file and line on any problem."""
    from rag.english import detect_language

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GovragError(f"dataset {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GovragError(f"dataset {path} cannot be read: {exc}") from exc
    items, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):  # blank, or the file's header comment
            continue
        where = f"dataset {path} line {n}"
        try:
            item = _check_item(json.loads(line), where)
        except json.JSONDecodeError as exc:
            raise GovragError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if item["id"] in seen:
            raise GovragError(f"{where}: duplicate id {item['id']!r}")
        seen.add(item["id"])
        items.append({**item, "lang": item.get("lang") or detect_language(item["question"])})
    if not items:
        raise GovragError(f"dataset {path} has no items")
    return items


def is_correct(item: dict[str, Any], answer: Answer | None, strict: bool = False) -> bool:
    """DESIGN rule: unanswerable -> abstained; else not abstained, concise, and every accept
    group (or the accept list) matched. `strict` ignores text inside quotation marks, so a
    figure counts only when the answer states it, not when the quoted evidence holds it."""
    if answer is None:
        return False
    if item["type"] == "unanswerable":
        return answer.abstained
    if item["type"] == "table":
        return not answer.abstained and table_correct(item, answer)
    text = normalise(answer.answer)
    if answer.abstained or len(text) > MAX_ANSWER_CHARS:
        return False
    if strict:
        text = normalise(_QUOTED.sub("", answer.answer))
    groups = item.get("accept_all") or [item["accept"]]
    return all(any(normalise(a) in text for a in group) for group in groups)


_NONE = re.compile(r"^\s*(?:0\b|0项|没有|无|none\b|no\b)", re.I)


def _rows(answer: Answer) -> set[Any]:
    return {c.meta.get("row", c.meta.get("item")) for c in answer.citations} - {None}


def table_correct(item: dict[str, Any], answer: Answer) -> bool:
    """Counts exact (the first number given), lists complete (every expected row named) and
    precise (at most one row more than expected), superlatives naming every winner; an item
    that expects no row is right when the answer says none."""
    text = normalise(answer.answer)
    if item["kind"] == "superlative":
        groups = item.get("accept_all") or [item["accept"]]
        return all(any(normalise(a) in text for a in group) for group in groups)
    named = all(normalise(g) in text for g in item.get("gold_items", []))
    if item["kind"] == "count":
        first = re.search(r"\d+", answer.answer)
        return bool(first) and int(first.group()) == item["gold_count"] and named
    if not item.get("gold_items"):
        return bool(_NONE.match(answer.answer))
    return named and len(_rows(answer) - set(item.get("gold_rows", []))) <= 1


def _contains(text: str, quotes: Iterable[str]) -> bool:
    t = normalise(text)
    return any(q and normalise(q) in t for q in quotes)


def score_item(item: dict[str, Any], answer: Answer | None, hits: list[Hit],
               error: str | None = None) -> dict[str, Any]:
    """One result record: the answer, what was retrieved and what counted."""
    answerable = item["type"] not in ("unanswerable", "table")
    quotes = [item["quote"], *item.get("quotes", [])] if answerable else []
    rank = next((r for r, h in enumerate(hits, 1) if _contains(h.chunk.text, quotes[:1])), None)
    texts = {h.chunk.id: h.chunk.text for h in hits}
    citations = answer.citations if answer and answerable else []
    cited = [_contains(texts.get(c.chunk_id, c.quote), quotes) for c in citations]
    return {
        "id": item["id"], "question": item["question"], "type": item["type"], "lang": item["lang"],
        "gold": item["answer"],
        "answer": asdict(answer) if answer else None,
        "retrieved": [{"id": h.chunk.id, "score": round(h.score, 6)} for h in hits],
        "timings": dict(answer.timings) if answer else {},
        "correct": is_correct(item, answer),
        "correct_strict": is_correct(item, answer, strict=True),
        "abstained": bool(answer and answer.abstained),
        "hit_rank": rank,
        "all_quotes_top5": all(any(_contains(h.chunk.text, [q]) for h in hits[:5]) for q in quotes)
        if item["type"] == "multi" else None,
        "citations_with_quote": [sum(cited), len(cited)],
        "figures_verified": [sum(f.verified for f in answer.figures), len(answer.figures)] if answer else [0, 0],
        "list_recall": _list_recall(item, answer),
        "confidence": answer.confidence if answer else None,
        "guess_correct": _guess_correct(item, answer),
        "error": error,
    }


def _guess_correct(item: dict[str, Any], answer: Answer | None) -> bool | None:
    """Whether the reader's best answer was right, given or not (an abstention keeps its best
    guess in the notes): what a reliability chart plots against the confidence."""
    if answer is None or answer.confidence is None:
        return None
    if item["type"] == "unanswerable":
        return False
    if not answer.abstained:
        return is_correct(item, answer, strict=True)
    guess = next((n.split(":", 1)[1].strip() for n in answer.notes if n.startswith("best guess:")), "")
    groups = item.get("accept_all") or [item["accept"]]
    return all(any(normalise(a) in normalise(guess) for a in group) for group in groups)


def reliability(results: list[dict[str, Any]], bins: int = 10) -> list[dict[str, Any]]:
    """Confidence bins against the share of best answers that were right."""
    rows = [(r["confidence"], r["guess_correct"]) for r in results if r.get("confidence") is not None]
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in rows if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(inside),
                    "confidence": round(sum(c for c, _ in inside) / len(inside), 4) if inside else None,
                    "accuracy": round(sum(bool(ok) for _, ok in inside) / len(inside), 4) if inside else None})
    return out


def _list_recall(item: dict[str, Any], answer: Answer | None) -> float | None:
    """Share of a table list's expected rows the answer names (None for other items)."""
    if item["type"] != "table" or item.get("kind") != "list" or not item.get("gold_items"):
        return None
    text = normalise(answer.answer) if answer and not answer.abstained else ""
    return round(sum(normalise(g) in text for g in item["gold_items"]) / len(item["gold_items"]), 4)


def _share(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)


def group_metrics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Quality metrics of a set of result records (None where a metric has no items)."""
    ans = [r for r in results if r["type"] not in ("unanswerable", "table")]
    tables = [r for r in results if r["type"] == "table"]
    una = [r for r in results if r["type"] == "unanswerable"]
    multi = [r for r in results if r["all_quotes_top5"] is not None]
    abstained = [r for r in results if r["abstained"]]
    ranks = [r["hit_rank"] for r in ans]
    cit = [sum(r["citations_with_quote"][i] for r in ans) for i in (0, 1)]
    fig = [sum(r["figures_verified"][i] for r in results) for i in (0, 1)]
    return {
        "n": len(results),
        "accuracy": _share(sum(r["correct"] for r in results), len(results)),
        "accuracy_strict": _share(sum(r["correct_strict"] for r in results), len(results)),
        "hit@1": _share(sum(1 for k in ranks if k == 1), len(ans)),
        "hit@5": _share(sum(1 for k in ranks if k and k <= 5), len(ans)),
        "mrr": _share(sum(1 / k for k in ranks if k), len(ans)),
        "all_quotes@5": _share(sum(r["all_quotes_top5"] for r in multi), len(multi)),
        "citation_precision": _share(*cit),
        "figures_verified": _share(*fig),
        "abstain_precision": _share(sum(r["type"] == "unanswerable" for r in abstained), len(abstained)),
        "abstain_recall": _share(sum(r["abstained"] for r in una), len(una)),
        "false_abstain": _share(sum(r["abstained"] for r in ans), len(ans)),
        "list_recall_1": _share(sum(r["list_recall"] == 1.0 for r in tables if r["list_recall"] is not None),
                                sum(r["list_recall"] is not None for r in tables)),
    }


STAGES = ("translate_ms", "understand_ms", "retrieve_ms", "answer_ms", "verify_ms", "total_ms")


def latency(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50/p95 in ms of every timed stage, in pipeline order."""
    order = {s: i for i, s in enumerate(STAGES)}
    stages = sorted({k for r in results for k in r["timings"]}, key=lambda s: (order.get(s, len(STAGES) - 0.5), s))
    return {s: {"p50": percentile([r["timings"][s] for r in results if s in r["timings"]], 50),
                "p95": percentile([r["timings"][s] for r in results if s in r["timings"]], 95)}
            for s in stages}


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall, per type and per language metrics plus latency."""
    by = lambda key, order: {v: group_metrics([r for r in results if r[key] == v])  # noqa: E731
                             for v in order if any(r[key] == v for r in results)}
    return {"overall": group_metrics(results), "by_type": by("type", TYPES),
            "by_lang": by("lang", ("zh", "en")), "latency_ms": latency(results), "reliability": reliability(results)}
