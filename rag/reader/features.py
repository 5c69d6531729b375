"""What is known about each candidate answer, as numbers for the fitted model.

Features come in families: the question (language, asked kind, meaning wanted), the passage
(rank and retrieval scores, whether it shares the first passage's document, overlap with the
question and the most specific question term it lacks, year / district agreement, kind of chunk,
task-row cells), the sentence and the clause (IDF-weighted overlap and the most specific term
missing, character pairs, words around the question word, target / cumulative / achieved cues in
the clause and in the sentence's earlier clauses, task-row column, status cues, a sentence naming
only other years than the question's, novelty), and the candidate itself (its kind, how its unit
fits the asked kind and unit, how much of the question its own label says, whether the question
already states it or a figure in it: "the 12 parks are which?" is not answered by "12 parks were
built"; how many items it lists, whether it ends as an organisation's or a place's name does).
`FEATURES` names them in order; the model file is checked against that list.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..grounding import COUNT_UNITS, find_figures
from ..models import Hit
from ..retriever import Query, contradicts
from . import cues
from .candidates import Candidate
from .question import Ask

KINDS = ("figure", "period", "person", "name", "definition", "clause", "list", "cell_unit", "cell_deadline",
         "cell_status", "field")
ASKED = cues.ASKED_TYPES
ROLES = ("target", "achieved", "plan")

FEATURES: tuple[str, ...] = (
    # the question
    "q_en", *(f"q_asked_{t}" for t in ASKED), "q_has_unit", "q_wants_target", "q_wants_achieved",
    "q_cumulative", "q_actual", "q_person", "q_several", "q_half", "q_terms", "q_unknown_nouns", "q_time_limit",
    "q_lead_cell",
    # the passage
    "h_rank", "h_rank_inv", "h_top_doc", "h_bm25", "h_dense", "h_fused", "h_cov", "h_missing", "h_heading_cov",
    "h_contradicts",
    "h_year", "h_district", "h_task_row", "h_task_item", "h_task_list", "h_has_lead", "h_has_deadline", "h_done",
    # the sentence and the clause
    "s_cov", "s_spec", "s_missing", "s_len", "s_year_other", "s_target_before", "s_achieved_before", "c_cov", "c_spec",
    "c_own_cov", "c_local_cov", "c_other", "c_bigrams", "c_target_cue", "c_achieved_cue", "c_cumulative_cue",
    *(f"c_role_{r}" for r in ROLES), "c_role_match", "c_role_mismatch", "c_status_cue", "c_novelty", "c_anchors",
    "c_per_match", "c_per_other", "c_title_cov", "c_year", "c_counted", "c_borrowed", "c_len",
    # the candidate
    *(f"k_{k}" for k in KINDS), "f_fit", "f_unit_same", "f_given", "f_date", "f_year", "f_share", "f_amount",
    "f_countable", "f_label_cov", "f_position", "f_figures", "lead_len", "lead_new", "lead_known",
    "lead_given", "lead_anchor", "lead_digits", "lead_items", "lead_name_end", "cell_asked",
)
INDEX = {name: i for i, name in enumerate(FEATURES)}


def coverage(text: str, weights: dict[str, float]) -> float:
    """Weight of the question terms found in text; a Chinese term not found whole earns partial
    credit for its characters (建成 ~ 新建)."""
    low = text.lower()
    chars = None
    got = 0.0
    for t, w in weights.items():
        if t in low:
            got += w
        elif len(t) > 1 and cues.CJK.match(t):
            chars = chars if chars is not None else set(low)
            got += 0.4 * w * sum(ch in chars for ch in t) / len(t)
    return got


def unit_fit(unit: str | None, asked: str, want: str | None) -> float:
    """How well a figure's unit fits the asked kind of fact and unit (-1 .. 1.2); None: no figure."""
    if unit is None:
        return -1.0 if asked in ("count", "amount", "share", "deadline") else 0.0
    if want and unit != "date":
        if unit == want:
            return 1.2
        if want in COUNT_UNITS and unit in COUNT_UNITS:
            return 0.8 if want == "个" else 0.1
        return 0.1 if not unit else -0.6
    if asked == "amount":
        return 1.0 if unit in cues.AMOUNT_UNITS else -0.5
    if asked == "share":
        return 1.0 if unit in cues.SHARE_UNITS else -0.5
    if asked == "count":
        if unit == "%":
            return 0.3
        if unit in ("date", "年"):
            return -0.4
        return 1.0 if unit in cues.QUANTITY_UNITS else (0.6 if unit in cues.AMOUNT_UNITS else 0.2)
    if asked == "deadline":
        return 1.0 if unit == "date" else (0.5 if unit == "年" else -0.5)
    return 0.0


def _label(clause: str, figures: list, i: int) -> str:
    """The words that belong to figure i of a clause: since the previous figure, and for a
    counted thing the noun after it ("快速检测|1.8万批次", "1000个|停车泊位")."""
    def end(f) -> int:
        return f.end if f.unit not in COUNT_UNITS else f.end + len(re.split(r"[、,,和及与]|\d", clause[f.end:])[0][:8])
    f = figures[i]
    return clause[end(figures[i - 1]) if i else 0:f.start] + clause[f.end:end(f)]


def missing(text: str, weights: dict[str, float]) -> float:
    """The weight of the question's most specific term that text lacks, as a share of its largest
    weight (credit for a term's characters as in `coverage`): one place or period a passage does
    not name (蓝村街道, 二季度) says more than the total it covers."""
    low = text.lower()
    chars = set(low)
    top = max(weights.values(), default=0.0) or 1.0
    worst = 0.0
    for t, w in weights.items():
        if t in low:
            continue
        found = 0.4 * sum(ch in chars for ch in t) / len(t) if len(t) > 1 and cues.CJK.match(t) else 0.0
        worst = max(worst, w * (1.0 - found))
    return worst / top


def _novelty(text: str, q: Query) -> float:
    cjk = cues.CJK.findall(text)
    return sum(ch not in q.text and ch not in q.zh_text for ch in cjk) / len(cjk) if cjk else 0.0


def specific_weights(weights: dict[str, float], hits: list[Hit]) -> dict[str, float]:
    """Each question term's weight times the share of the retrieved passages that lack it: a
    term they all hold (an event's name in every paragraph of one article) does not tell their
    sentences apart."""
    texts = [h.chunk.text.lower() for h in hits]
    return {t: w * sum(t not in x for x in texts) / len(texts) for t, w in weights.items()} if texts else {}


@dataclass
class QuestionContext:
    """What features.py needs to know about one (half of a) question."""

    q: Query
    ask: Ask
    half: bool  # one half of a two-fact question
    unknown_nouns: int
    specific: dict[str, float] = field(default_factory=dict)  # `specific_weights` over the retrieved passages
    covered: dict[tuple[str, bool], float] = field(default_factory=dict)  # many candidates share a text

    def cover(self, text: str, specific: bool = False) -> float:
        """`coverage` of text by this question's weights (or its specific weights, as a share of
        their total), computed once per text."""
        if (text, specific) not in self.covered:
            self.covered[text, specific] = (coverage(text, self.specific) / (sum(self.specific.values()) or 1.0)
                                            if specific else coverage(text, self.ask.weights))
        return self.covered[text, specific]


def _hit_features(hits: list[Hit], ctx: QuestionContext) -> list[dict[str, float]]:
    q, ask = ctx.q, ctx.ask
    total = ask.total
    top_bm25 = max((h.raw.get("bm25", 0.0) for h in hits), default=0.0) or 1.0
    top_fused = max((h.score for h in hits), default=0.0) or 1.0
    out = []
    for rank, h in enumerate(hits):
        meta, embedded = h.chunk.meta, h.chunk.embed_text  # a property that joins title, headings and text
        out.append({
            "h_rank": rank, "h_rank_inv": 1 / (1 + rank), "h_top_doc": float(h.chunk.doc == hits[0].chunk.doc),
            "h_bm25": h.raw.get("bm25", 0.0) / top_bm25,
            "h_dense": h.raw.get("dense", 0.0), "h_fused": h.score / top_fused,
            "h_cov": ctx.cover(embedded) / total, "h_missing": missing(embedded, ask.weights),
            "h_heading_cov": ctx.cover(" ".join(h.chunk.heading_path[1:])) / total,
            "h_contradicts": float(contradicts(h.chunk, q.years, q.districts, q.doc_years)
                                   and contradicts(h.chunk, ask.years, ask.districts, ask.doc_years)),
            "h_year": float(h.chunk.about_year(ask.years)),
            "h_district": float(bool(ask.districts) and meta.get("district") in ask.districts),
            "h_task_row": float(h.chunk.kind == "task_row"), "h_task_item": float(h.chunk.kind == "task_item"),
            "h_task_list": float(meta.get("doc_kind") == "task_list"), "h_has_lead": float(bool(meta.get("lead_unit"))),
            "h_has_deadline": float(meta.get("deadline") not in (None, "已完成")),
            "h_done": float(meta.get("deadline") == "已完成"),
        })
    return out


def _question_features(ctx: QuestionContext) -> dict[str, float]:
    ask = ctx.ask
    f = {f"q_asked_{t}": float(ask.asked == t) for t in ASKED}
    f.update({"q_en": float(ask.lang == "en"), "q_has_unit": float(bool(ask.unit)),
              "q_wants_target": float(ask.wants == "target"), "q_wants_achieved": float(ask.wants == "achieved"),
              "q_cumulative": float("cumulative" in ask.markers), "q_actual": float(ask.actual),
              "q_person": float(ask.person), "q_several": float(ask.several), "q_half": float(ctx.half),
              "q_terms": float(len(ask.weights)), "q_unknown_nouns": float(ctx.unknown_nouns),
              "q_time_limit": float(bool(cues.TIME_LIMIT.search(ask.text))),
              "q_lead_cell": float(bool(cues.LEAD_CELL.search(ask.text)))})
    return f


def section_role(headings: list[str], head: int = 24) -> str:
    """"target" for a section under a plan heading (2021年主要工作安排), "achieved" under a review
    (工作回顾, 计划完成情况), judged by the deepest heading with a cue (its first `head` characters:
    a heading may run on into its first sentence); "" when no heading says."""
    for heading in reversed(headings):
        start = heading[:head]
        if cues.REVIEW_HEADING.search(start):
            return "achieved"
        if cues.PLAN_HEADING.search(start):
            return "target"
    return ""


def _sentence_features(text: str, c: Candidate, hit: Hit, ctx: QuestionContext) -> dict[str, float]:
    ask = ctx.ask
    sent = text[c.sent[0]:c.sent[1]]
    heading = hit.chunk.heading_path[-1] if hit.chunk.heading_path else ""
    s_cov = ctx.cover(sent)
    years = {int(y) for y in cues.YEAR.findall(sent)}
    return {"s_cov": s_cov / ask.total, "s_spec": ctx.cover(sent, True), "s_len": math.log1p(len(sent)),
            "s_missing": missing(" ".join([*hit.chunk.heading_path, sent]), ask.weights),
            "s_year_other": float(bool(ask.years) and bool(years) and not years & set(ask.years)),
            "c_local_cov": (s_cov + ctx.cover(heading)) / ask.total,
            "c_counted": float(bool(ask.counted) and ask.counted in sent)}


def _clause_features(text: str, c: Candidate, hit: Hit, ctx: QuestionContext) -> dict[str, float]:
    ask, q = ctx.ask, ctx.q
    total = ask.total
    own = text[c.clause[0]:c.clause[1]]
    read = text[c.context:c.clause[1]]
    other = sum(w for t, w in ask.others.items() if t in own.lower())
    cue = {k: bool(m.clause.search(own)) for k, m in cues.MARKERS.items()}
    before = text[c.sent[0]:c.clause[0]]  # the sentence's earlier clauses: "2023年将力争完成A, B突破160万"
    role = c.role or (section_role(hit.chunk.heading_path) if hit.chunk.kind == "section" else "") or (
        "target" if hit.chunk.meta.get("doc_kind") == "task_list" else "")
    rates = {a or b for a, b in cues.PER_UNIT.findall(read)}
    title = text[max(0, c.context - 12):c.context]
    return {
        "c_cov": (ctx.cover(read) - 0.5 * other) / total, "c_spec": ctx.cover(read, True),
        "c_own_cov": ctx.cover(own) / total,
        "c_other": other / total,
        "c_bigrams": sum(g in read for g in ask.bigrams) / len(ask.bigrams) if ask.bigrams else 0.0,
        "c_target_cue": float(cue["target"]), "c_achieved_cue": float(cue["achieved"]),
        "c_cumulative_cue": float(cue["cumulative"]),
        "s_target_before": float(bool(cues.MARKERS["target"].clause.search(before))),
        "s_achieved_before": float(bool(cues.MARKERS["achieved"].clause.search(before))),
        **{f"c_role_{r}": float(role == r) for r in ROLES},
        "c_role_match": float(bool(ask.wants) and role == ask.wants),
        "c_role_mismatch": float(bool(ask.wants) and bool(role) and role != ask.wants),
        "c_status_cue": float(bool(cues.STATUS.search(own))), "c_novelty": _novelty(own, q),
        "c_anchors": float(sum(a in read for a in ask.anchors)),
        "c_per_match": float(bool(rates & ask.per_units)), "c_per_other": float(bool(rates - ask.per_units)),
        "c_title_cov": ctx.cover(title) / total,
        "c_year": float(any(str(y) in read for y in ask.years)),
        "c_borrowed": float(c.context < c.clause[0]), "c_len": math.log1p(len(own)),
    }


def _candidate_features(text: str, c: Candidate, ctx: QuestionContext) -> dict[str, float]:
    ask = ctx.ask
    f: dict[str, float] = {f"k_{k}": float(c.kind == k) for k in KINDS}
    fig = c.figure
    if fig is not None:
        own = text[c.clause[0]:c.clause[1]]
        figures = find_figures(own)
        i = next((j for j, g in enumerate(figures) if c.clause[0] + g.start == fig.start), 0)
        f.update({"f_fit": unit_fit(fig.unit, ask.asked, ask.unit), "f_unit_same": float(fig.unit == ask.unit),
                  "f_given": float(any(abs(fig.value - g) < 1e-9 for g in ask.given)),
                  "f_date": float(fig.unit == "date"), "f_year": float(fig.unit == "年"),
                  "f_share": float(fig.unit in cues.SHARE_UNITS), "f_amount": float(fig.unit in cues.AMOUNT_UNITS),
                  "f_countable": float(fig.unit in cues.QUANTITY_UNITS),
                  "f_label_cov": ctx.cover(_label(own, figures, i)) / ask.total if figures else 0.0,
                  "f_position": float(i), "f_figures": float(len(figures))})
    elif c.kind in ("cell_deadline", "cell_unit", "cell_status"):
        asked = (c.kind, ask.asked) in (("cell_deadline", "deadline"), ("cell_unit", "unit"), ("cell_status", "status"))
        named = c.kind != "cell_deadline" or bool(cues.TIME_LIMIT.search(ask.text))  # the time limit, not a date
        f["f_fit"] = (1.0 if named else 0.3) if asked else -0.5
    elif c.kind == "person":
        f["f_fit"] = 1.0 if ask.person else -0.5
    else:
        f["f_fit"] = unit_fit(None, ask.asked, ask.unit) if c.kind != "period" else 0.5
    lead = c.lead.lower()
    restates = bool(ask.given) and any(abs(g.value - v) < 1e-9 for g in find_figures(c.lead) for v in ask.given)
    f.update({"lead_len": math.log1p(len(c.lead)), "lead_new": _novelty(c.lead, ctx.q),
              "lead_known": float(lead in ctx.q.text.lower() or lead in ctx.q.zh_text.lower()),
              "lead_given": float(restates),
              "lead_anchor": float(any(a in c.lead for a in ask.anchors)),
              "lead_digits": float(any(ch.isdigit() for ch in c.lead)),
              "lead_items": float(c.lead.count("、")), "lead_name_end": float(c.lead.endswith(cues.NAME_ENDS)),
              "cell_asked": float((c.kind, ask.asked) in (("cell_unit", "unit"), ("cell_deadline", "deadline"),
                                                          ("cell_status", "status")))})
    return f


def feature_matrix(cands: list[Candidate], hits: list[Hit], ctx: QuestionContext) -> np.ndarray:
    """One row of FEATURES per candidate (float32)."""
    X = np.zeros((len(cands), len(FEATURES)), dtype=np.float32)
    if not cands:
        return X
    qf = _question_features(ctx)
    hf = _hit_features(hits, ctx)
    sentence_cache: dict[tuple[int, int], dict[str, float]] = {}
    clause_cache: dict[tuple[int, int, int], dict[str, float]] = {}
    for row, c in enumerate(cands):
        text = hits[c.hit].chunk.text
        key = (c.hit, c.context, c.clause[1])
        if key not in clause_cache:
            if (c.hit, c.sent[0]) not in sentence_cache:
                sentence_cache[c.hit, c.sent[0]] = _sentence_features(text, c, hits[c.hit], ctx)
            clause_cache[key] = {**sentence_cache[c.hit, c.sent[0]], **_clause_features(text, c, hits[c.hit], ctx)}
        values = {**qf, **hf[c.hit], **clause_cache[key], **_candidate_features(text, c, ctx)}
        for name, v in values.items():
            X[row, INDEX[name]] = v
    return X


__all__ = ["FEATURES", "QuestionContext", "coverage", "feature_matrix", "missing", "specific_weights", "unit_fit"]
