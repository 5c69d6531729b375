"""The answer as a person reads it: the asked fact first, then the sentence it came from, cited.

English questions get figures in English ("1,115 (1115处)") and periods translated; several
lead units of one task row are listed together; two figures of the same unit are summed when
the question asks for a total (not when one of them already is a cumulative total).
"""
from __future__ import annotations

import re

from ..english import PERIODS_EN, format_quantity_en
from ..grounding import Found
from ..models import Answer, Citation, Hit
from ..retriever import Query
from . import cues
from .candidates import Candidate

MAX_QUOTE = 110  # characters of a quoted window
ABSTAIN_ZH = "文档中没有找到能回答这个问题的内容。"
ABSTAIN_EN = "The documents do not answer this question."


def lead_text(c: Candidate, lang: str) -> str:
    """What a candidate puts first, in the question's language."""
    f = c.figure
    if lang == "en" and f is not None and f.unit not in ("date", "年") and c.kind == "figure":
        return format_quantity_en(f.value, f.unit, c.lead)
    if lang == "en" and c.lead in PERIODS_EN:
        return f"{PERIODS_EN[c.lead]} ({c.lead})"
    if c.kind == "cell_status":
        return "已完成"
    return c.lead


def quote_window(text: str, c: Candidate) -> tuple[int, int]:
    """The sentence when short, else the clause widened by whole neighbouring clauses while it
    fits MAX_QUOTE; a key-value table's key and value."""
    if c.kind == "field":
        return c.context, c.clause[1]  # the key and its value
    s_start, s_end = c.sent
    if s_end - s_start <= MAX_QUOTE:
        return s_start, s_end
    bounds = [s_start] + [s_start + m.end() for m in re.finditer(r"[,,]", text[s_start:s_end])] + [s_end]
    start, end = max(s_start, c.context), min(s_end, c.clause[1])
    grown = True
    while grown:
        grown = False
        before = [b for b in bounds if b < start]
        if before and end - before[-1] <= MAX_QUOTE:
            start, grown = before[-1], True
        after = [b for b in bounds if b > end]
        if after and after[0] - start <= MAX_QUOTE:
            end, grown = after[0], True
    return start, min(end, start + MAX_QUOTE)


def citation(n: int, hit: Hit, start: int, end: int) -> Citation:
    c = hit.chunk
    keep = {k: c.meta[k] for k in ("row", "item", "task", "lead_unit", "deadline", "district", "year",
                                   "section", "publish_date") if k in c.meta}
    return Citation(n, c.id, c.doc, c.meta.get("title", ""), c.heading_path, c.text[start:end].strip(),
                    c.start + start, c.start + end, round(hit.score, 6), keep)


def _is_total(text: str, figure: Found) -> bool:
    """True when the figure's clause calls it a cumulative total (累计…)."""
    clause = next((m.group(0) for m in cues.CLAUSE.finditer(text) if m.start() <= figure.start < m.end()), "")
    return bool(cues.MARKERS["cumulative"].clause.search(clause))


def _several_units(q: Query, hit: Hit, hits: list[Hit], lead: str) -> str:
    """All lead units of a task row when the question asks for them (哪几个主办单位)."""
    if not cues.PLURAL_UNITS.search(q.text) or "row" not in hit.chunk.meta:
        return lead
    same = [h.chunk.meta.get("lead_unit") for h in hits
            if h.chunk.doc == hit.chunk.doc and h.chunk.meta.get("row") == hit.chunk.meta["row"]]
    return "、".join(dict.fromkeys(u for u in same if u)) or lead


def compose(q: Query, hits: list[Hit], chosen: list[tuple[Candidate, str]], confidence: float) -> Answer:
    """The answer from the chosen candidate of each half (with the kind of fact it answers):
    leads first, then each quoted sentence with its citation number."""
    citations: list[Citation] = []
    leads, quotes = [], []
    for cand, asked in chosen:
        hit = hits[cand.hit]
        qs, qe = quote_window(hit.chunk.text, cand)
        cit = next((c for c in citations if c.chunk_id == hit.chunk.id and c.start == hit.chunk.start + qs), None)
        if cit is None:
            cit = citation(len(citations) + 1, hit, qs, qe)
            citations.append(cit)
            quotes.append(f"“{cit.quote}”[{cit.n}]")
        lead = lead_text(cand, q.lang)
        if cand.kind == "cell_unit" and asked == "unit":
            lead = _several_units(q, hit, hits, lead)
        leads.append(f"{lead}[{cit.n}]")
    figs = [(c.figure, hits[c.hit]) for c, _ in chosen if c.figure is not None]
    if len(figs) == 2 and cues.SUM.search(q.text) and figs[0][0].unit == figs[1][0].unit != "date" \
            and not any(_is_total(h.chunk.text, f) for f, h in figs):
        total = figs[0][0].value + figs[1][0].value
        total_txt = f"{total:.10g}{figs[0][0].unit}"
        leads.append(f"in total {format_quantity_en(total, figs[0][0].unit, total_txt)}" if q.lang == "en" else f"合计{total_txt}")
    if q.lang == "en":
        text = "; ".join(leads) + ". Source: " + " ".join(quotes)
    else:
        text = ";".join(leads) + "。依据:" + " ".join(quotes)
    return Answer(q.text, text, citations, [], False, "extractive", {}, q.lang, [f"confidence: {confidence:.2f}"],
                  confidence=round(confidence, 4))


def metadata_answer(q: Query, hits: list[Hit], i: int, value: str) -> Answer:
    """An answer from a document's metadata (its publication date)."""
    cit = citation(1, hits[i], 0, min(len(hits[i].chunk.text), 80))
    text = f"{value}. Source: “{cit.title}”[1]" if q.lang == "en" else f"{value}[1]。依据:《{cit.title}》[1]"
    return Answer(q.text, text, [cit], [], False, "extractive", {}, q.lang, ["from document metadata"])


def abstain(q: Query, hits: list[Hit], why: str, best: tuple[str, float] | None = None) -> Answer:
    """No answer: say so, and show the closest passages (`best`: the best guess and its
    probability, kept in the notes for reliability charts)."""
    passages = [citation(i + 1, h, 0, min(len(h.chunk.text), 160)) for i, h in enumerate(hits[:3])]
    notes = [f"abstained: {why}"] + ([f"best guess: {best[0]}"] if best else [])
    return Answer(q.text, ABSTAIN_EN if q.lang == "en" else ABSTAIN_ZH, [], [], True, "extractive", {}, q.lang,
                  notes, passages, confidence=round(best[1], 4) if best else None)
