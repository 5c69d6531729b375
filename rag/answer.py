"""The extractive answerer (default, no LLM): pick the sentence and the figure the question asks
for, put the fact first, cite it; abstain when the evidence is weak.

Scoring is general: which kind of fact is asked (count, amount, share, date, unit, status,
entity), how many of the question's informative terms (IDF-weighted) a clause and its
sentence share, whether the clause speaks of a target, a cumulative total or an achievement
as the question does, and the rank of the chunk it comes from.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from .english import format_quantity_en
from .grounding import COUNT_UNITS, Found, find_figures
from .index import tokenize
from .models import Answer, Citation, Hit
from .retriever import Query

# What the question asks for: (type, Chinese cues, English cues); first match wins.
ASKED = [
    ("unit", r"哪个部门|哪个单位|哪家单位|哪些部门|哪些单位|牵头单位|主办单位|责任单位|牵头部门|负责单位|由谁|谁负责|谁牵头|哪个机构",
     r"\bwhich (?:department|unit|agency|office|bureau|body|authorit)|\bwho\b|\blead(?:ing)? (?:unit|department|agency)|\bresponsible\b|\bin charge\b"),
    ("deadline", r"什么时候|何时|完成时限|时限|期限|截止|哪天|哪一天|几月|哪个月|哪一年|哪年|日期|时间节点|多久",
     r"\bwhen\b|\bdeadline\b|\bby when\b|\bwhat date\b|\bwhich (?:month|year|date)\b|\bdue\b|\bhow long\b"),
    ("status", r"完成了吗|完成没有|是否完成|是否已|进展|进度|情况如何|怎么样了|状态|落实了吗|有没有|是否|吗[??]?$",
     r"\bstatus\b|\bprogress\b|\bhas\b.*\b(?:been|completed|finished|done)\b|\bhad\b.*\b(?:been|completed|finished)\b|\bis\b.*\b(?:completed|finished|done)\b|^(?:did|does|is|was|were|has|had|have)\b"),
    ("share", r"比例|百分之|百分比|占比|多少%|比率|覆盖率|达标率|利用率|增长率|增速|增长多少|增长了多少|率(?:是|为|达到)?多少",
     r"\bpercent|\bpercentage\b|\bshare\b|\brate\b|\bratio\b|\bgrowth\b|%"),
    ("amount", r"多少钱|多少元|多少亿|多少万元|金额|资金|投资|投入|产值|销售额|收入|营收|贷款|融资|预算|多少美元",
     r"\bhow much\b|\bamount\b|\binvest|\byuan\b|\bmoney\b|\bfund|\bvalue\b|\brevenue\b|\boutput\b|\bloans?\b|\bbudget\b"),
    ("count", r"多少|几个|几家|几处|几项|几条|几座|几所|几批|几次|几场|几人|数量|规模|多大|多长|多高|多重",
     r"\bhow many\b|\bnumber of\b|\bhow (?:large|big|long|high)\b|\bcount\b|\bsize\b|\barea\b"),
    ("entity", r"哪些|哪家|哪个|哪几|什么|名称|是谁|叫什么",
     r"\bwhich\b|\bwhat\b|\bname\b|\bwho\b"),
]
_ASKED_RE = [(t, re.compile(zh), re.compile(en, re.I)) for t, zh, en in ASKED]

# Clause markers that distinguish the same figure word with different meanings.
MARKERS = {
    "target": (r"目标|计划|力争|任务|预计|不低于|不少于|确保|争取|拟|要求|年内|将", r"目标|计划|要求|力争|打算|拟|预计|任务|要|将",
               r"\btarget|\bplan|\bgoal|\baim|\bexpect|\bintend|\bwill\b|\bsupposed\b|\bset\b"),
    "cumulative": (r"累计|总数|总量|共计|达到|突破|总计", r"累计|总数|总共|一共|总量|共计|截至|全部|总",
                   r"\bcumulative|\bin total\b|\btotal\b|\baltogether\b|\boverall\b|\bso far\b"),
    "achieved": (r"已|完成|建成|实现|共建设|实际", r"实际|完成了|建成了|已经|已|实现了|了多少|做到",
                 r"\bactual|\bachiev|\bcomplet|\bbuilt\b|\bdid\b|\bhad\b|\bwere\b|\bwas\b|\bhandled\b|\brecruited\b"),
}
_MARKERS_RE = {k: (re.compile(c), re.compile(zh), re.compile(en, re.I)) for k, (c, zh, en) in MARKERS.items()}
_SENT = re.compile(r"[^。!?;!?;\n]+[。!?;!?;]*")
_CLAUSE = re.compile(r"[^,,。!?;!?;\n:]+")
AMOUNT_UNITS = {"元", "美元"}
QUANTITY_UNITS = COUNT_UNITS | {"人", "人次", "亩", "吨", "平方米", "立方米", "公里", "千米", "米", "辆", "场",
                                "批次", "次", "床", "棵", "株", "千瓦", "兆瓦", "千伏", "斤", "公斤", "个月", "张",
                                "期", "班", "余次", "倍", "标箱", "TEU", "小时", "天", "年", "周"}
MAX_QUOTE = 110  # characters of a quoted clause window
ABSTAIN_ZH = "文档中没有找到能回答这个问题的内容。"
ABSTAIN_EN = "The documents do not answer this question."


def asked_type(question: str, lang: str) -> str:
    """count | amount | share | deadline | unit | status | entity | fact."""
    for t, zh, en in _ASKED_RE:
        if (en if lang == "en" else zh).search(question):
            return t
    return "fact"


def question_markers(question: str, lang: str) -> set[str]:
    return {k for k, (_, zh, en) in _MARKERS_RE.items() if (en if lang == "en" else zh).search(question)}


def is_multi(question: str, lang: str) -> bool:
    """True when the question asks for two facts (a comparison, a pair, a sum)."""
    if lang == "en":
        return bool(re.search(r"\bcompare|\bversus\b|\bvs\b|\bboth\b|\bcombined\b|\brespectively\b"
                              r"|\band (?:how|what|which|who|when)\b", question, re.I))
    return bool(re.search(r"分别|相比|比较|对比|合计|加起来|总和|各是|各为|[??].+[??]|多少.*(?:和|与|以及).*多少",
                          question))


def _unit_fits(f: Found, asked: str) -> float:
    if asked == "amount":
        return 1.0 if f.unit in AMOUNT_UNITS else -0.5
    if asked == "share":
        return 1.0 if f.unit == "%" else -0.5
    if asked == "count":
        return 1.0 if f.unit in QUANTITY_UNITS else (0.2 if not f.unit else -0.3 if f.unit in ("%", "date") else 0.4)
    if asked == "deadline":
        return 1.0 if f.unit == "date" else -0.5
    return 0.0


@dataclass
class Candidate:
    """A scored clause: where it is, its figure (if any) and its quote window."""

    hit: int  # index into hits
    score: float
    quote_start: int  # offsets into the chunk text
    quote_end: int
    figure: Found | None
    lead: str  # the fact put first
    covered: frozenset[str]


class ExtractiveAnswerer:
    """Answers from the retrieved chunks alone."""

    def __init__(self, idf: Callable[[str], float], abstain_threshold: float = 0.35) -> None:
        self.idf = idf
        self.abstain_threshold = abstain_threshold

    # ---------------------------------------------------------------- scoring
    def _weights(self, q: Query) -> dict[str, float]:
        weights = {}
        for tok, w in q.bm25_tokens:
            weights[tok] = max(weights.get(tok, 0.0), w * self.idf(tok))
        return weights

    @staticmethod
    def _overlap(tokens: set[str], text: str, weights: dict[str, float]) -> tuple[float, set[str]]:
        hit = {t for t in weights if t in tokens or (len(t) > 1 and t in text)}
        return sum(weights[t] for t in hit), hit

    def _candidates(self, q: Query, hits: list[Hit], asked: str, markers: set[str],
                    weights: dict[str, float]) -> list[Candidate]:
        total = sum(weights.values()) or 1.0
        out: list[Candidate] = []
        for hi, hit in enumerate(hits):
            text = hit.chunk.text
            prior = 0.25 / (1 + hi)
            chunk_cov, _ = self._overlap(set(tokenize(hit.chunk.embed_text)), hit.chunk.embed_text, weights)
            for sm in _SENT.finditer(text):
                sent = sm.group(0)
                s_cov, s_hit = self._overlap(set(tokenize(sent)), sent, weights)
                clauses = list(_CLAUSE.finditer(sent))
                for ci, cm in enumerate(clauses):
                    ctx_start = clauses[ci - 1].start() if ci and len(cm.group(0)) < 25 else cm.start()
                    clause = sent[ctx_start:cm.end()]
                    c_cov, c_hit = self._overlap(set(tokenize(clause)), clause, weights)
                    score = prior + 0.15 * chunk_cov / total + 0.35 * s_cov / total + 0.5 * c_cov / total
                    for kind, (cue, _, _) in _MARKERS_RE.items():
                        if cue.search(clause):
                            score += 0.12 if kind in markers else (-0.12 if kind != "achieved" else 0)
                    figs = [f for f in find_figures(cm.group(0)) if f.unit != "年" or asked == "deadline"]
                    best_fig, fit = None, 0.0
                    for f in figs:
                        ft = _unit_fits(f, asked)
                        if best_fig is None or ft > fit:
                            best_fig, fit = f, ft
                    if asked in ("count", "amount", "share", "deadline"):
                        score += 0.3 * fit if best_fig else -0.3
                    elif best_fig is not None:
                        score += 0.05
                    qs, qe = self._quote_window(text, sm.start(), sm.end(), sm.start() + ctx_start,
                                                sm.start() + cm.end())
                    lead = ""
                    if best_fig is not None:
                        lead = best_fig.text
                        # the figure's own offsets are relative to the clause
                        best_fig = Found(best_fig.text, sm.start() + cm.start() + best_fig.start,
                                         sm.start() + cm.start() + best_fig.end, best_fig.value, best_fig.unit)
                    out.append(Candidate(hi, score, qs, qe, best_fig, lead, frozenset(s_hit | c_hit)))
        return out

    @staticmethod
    def _quote_window(text: str, s_start: int, s_end: int, c_start: int, c_end: int) -> tuple[int, int]:
        """The sentence when short, else the clause with as much context as fits MAX_QUOTE."""
        if s_end - s_start <= MAX_QUOTE:
            return s_start, s_end
        start, end = c_start, c_end
        while start > s_start and end - start < MAX_QUOTE * 0.6:
            prev = max(text.rfind(",", s_start, start - 1), text.rfind(",", s_start, start - 1))
            if prev < s_start:
                start = s_start if c_end - s_start <= MAX_QUOTE else start
                break
            start = prev + 1
        return start, min(end, start + MAX_QUOTE)

    # ---------------------------------------------------------------- row metadata answers
    @staticmethod
    def _meta_lead(hit: Hit, asked: str) -> str | None:
        meta = hit.chunk.meta
        if asked == "unit" and meta.get("lead_unit"):
            return meta["lead_unit"]
        if asked == "deadline" and meta.get("deadline") and meta["deadline"] != "已完成":
            return meta["deadline"]
        if asked == "status" and meta.get("deadline") == "已完成":
            return "已完成"
        return None

    # ---------------------------------------------------------------- answer
    def answer(self, q: Query, hits: list[Hit]) -> Answer:
        """An Answer with the fact first and citations; abstains when evidence is weak."""
        asked = asked_type(q.text, q.lang)
        if not hits:
            return self._abstain(q, hits, "no passages retrieved")
        markers = question_markers(q.text, q.lang)
        weights = self._weights(q)
        cands = self._candidates(q, hits, asked, markers, weights)
        if not cands:
            return self._abstain(q, hits, "no sentence in the retrieved passages")
        cands.sort(key=lambda c: c.score, reverse=True)
        best = cands[0]
        confidence = self._confidence(q, hits, best, asked, weights)
        if confidence < self.abstain_threshold:
            return self._abstain(q, hits, f"confidence {confidence:.2f} below {self.abstain_threshold}")
        chosen = [best]
        if is_multi(q.text, q.lang):
            second = next((c for c in cands[1:] if (c.hit, c.quote_start) != (best.hit, best.quote_start)
                           and c.lead and c.lead != best.lead and c.covered - best.covered
                           and c.score >= 0.6 * best.score), None)
            if second:
                chosen.append(second)
        return self._compose(q, hits, chosen, asked, confidence)

    def _confidence(self, q: Query, hits: list[Hit], best: Candidate, asked: str,
                    weights: dict[str, float]) -> float:
        """0..1: share of the question's informative weight found in the best chunk, less
        penalties for years/districts the question names but the evidence lacks."""
        chunk = hits[best.hit].chunk
        total = sum(weights.values()) or 1.0
        found = sum(w for t, w in weights.items() if t in chunk.embed_text.lower())
        conf = found / total
        text = chunk.embed_text + str(chunk.meta.get("year", ""))
        for y in q.years:
            if str(y) not in text and chunk.meta.get("year") != y:
                conf -= 0.3
        if q.districts and chunk.meta.get("district") and chunk.meta["district"] not in q.districts:
            from .documents import DISTRICTS

            if not any(a in chunk.text for d in q.districts for a in DISTRICTS[d]):
                conf -= 0.3
        if asked in ("count", "amount", "share") and (best.figure is None or _unit_fits(best.figure, asked) < 0):
            conf -= 0.2
        return max(0.0, min(1.0, conf))

    def _citation(self, n: int, hit: Hit, qs: int, qe: int) -> Citation:
        c = hit.chunk
        keep = {k: c.meta[k] for k in ("row", "item", "task", "lead_unit", "deadline", "district", "year",
                                       "section", "publish_date") if k in c.meta}
        return Citation(n, c.id, c.doc, c.meta.get("title", ""), c.heading_path, c.text[qs:qe].strip(),
                        c.start + qs, c.start + qe, round(hit.score, 6), keep)

    def _lead_text(self, q: Query, cand: Candidate, hit: Hit, asked: str) -> str:
        meta_lead = self._meta_lead(hit, asked)
        lead = meta_lead or cand.lead
        if q.lang == "en" and cand.figure is not None and not meta_lead:
            f = cand.figure
            if f.unit == "date":
                return f.text
            return format_quantity_en(f.value, f.unit, f.text)
        return lead

    def _compose(self, q: Query, hits: list[Hit], chosen: list[Candidate], asked: str,
                 confidence: float) -> Answer:
        citations: list[Citation] = []
        leads, quotes = [], []
        for cand in chosen:
            hit = hits[cand.hit]
            cit = next((c for c in citations if c.chunk_id == hit.chunk.id and c.start == hit.chunk.start + cand.quote_start), None)
            if cit is None:
                cit = self._citation(len(citations) + 1, hit, cand.quote_start, cand.quote_end)
                citations.append(cit)
            lead = self._lead_text(q, cand, hit, asked)
            if lead:
                leads.append(f"{lead}[{cit.n}]")
            quotes.append(f"“{cit.quote}”[{cit.n}]")
        if q.lang == "en":
            head = "; ".join(leads) if leads else "See the cited passage"
            text = f"{head}. Source: " + " ".join(quotes)
        else:
            head = ";".join(leads)
            text = (f"{head}。依据:" if head else "依据:") + " ".join(quotes)
        return Answer(q.text, text, citations, [], False, "extractive", {}, q.lang,
                      [f"asked: {asked}", f"confidence: {confidence:.2f}"])

    def _abstain(self, q: Query, hits: list[Hit], why: str) -> Answer:
        passages = [self._citation(i + 1, h, 0, min(len(h.chunk.text), 160)) for i, h in enumerate(hits[:3])]
        text = ABSTAIN_EN if q.lang == "en" else ABSTAIN_ZH
        return Answer(q.text, text, [], [], True, "extractive", {}, q.lang, [f"abstained: {why}"], passages)


def idf_from_index(index) -> Callable[[str], float]:
    """IDF of a token in the index's BM25 vocabulary (unknown tokens count as rare)."""
    n = max(1, len(index.chunks))
    vocab = index.bm25.vocab_dict
    indptr = index.bm25.scores["indptr"]

    def idf(token: str) -> float:
        tid = vocab.get(token)
        df = 0 if tid is None else int(indptr[tid + 1] - indptr[tid])
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    return idf
