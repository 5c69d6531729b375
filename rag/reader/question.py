"""What a question asks: the kind of fact, its unit and meaning (target / cumulative / achieved),
the informative words and their weights, years, districts, figures it already states, and for
two-fact questions its halves."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..documents import DISTRICTS
from ..english import chinese_unit_for
from ..grounding import find_figures
from ..retriever import Query, question_years
from . import cues


def asked_type(question: str, lang: str) -> str:
    """count | amount | share | deadline | unit | status | entity | meaning | fact."""
    for t, zh, en in cues.ASKED:
        if (en if lang == "en" else zh).search(question):
            return t
    return "fact"


def question_markers(question: str, lang: str) -> set[str]:
    """Which meanings of a figure the question asks for: target, cumulative, achieved."""
    return {k for k, m in cues.MARKERS.items() if (m.en if lang == "en" else m.zh).search(question)}


def is_multi(question: str, lang: str) -> bool:
    """True when the question asks for two facts (a comparison, a pair, a sum)."""
    return bool((cues.MULTI_EN if lang == "en" else cues.MULTI_ZH).search(question))


def split_parts(question: str, lang: str) -> list[str]:
    """The two halves of a two-fact question (split at ?, "和/与", "and", "with" ...), else
    [question]. A half that only asks for their sum is computed, not searched: the other half
    is split instead ("A和B各多少套?两处合计多少套?" -> A, B)."""
    parts = _split_once(question, lang)
    rest = [p for p in parts if not cues.SUM_ONLY.fullmatch(p.strip(" ,,.??"))]
    return _split_once(rest[0], lang) if len(parts) == 2 and len(rest) == 1 else parts


def _split_once(question: str, lang: str) -> list[str]:
    shortest = 12 if lang == "en" else 5
    for regex in (cues.SPLIT_EN if lang == "en" else cues.SPLIT_ZH):
        for m in regex.finditer(question):
            left, right = question[:m.start()].strip(" ,,"), question[m.end():].strip(" ,,??")
            if len(left) >= shortest and len(right) >= shortest:
                return [left, right]
    return [question]


def counted_noun(question: str) -> str:
    """The thing a Chinese how-many question counts, its head noun ("多少个学位" -> 学位), or ""."""
    import jieba.posseg

    m = cues.COUNTED_ZH.search(question)
    head = m.group(1).split("的")[-1].strip() if m else ""
    words = list(jieba.posseg.cut(head))
    return head if words and (words[0].flag[0] in "nj" or words[0].flag == "eng") else ""


def asked_unit(question: str, lang: str) -> str | None:
    """The unit the question asks in (多少亩 -> 亩, "how many tonnes" -> 吨), if it names one."""
    if lang != "en":
        m = cues.ASKED_UNIT_ZH.search(question)
        return m.group(1) if m else None
    m = re.search(r"\bhow (?:many|much)\s+((?:[\w-]+\s*){1,5})", question, re.I)
    phrase = []  # the counted noun phrase ends before its verb or preposition
    for word in (m.group(1).split() if m else []):
        if word.lower() in cues.PHRASE_END:
            break
        phrase.append(word)
    unit = chinese_unit_for(phrase[-1]) if phrase else None
    if unit is None and m:  # "how much ... in US dollars"
        named = re.search(r"\bin (?:us |u\.s\. )?([a-z]+)\b", question[m.start():], re.I)
        unit = chinese_unit_for(named.group(1)) if named else None
    return unit


def anchors_zh(question: str) -> list[str]:
    """The words right before and after a Chinese question word ("引进|哪家|公司"): the answer
    sits between the same words in the source."""
    import jieba

    m = cues.WH_ZH.search(question)
    if not m:
        return []
    before = [w for w in jieba.lcut(question[:m.start()]) if len(w) >= 2 and w not in cues.QUESTION_WORDS]
    after = [w for w in jieba.lcut(question[m.end():]) if len(w) >= 2 and w not in cues.QUESTION_WORDS]
    return before[-1:] + after[:1]


@dataclass
class Ask:
    """What one (half of a) question asks, with the evidence weights of its words."""

    text: str
    lang: str
    asked: str
    unit: str | None
    markers: set[str]
    wants: str  # "target" | "achieved" | ""
    weights: dict[str, float]
    years: list[int]
    doc_years: list[int]
    districts: list[str]
    given: set[float]  # figures the question states (never the answer)
    per_units: set[str]  # 每亩 / 人均: figures in these units are a rate's denominator
    bigrams: set[str]  # the question's Chinese character pairs
    person: bool = False  # asks who
    counted: str = ""  # what a Chinese how-many question counts
    others: dict[str, float] = field(default_factory=dict)  # words only the other half says
    anchors: list[str] = field(default_factory=list)  # words around the question word
    several: bool = False  # asks for more than one name
    actual: bool = False  # insists on what was actually done

    @property
    def total(self) -> float:
        return sum(self.weights.values()) or 1.0


def evidence_weights(q: Query, idf: Callable[[str], float]) -> dict[str, float]:
    """IDF weight of each informative question token (question words and years excluded)."""
    weights: dict[str, float] = {}
    for tok, w in q.bm25_tokens:
        if tok in cues.QUESTION_WORDS or re.fullmatch(r"20\d\d", tok):
            continue
        weights[tok] = max(weights.get(tok, 0.0), w * idf(tok))
    return weights


def build_ask(q: Query, text: str, weights: dict[str, float], asked: str, anchors: list[str],
              others: dict[str, float] | None = None) -> Ask:
    """The Ask of question `q` (or of one half `text` of it)."""
    markers = question_markers(text, q.lang)
    wants = ("achieved" if asked == "status" else
             "target" if "target" in markers and "achieved" not in markers else
             "achieved" if "achieved" in markers and "target" not in markers else "")
    given = {f.value for f in find_figures(text) if f.unit not in ("date", "年")}
    years, doc_years = question_years(text)
    if not years:
        years, doc_years = q.years, q.doc_years
    districts = [d for d, aliases in DISTRICTS.items() if any(a in text for a in aliases)] or q.districts
    per = {a or b for a, b in cues.PER_UNIT.findall(text)} | {
        u for word, u in cues.PER_UNIT_EN.items() if re.search(rf"\bper {word}\b", text, re.I)}
    zh = text if q.lang == "zh" else q.zh_text
    bigrams = {zh[i:i + 2] for i in range(len(zh) - 1) if re.fullmatch(r"[\u4e00-\u9fff]{2}", zh[i:i + 2])}
    person = asked in ("entity", "unit") and bool(cues.PERSON_Q.search(text))
    return Ask(text, q.lang, asked, asked_unit(text, q.lang) or asked_unit(q.text, q.lang), markers, wants,
               weights, years, doc_years, districts, given, per, bigrams - cues.QUESTION_WORDS, person,
               counted_noun(text) if q.lang == "zh" and asked == "count" else "", others or {},
               anchors if asked == "entity" and not person else [], bool(cues.SEVERAL.search(q.text)),
               bool(cues.ACTUAL.search(text)))


def part_weights(parts: list[str], part: str, weights: dict[str, float],
                 understand: Callable[[str], Query]) -> tuple[dict[str, float], dict[str, float]]:
    """For one half of a two-fact question: the evidence weights (its own words count more)
    and the weights of the other half's own subject, which count against a clause."""
    if len(parts) == 1:
        return weights, {}
    own = {t for t, _ in understand(part).bm25_tokens}
    subjects = [{t for t, _ in understand(cues.PREDICATE.split(p)[0]).bm25_tokens} for p in parts if p != part]
    return ({t: w * (1.6 if t in own else 0.5) for t, w in weights.items()},
            {t: w for t, w in weights.items() if t not in own and all(t in sub for sub in subjects)})
