"""The extractive answerer (default, no LLM): pick the clause and the figure the question asks
for, put the fact first, cite the sentence it came from; abstain when the evidence is weak.

Scoring is general, not keyed on questions: the kind of fact asked (count, amount, share,
date, unit, status, entity), how much of the question's informative (IDF-weighted) wording a
clause, its sentence and its chunk share, whether the clause is a target, a cumulative total
or an achievement as the question asks (for task rows the column it sits in says so), and
the rank of the chunk it comes from. What is put first is the asked thing itself: the figure
its own words name, the new name a which-question asks for, a date or period, a person, a
task row's lead unit or deadline cell.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

from .documents import DISTRICTS
from .english import PERIODS_EN, chinese_unit_for, format_quantity_en
from .grounding import COUNT_UNITS, UNITS, Found, find_figures
from .models import Answer, Citation, Hit
from .index import tokenize
from .retriever import Query, contradicts, question_years, understand

# What the question asks for: (type, Chinese cues, English cues); the first match wins.
ASKED = [
    ("unit", r"哪(?!位)[^,,。??]{0,6}(?:牵头|主办|负责)|哪个部门|哪个单位|哪家单位|哪些部门|哪些单位|哪几个单位|哪几个部门|牵头单位|主办单位|责任单位|牵头部门|负责单位|由谁|谁负责|谁牵头|哪个机构|哪个主办",
     r"\bwhich\b[\w\s'-]{0,40}?\b(?:department|unit|agenc|office|bureau|bod(?:y|ies)|authorit|organi[sz]ation)|\bwho\b.{0,40}\b(?:lead|responsible|in charge)"
     r"|\blead(?:ing)? (?:unit|department|agenc|bod)|\bresponsible (?:unit|department|agency|body)|\bin charge\b"),
    ("deadline", r"什么时候|何时|完成时限|时限|期限|截止|哪天|哪一天|几月|哪个月|哪[一二两三几]?年|日期|时间节点|什么时间",
     r"\bwhen\b|\bdeadline\b|\bby when\b|\bwhat date\b|\bwhich (?:month|year|date|day)\b|\bdue\b|\bwhat (?:time|period|year|month)\b(?!-)|\btime ?frame\b|\btime limit\b"),
    ("status", r"哪一步|什么阶段|什么程度|到哪一步|进展到|推进到|做到哪", r"\bwhat stage\b|\bhow far\b"),
    ("entity", r"哪些|哪几|哪[\d一二两三四五六七八九十]|哪家|哪个|哪座|哪所", r"^which\b"),
    ("share", r"比例|百分之|百分比|占比|多少%|比率|(?:率|增速|增幅|增长)[^,。??]{0,5}(?:多少|几)|(?:多少|几)个百分点",
     r"\bpercent|\bpercentage\b|\bshare\b|\brate\b|\bratio\b|\bgrowth\b|%"),
    ("amount", r"(?:多少|几)(?:钱|元|亿|万元|美元)|(?:投资|资金|金额|产值|销售额|营收|收入|贷款|融资|预算|投入|总值|利润)[^,。??]{0,6}(?:多少|几)|多少(?:投资|资金|金额)",
     r"\bhow much (?:money|funding|capital)|\binvest|\byuan\b|\b(?:us )?dollars?\b|\busd\b|\brmb\b|\bmoney\b|\bfunding\b|\bfunds?\b|\brevenue\b|\bloans?\b|\bbudget\b|\bcost\b|\bspen[dt]\b|\bsales\b|\bgdp\b|\bgross domestic\b|\bincome\b|\bprofit|\b(?:export|output|production) value\b"),
    ("count", r"多少|几个|几家|几处|几项|几条|几座|几所|几批|几次|几场|几人|几辆|数量|规模|多大|多长|多高|多重|多远",
     r"\bhow (?:many|much|large|big|long|high)\b|\bnumber of\b|\bcount\b|\bsize\b|\bwhat (?:was|is|were|are) the (?:target|number|total|quota|figure|capacity|area|length|volume|scale|throughput|output)\b"
     r"|\b(?:targets?|quotas?|capacit(?:y|ies)|throughput|limit|ceiling)\b"),
    ("status", r"完成了吗|完成没有|是否完成|是否已|进展|进度|情况如何|怎么样|什么程度|状态|落实了吗|有没有|是否|吗[??]?$",
     r"\bstatus\b|\bprogress\b|^(?:did|does|do|is|was|were|has|had|have)\b|\bhow far\b"),
    ("entity", r"哪些|哪家|哪个|哪位|哪几|哪[\d一二两三四五六七八九十]|什么|名称|是谁|叫什么|指",
     r"\bwhich\b|\bwhat\b|\bname\b|\bwho\b"),
]
_ASKED_RE = [(t, re.compile(zh), re.compile(en, re.I)) for t, zh, en in ASKED]

# Clause cues (Chinese source text) and question cues (Chinese, English) for the meaning of a figure.
MARKERS = {
    "target": (r"目标|计划|力争|预计|不低于|不少于|确保|争取|拟|要求|以上",
               r"目标|计划|要求|力争|打算|拟|预计|任务是|定的|要|将|指标",
               r"\btarget|\bplan|\bgoal|\baim|\bexpect|\bintend|\bwill\b|\bsupposed\b|\bset\b|\bquota\b"),
    "cumulative": (r"累计|总数|总量|共计|总计|累积",
                   r"累计|总数|总共|一共|总量|共计|全部|总计",
                   r"\bcumulative|\bin total\b|\btotal\b|\baltogether\b|\boverall\b|\ball\b"),
    "achieved": (r"已|完成|建成|实现|共建设|实际|截至",
                 r"实际|完成了|建成了|已经|已|实现了|了多少|做到|截至|进展|到.{0,4}季度|三季度|目前",
                 r"\bactual|\bachiev|\bcomplet|\bbuilt\b|\bhad\b|\bhandled\b|\brecruited\b|\bby q\d|\bas of\b|\bso far\b|\bprogress"),
}
_MARKERS_RE = {k: (re.compile(c), re.compile(zh), re.compile(en, re.I)) for k, (c, zh, en) in MARKERS.items()}
# Times without a number that answer "when" (年内交付, 上半年投产, 年底前完成).
_PERIOD = re.compile(r"年内|年底前?|年末|年初|年中|上半年|下半年|[一二三四]季度|月底前?|月内|近期|当年|今年")
# A name in quotation marks or title marks.
_QUOTED_NAME = re.compile(r"[“\"《]([^”\"》]{2,20})[”\"》]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# A which-question asking for more than one.
_SEVERAL = re.compile(r"哪些|哪几|哪[两二三四五六七八九十]|\bwhich (?:two|three|four|five|six|\d+)\b", re.I)
# The question insists on what was actually done, not planned.
_ACTUAL = re.compile(r"实际|\bactual(?:ly)?\b", re.I)
# Words that state where a task stands (what a status question wants to hear).
STATUS_CUES = re.compile(r"已|完成|尚未|未|正在|暂缓|推进中|完工|竣工|开业|开街|投用|投入使用|通车|下发|出台|清零|到位|达标|验收|挂牌|运营|签约")
_SUM = re.compile(r"合计|总共|一共|加起来|总和|共计|\bcombined\b|\btotal\b|\bsum\b|\baltogether\b", re.I)
_PERSON_Q = re.compile(r"谁|哪位|什么人|\bwho\b", re.I)
_TIME_LIMIT = re.compile(r"完成时限|时限|期限|截止|deadline|time limit|due", re.I)
_PUBLISH = re.compile(r"发布|印发|成文|公布|published|issued|released|dated", re.I)
_DOC_SELF = re.compile(r"这份|该文件|本文件|文件|情况表|进展表|报告|通知|文章|新闻|报道|资讯|消息|稿件|this (?:document|report|table|article|notice|list)|the (?:document|report|table|article|notice)", re.I)
_PER_UNIT = re.compile(rf"(?:每|人均|户均|亩均|平均每)({'|'.join(map(re.escape, UNITS))})|(亩|人|户)(?:产|均)")
_SENT = re.compile(r"[^。!?;!?;\n]+[。!?;!?;]*")
_CLAUSE = re.compile(r"[^,,。!?;!?;\n:]+")
# Words that say what is asked, not what it is about: they do not count as evidence.
QUESTION_WORDS = frozenset(
    "多少 哪些 哪个 哪家 哪位 哪几 什么 谁 何时 时候 时间 之前 以前 情况 如何 怎么 怎么样 是否 有没有 目前 具体 分别 "
    "提出 计划 要求 目标 一共 总共 大约 哪天 发布 文件 报告 政府 工作 政府工作报告 这项 任务 这份 里 中 年 月 "
    "主办 单位 主办单位 牵头 牵头单位 部门 负责 完成 时限 完成时限 进展 多长 多大 多高 多重 多远 多久 "
    "要 能 能够 可以 会 有 哪 哪里 哪儿 多 几 是 为 了 吗 呢 到 把 给 让 被 后 前 大约 约 左右 能达到 达到 "
    "哪几个 几个 哪几 列 列出 列了 分别 各 各是 "
    "进展表 情况表 表里 表中 文件中 报告里 报告中 文中 里面 当中 其中 "
    "那 这 那篇 这篇 篇 文章 介绍 报道 新闻 资讯 消息 稿件 提到 提及 写 说 讲 称 根据 按照 据 依据".split())  # words that point at the document itself
AMOUNT_UNITS = {"元", "美元"}
SHARE_UNITS = {"%", "个百分点", "百分点"}
QUANTITY_UNITS = COUNT_UNITS | {"人", "名", "人次", "亩", "吨", "平方米", "立方米", "公里", "千米", "米", "辆", "场",
                                "批次", "次", "床", "棵", "株", "千瓦", "兆瓦", "千伏", "斤", "公斤", "个月", "张",
                                "期", "班", "余次", "倍", "标箱", "TEU", "小时", "天", "周"}
MAX_QUOTE = 110  # characters of a quoted window
ABSTAIN_ZH = "文档中没有找到能回答这个问题的内容。"
ABSTAIN_EN = "The documents do not answer this question."


def asked_type(question: str, lang: str) -> str:
    """count | amount | share | deadline | unit | status | entity | fact."""
    for t, zh, en in _ASKED_RE:
        if (en if lang == "en" else zh).search(question):
            return t
    return "fact"


def question_markers(question: str, lang: str) -> set[str]:
    """Which meanings of a figure the question asks for: target, cumulative, achieved."""
    return {k for k, (_, zh, en) in _MARKERS_RE.items() if (en if lang == "en" else zh).search(question)}


def is_multi(question: str, lang: str) -> bool:
    """True when the question asks for two facts (a comparison, a pair, a sum)."""
    if lang == "en":
        return bool(re.search(r"\bcompare|\bversus\b|\bvs\b|\bboth\b|\bcombined\b|\brespectively\b|\band (?:how|what|which|who|when)\b"
                              r"|\bhow many \w+(?: \w+)? and how many\b|\band their\b", question, re.I))
    return bool(re.search(r"分别|相比|比较|对比|合计|加起来|总和|各是|各为|[??].+[??]|多少.*(?:和|与|以及|、).*多少", question))


_COUNTED_ZH = re.compile(rf"(?:多少|几)(?:万|亿)?(?:{'|'.join(map(re.escape, UNITS))})([^,,。??;;、]{{2,20}})")
_ASKED_UNIT_ZH = re.compile(rf"(?:多少|几)(?:万|亿)?({'|'.join(map(re.escape, UNITS))})")
_PLURAL_UNITS = re.compile(r"哪几个|哪些|几个(?:主办|牵头)|分别由|\b(?:units|departments|agencies|bodies)\b", re.I)
_SPLIT_ZH = [re.compile(r"[??;;]"), re.compile(r"[,,](?:与|和|以及|及|还有)|、(?=多少|几)"), re.compile(r"以及|与|和|及")]
_SPLIT_EN = [re.compile(r"\?"), re.compile(r",? and (?=how|what|which|who|when|the|its|in)", re.I),
             re.compile(r"\b(?:with|versus|vs\.?|against)\b", re.I), re.compile(r"\band\b", re.I)]


_PHRASE_END = frozenset("did does do is are was were will would has have had can could should in of for by to "
                        "under at on from with and or per".split())


def counted_noun(question: str) -> str:
    """The thing a Chinese how-many question counts, its head noun ("多少个学位" -> 学位,
    "多少家规范纳入统计的工业企业" -> 工业企业), or ""."""
    import jieba.posseg

    m = _COUNTED_ZH.search(question)
    head = m.group(1).split("的")[-1].strip() if m else ""
    words = list(jieba.posseg.cut(head))
    return head if words and (words[0].flag[0] in "nj" or words[0].flag == "eng") else ""  # not 多少家|拿到了批复


def asked_unit(question: str, lang: str) -> str | None:
    """The unit the question asks in (多少亩 -> 亩, "how many tonnes" -> 吨), if it names one."""
    if lang != "en":
        m = _ASKED_UNIT_ZH.search(question)
        return m.group(1) if m else None
    m = re.search(r"\bhow (?:many|much)\s+((?:[\w-]+\s*){1,5})", question, re.I)
    phrase = []  # the counted noun phrase ends before its verb or preposition
    for word in (m.group(1).split() if m else []):
        if word.lower() in _PHRASE_END:
            break
        phrase.append(word)
    unit = chinese_unit_for(phrase[-1]) if phrase else None
    if unit is None and m:  # "how much ... in US dollars"
        named = re.search(r"\bin (?:us |u\.s\. )?([a-z]+)\b", question[m.start():], re.I)
        unit = chinese_unit_for(named.group(1)) if named else None
    return unit


# A half that only asks for the sum of the other half's two figures ("两处合计多少套?").
_SUM_ONLY = re.compile(r"(?:两处|两者|二者|两项|两个|两家|两地|这两\w?|它们|其)?(?:合计|总共|一共|加起来|总和|共计)(?:是|为|有)?(?:多少|几)\w{0,3}"
                       r"|(?:and )?(?:what (?:is|was|are|were) )?(?:their|the) (?:combined )?(?:total|sum)(?: of (?:both|the two|them))?", re.I)


# Where a half's own subject ends and the predicate both halves share begins.
_PREDICATE = re.compile(r"各|分别|都|一共|共|多少|几|哪|什么|是|有|\b(?:each|respectively|both|how|what|which|who|when|did|does|do|is|are|was|were|has|have|had)\b", re.I)
_WH = re.compile(r"哪(?:\d+|[一二两三四五六七八九十几])?[个家座所项条位种类批处名只台辆]?|什么|谁")


def _anchors_zh(question: str) -> list[str]:
    """The words right before and after a Chinese question word ("引进|哪家|公司"): the answer
    sits between the same words in the source."""
    import jieba

    m = _WH.search(question)
    if not m:
        return []
    before = [w for w in jieba.lcut(question[:m.start()]) if len(w) >= 2 and w not in QUESTION_WORDS]
    after = [w for w in jieba.lcut(question[m.end():]) if len(w) >= 2 and w not in QUESTION_WORDS]
    return before[-1:] + after[:1]


def split_parts(question: str, lang: str) -> list[str]:
    """The two halves of a two-fact question (split at ?, "和/与", "and", "with" ...), else
    [question]. A half that only asks for their sum is computed, not searched: the other half
    is split instead ("A和B各多少套?两处合计多少套?" -> A, B)."""
    parts = _split_once(question, lang)
    rest = [p for p in parts if not _SUM_ONLY.fullmatch(p.strip(" ,,.??"))]
    return _split_once(rest[0], lang) if len(parts) == 2 and len(rest) == 1 else parts


def _split_once(question: str, lang: str) -> list[str]:
    for regex in (_SPLIT_EN if lang == "en" else _SPLIT_ZH):
        for m in regex.finditer(question):
            left, right = question[:m.start()].strip(" ,,"), question[m.end():].strip(" ,,??")
            if len(left) >= (12 if lang == "en" else 5) and len(right) >= (12 if lang == "en" else 5):
                return [left, right]
    return [question]


def _novelty(clause: str, q: Query) -> float:
    """The share of a clause's Chinese characters the question does not use."""
    cjk = _CJK.findall(clause)
    return sum(ch not in q.text and ch not in q.zh_text for ch in cjk) / len(cjk) if cjk else 0.0


def _states_figure(text: str) -> bool:
    return any(f.unit not in ("date", "年") for f in find_figures(text))


def _has_subject(clause: str) -> bool:
    """True when a clause names its own thing before its figure ("市级以上工业设计中心|达到24家"),
    not only a verb ("2022年共建设完成|1115处")."""
    import jieba.posseg

    figures = find_figures(clause)
    head = clause[:figures[0].start] if figures else clause
    if re.search(r"[该此其]|这[个项些]", head):  # "该工程": the thing of the clause before
        return False
    return any(p.flag.startswith("n") and len(p.word) >= 2 for p in jieba.posseg.cut(head))


def _respectively(clause: str, figures: list[Found]) -> dict[int, str]:
    """For "A、B分别发展到410家和437家": figure index -> the item it belongs to ({i: "A", j: "B"}),
    when the items before 分别 and the figures after it are as many."""
    at = clause.find("分别")
    if at < 0:
        return {}
    items = [x for x in re.split(r"[、和与及]", clause[:at]) if x.strip()]
    after = [i for i, f in enumerate(figures) if f.start > at]
    return dict(zip(after, items)) if len(items) == len(after) >= 2 else {}


def _clause_name(clause: str, known: set[str]) -> str | None:
    """A clause's quoted name the question does not say, or the clause stripped at both ends of
    the question's words (`known`) and function words, if what is left is mostly new."""
    import jieba.posseg

    quoted = [x for x in _QUOTED_NAME.findall(clause) if x.lower() not in known]
    if quoted:
        return quoted[0]
    toks = [(p.word, p.flag) for p in jieba.posseg.cut(clause)]

    def strip(i: int, left: bool) -> bool:
        w, f = toks[i]
        counted = i > 0 and toks[i - 1][1] == "m"  # 18|号: a number's unit is part of it
        return ((w.lower() in known and not (len(w) == 1 and counted))
                or f[0] in ("pcudfrmqx" if left else "pcudfr") or not re.search(r"[\w\u4e00-\u9fff]", w))

    lo, hi = 0, len(toks)
    while lo < hi and strip(lo, True):
        lo += 1
    while hi > lo and strip(hi - 1, False):
        hi -= 1
    cjk = [ch for w, _ in toks[lo:hi] for ch in w if _CJK.match(ch)]
    while lo < hi < len(toks) and toks[hi][1].startswith("n"):
        hi += 1  # 齐鲁|银行, 大任河|污水处理厂: the kind of thing named stays with the name
    name = "".join(w for w, _ in toks[lo:hi]).strip()
    new = sum(not any(ch in t for t in known if len(t) > 1) for ch in cjk)
    return name if new >= 2 and new >= 0.4 * len(cjk) and len(name) <= 30 else None


def _label_end(clause: str, f: Found) -> int:
    """Where the words that belong to a figure end: a counted thing's noun follows it
    ("1000个|停车泊位|、"), anything else is labelled before it."""
    if f.unit not in COUNT_UNITS:
        return f.end
    return f.end + len(re.split(r"[、,,和及与]|\d", clause[f.end:])[0][:8])


def _unit_fit(f: Found | None, asked: str, want_unit: str | None = None) -> float:
    """How well a figure's unit fits the asked kind of fact and unit (-1 .. 1.2)."""
    if f is None:
        return -1.0 if asked in ("count", "amount", "share") else 0.0
    if want_unit and f.unit != "date":
        if f.unit == want_unit:
            return 1.2
        if want_unit in COUNT_UNITS and f.unit in COUNT_UNITS:
            return 0.8 if want_unit == "个" else 0.1  # 多少票: 家 counts something else
        return 0.1 if not f.unit else -0.6
    if asked == "amount":
        return 1.0 if f.unit in AMOUNT_UNITS else -0.5
    if asked == "share":
        return 1.0 if f.unit in SHARE_UNITS else -0.5
    if asked == "count":
        if f.unit == "%":  # "完成了多少": a share of the work done can answer it
            return 0.3
        if f.unit in ("date", "年"):
            return -0.4
        return 1.0 if f.unit in QUANTITY_UNITS else (0.6 if f.unit in AMOUNT_UNITS else 0.2)
    if asked == "deadline":  # a calendar year, not a duration (三年)
        return 1.0 if f.unit == "date" else (0.5 if f.unit == "年" and f.value >= 1900 else -0.5)
    return 0.0


def _regions(hit: Hit) -> list[tuple[int, int, str]]:
    """(start, end, role) of a task row's columns in the chunk text: target | achieved | plan."""
    meta, text = hit.chunk.meta, hit.chunk.text
    if hit.chunk.kind != "task_row" or not meta.get("lead_unit"):
        return []
    cell = text.find(meta["lead_unit"] + meta.get("deadline", ""))
    if cell < 0:
        return []
    after = cell + len(meta["lead_unit"] + meta.get("deadline", ""))
    out = [(0, cell, "target")]
    nxt = meta.get("next_steps", "")
    plan_at = text.find(nxt[:30], after) if nxt else -1
    out.append((after, plan_at if plan_at > 0 else len(text), "achieved"))
    if plan_at > 0:
        out.append((plan_at, len(text), "plan"))
    return out


def _cell_bounds(hit: Hit) -> list[int]:
    """Offsets where a task row's glued cells meet (sentence boundaries the text lacks)."""
    meta, text = hit.chunk.meta, hit.chunk.text
    if hit.chunk.kind != "task_row" or not meta.get("lead_unit"):
        return []
    cell = text.find(meta["lead_unit"] + meta.get("deadline", ""))
    return [] if cell < 0 else [cell, cell + len(meta["lead_unit"] + meta.get("deadline", ""))]


def _sentences(hit: Hit) -> list[tuple[int, int]]:
    text = hit.chunk.text
    row = hit.chunk.meta.get("row")
    row_prefix = re.match(rf"{row}(?![\d.．、,,)%月日])", text) if hit.chunk.kind == "task_row" and row else None
    cuts = sorted(set(_cell_bounds(hit) + ([row_prefix.end()] if row_prefix else [])))
    spans = []
    for m in _SENT.finditer(text):
        s, e = m.start(), m.end()
        for c in cuts:
            if s < c < e:
                spans.append((s, c))
                s = c
        spans.append((s, e))
    if row_prefix:
        spans = [(s, e) for s, e in spans if (s, e) != (0, row_prefix.end())]
    return [(s, e) for s, e in spans if text[s:e].strip()]


@dataclass
class Candidate:
    """A scored clause: its figure (if any), the fact to put first, its quote window."""

    hit: int  # index into hits
    score: float
    quote_start: int  # offsets into the chunk text
    quote_end: int
    figure: Found | None
    lead: str
    role: str = ""
    asked: str = ""  # the kind of fact this candidate answers (per half of a two-fact question)
    name: str | None = None  # what a which-question asks for, from its quote ("" = nothing new); set by _name_of


@dataclass
class Ask:
    """What one (part of a) question asks: kind, unit, meaning, evidence weights, years, and
    the figures it already states (which are never the answer)."""

    asked: str
    unit: str | None
    markers: set[str]
    wants: str  # "target" | "achieved" | ""
    weights: dict[str, float]
    years: list[int]
    doc_years: list[int]  # the years among them that name a document
    districts: list[str]
    given: set[float]
    per_units: set[str]  # "每亩 / 人均": figures in these units are rates' denominators, not answers
    bigrams: set[str]  # the question's Chinese character pairs (phrases jieba may have split)
    person: bool = False  # the question asks who (a person's name answers it, or a unit)
    counted: str = ""  # what a Chinese how-many question counts (学位 in 多少个学位)
    others: dict[str, float] = field(default_factory=dict)  # weights of words only the other half says
    text: str = ""  # the (half of the) question
    anchors: list[str] = field(default_factory=list)  # words around the question word (zh which-questions)


class ExtractiveAnswerer:
    """Answers from the retrieved chunks alone."""

    def __init__(self, idf: Callable[[str], float], threshold: float = 0.4, threshold_en: float = 0.25,
                 corpus_text: str = "", understand: Callable[[str], Query] = understand) -> None:
        self.idf = idf
        self.understand = understand  # a part of a two-fact question -> its search terms
        self.thresholds = {"zh": threshold, "en": threshold_en}
        self.corpus_text = corpus_text  # to tell a paraphrase from a thing the documents never name

    def _unknown_nouns(self, q: Query) -> list[str]:
        """Nouns of a Chinese question that occur nowhere in the corpus (火星基地 in a corpus of
        district reports): a question about them cannot be answered from it."""
        if q.lang != "zh" or not self.corpus_text:
            return []
        import jieba
        import jieba.posseg

        return [w for w, flag in jieba.posseg.cut(q.text) if flag.startswith("n") and len(w) >= 2
                and jieba.dt.FREQ.get(w, 0) >= 20  # a real dictionary word, not a mis-cut like 区原
                and w not in QUESTION_WORDS and w not in self.corpus_text]

    # ---------------------------------------------------------------- evidence weights
    def _weights(self, q: Query) -> dict[str, float]:
        weights: dict[str, float] = {}
        for tok, w in q.bm25_tokens:
            if tok in QUESTION_WORDS or re.fullmatch(r"20\d\d", tok):
                continue  # years are judged separately
            weights[tok] = max(weights.get(tok, 0.0), w * self.idf(tok))
        return weights

    @staticmethod
    def _coverage(text: str, weights: dict[str, float]) -> float:
        """Weight of the question terms found in text; a Chinese term that is not found
        whole earns partial credit for its characters (建成 ~ 新建)."""
        low = text.lower()
        got = 0.0
        for t, w in weights.items():
            if t in low:
                got += w
            elif len(t) > 1 and re.search(r"[\u4e00-\u9fff]", t):
                got += 0.4 * w * sum(ch in low for ch in t) / len(t)
        return got

    # ---------------------------------------------------------------- candidates
    def _candidates(self, q: Query, hits: list[Hit], ask: "Ask") -> list[Candidate]:
        weights = ask.weights
        total = sum(weights.values()) or 1.0
        out: list[Candidate] = []
        for hi, hit in enumerate(hits):
            text = hit.chunk.text
            prior = 0.2 / (1 + hi)
            chunk_cov = self._coverage(hit.chunk.embed_text, weights)
            regions = _regions(hit)
            meta = hit.chunk.meta
            bonus = prior + (0.4 if ask.asked == "status" else 0.2) * chunk_cov / total  # a status is of one task
            if ask.asked == "unit" and meta.get("lead_unit"):
                bonus += 0.3
            elif ask.asked == "deadline" and meta.get("deadline") not in (None, "已完成"):
                bonus += 0.3
            if ask.years and meta.get("year") in ask.years:
                bonus += 0.1
            if contradicts(hit.chunk, ask.years, ask.districts, ask.doc_years):
                bonus -= 0.4
            for s_start, s_end in _sentences(hit):
                sent = text[s_start:s_end]
                s_cov = self._coverage(sent, weights)
                clauses = list(_CLAUSE.finditer(sent))
                for ci, cm in enumerate(clauses):
                    # a short clause reads with the one before it (its subject), unless it names the
                    # other half's own subject, or both state a figure of a thing of their own
                    other = sum(w for t, w in ask.others.items() if t in cm.group(0).lower())
                    borrow = ci and len(cm.group(0)) < 25 and not other and not (
                        _states_figure(clauses[ci - 1].group(0)) and _has_subject(cm.group(0)))
                    ctx = clauses[ci - 1].start() if borrow else cm.start()
                    clause = sent[ctx:cm.end()]
                    c_cov = self._coverage(clause, weights) - 0.5 * other
                    score = bonus + 0.3 * s_cov / total + 0.45 * c_cov / total
                    if ask.bigrams:
                        score += 0.3 * sum(g in clause for g in ask.bigrams) / len(ask.bigrams)
                    abs_start = s_start + cm.start()
                    role = next((r for lo, hi_, r in regions if lo <= abs_start < hi_), "")
                    score += self._marker_score(cm.group(0), role, ask)
                    if ask.asked == "status":  # where it stands, not the task restated
                        cue = bool(STATUS_CUES.search(cm.group(0)))
                        score += 0.15 if cue else -1.0 * (_novelty(cm.group(0), q) < 0.3)
                    if ask.anchors:  # "引进|哪家|公司": the answer sits between the same words
                        score += 0.15 * sum(a in clause for a in ask.anchors)
                    if ask.per_units:  # a rate per mu answers "每亩 / per mu", one per jin or head does not
                        rates = {a or b for a, b in _PER_UNIT.findall(clause)}
                        score += 0.2 if rates & ask.per_units else -0.2 if rates else 0.0
                    if ask.person:  # a name answers who, the title just before it (区长;张三) tells whose
                        score += 0.3 + 0.3 * self._coverage(text[max(0, s_start + ctx - 12):s_start + ctx], weights) / total \
                            if self._person(clause, q) else -0.2 if ask.asked == "entity" else 0.0
                    if ask.years and any(str(y) in clause for y in ask.years):
                        score += 0.05
                    figure = self._pick_figure(cm.group(0), ask, abs_start)
                    if ask.asked == "deadline" and figure is None and ci and len(clauses[0].group(0)) <= 12:
                        figure = self._pick_figure(clauses[0].group(0), ask, s_start + clauses[0].start())  # "2023年,青岛市印发…"
                    fit = _unit_fit(figure, ask.asked, ask.unit)
                    period = _PERIOD.search(cm.group(0)) if ask.asked == "deadline" and figure is None else None
                    if period:  # "上半年投产", "年内交付": a time without a number
                        fit = 0.5
                    if ask.asked in ("count", "amount", "share", "deadline"):
                        score += (0.5 if ask.unit else 0.3) * fit  # a unit the question names is strong evidence
                    elif figure is not None and ask.asked != "entity":  # a name answers which, not a number
                        score += 0.05
                    qs, qe = self._quote_window(text, s_start, s_end, s_start + ctx, s_start + cm.end())
                    lead = self._figure_text(text, figure) if figure is not None else period.group(0) if period else ""
                    own = cm.group(0).strip()
                    if ask.asked in ("status", "entity", "fact") and (figure is None or len(own) <= 40):
                        lead = own if len(own) <= 40 else lead  # a phrase answers these, not a number
                    out.append(Candidate(hi, score, qs, qe, figure, lead, role, ask.asked))
        return out

    @staticmethod
    def _marker_score(clause: str, role: str, ask: "Ask") -> float:
        """Reward clauses whose meaning (target / cumulative / achieved) the question asks for;
        for task rows the column says it, elsewhere the clause's own wording."""
        score = 0.0
        cue = {k: bool(c.search(clause)) for k, (c, _, _) in _MARKERS_RE.items()}
        if cue["cumulative"]:
            score += 0.15 if "cumulative" in ask.markers else -0.25
        weight = 0.45 if ask.asked == "status" else 0.2
        if role:
            if ask.wants == "target":
                score += weight if role == "target" else -0.15
            elif ask.wants == "achieved":
                score += weight if role == "achieved" else -0.15
        elif ask.wants == "target":
            score += 0.1 * cue["target"] - 0.1 * (cue["achieved"] and not cue["target"])
        elif ask.wants == "achieved":
            score += 0.1 * cue["achieved"] - 0.1 * (cue["target"] and not cue["achieved"])
        return score

    def _pick_figure(self, clause: str, ask: "Ask", offset: int) -> Found | None:
        """The figure of a clause that best fits what is asked: its unit, then how much of the
        question its own label says (the words since the previous figure, and for a counted
        thing the noun after it: "快速检测|1.8万批次", "1000个|停车泊位"). Figures the question
        itself states, ordinals (第三批) and bare years are not answers."""
        best, best_key = None, -9.0
        total = sum(ask.weights.values()) or 1.0
        figures = find_figures(clause)
        paired = _respectively(clause, figures)
        for i, f in enumerate(figures):
            if (f.unit == "年" and ask.asked != "deadline") or clause[max(0, f.start - 1):f.start] == "第":
                continue
            if any(abs(f.value - g) < 1e-9 for g in ask.given) or f.unit in ask.per_units:
                continue
            if f.value == 1 and f.text.startswith("一"):
                continue  # "一批 / 一条": an article, not a quantity
            if f.unit == "期" and f.text[0] in "一二三四五六七八九十":
                continue  # "四期": a phase of a project, not a quantity
            label = paired.get(i) or (clause[_label_end(clause, figures[i - 1]) if i else 0:f.start]
                                      + clause[f.end:_label_end(clause, f)])
            key = 0.3 * _unit_fit(f, ask.asked, ask.unit) + 0.25 * self._coverage(label, ask.weights) / total
            if key > best_key:
                best, best_key = f, key
        if best is None:
            return None
        return Found(best.text, offset + best.start, offset + best.end, best.value, best.unit)

    @staticmethod
    def _figure_text(text: str, figure: Found) -> str:
        """A figure as the source writes it, without inner spaces: a whole range
        ("2012—2013年"), a year with its part ("2022年一季度")."""
        written = text[figure.start:figure.end]
        if figure.unit == "年" and (part := re.match(rf"\s*(?:{_PERIOD.pattern})", text[figure.end:])):
            written += part.group(0)
        return re.sub(r"\s+", "", written)

    @staticmethod
    def _quote_window(text: str, s_start: int, s_end: int, c_start: int, c_end: int) -> tuple[int, int]:
        """The sentence when short, else the clause widened by whole neighbouring clauses
        (one before, one after, in turn) while it fits MAX_QUOTE."""
        if s_end - s_start <= MAX_QUOTE:
            return s_start, s_end
        bounds = [s_start] + [s_start + m.end() for m in re.finditer(r"[,,]", text[s_start:s_end])] + [s_end]
        start, end = c_start, c_end
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

    # ---------------------------------------------------------------- the answer
    def _ask(self, q: Query, text: str, weights: dict[str, float], asked: str,
             others: dict[str, float] | None = None) -> "Ask":
        markers = question_markers(text, q.lang)  # a half of a two-fact question: its own words only
        wants = ("achieved" if asked == "status" else
                 "target" if "target" in markers and "achieved" not in markers else
                 "achieved" if "achieved" in markers and "target" not in markers else "")
        given = {f.value for f in find_figures(text) if f.unit not in ("date", "年")}
        years, doc_years = question_years(text)
        if not years:
            years, doc_years = q.years, q.doc_years
        districts = [d for d, aliases in DISTRICTS.items() if any(a in text for a in aliases)] or q.districts
        per = {a or b for a, b in _PER_UNIT.findall(text)} | {
            u for word, u in (("mu", "亩"), ("capita", "人"), ("person", "人"), ("household", "户"))
            if re.search(rf"\bper {word}\b", text, re.I)}
        zh = text if q.lang == "zh" else q.zh_text
        bigrams = {zh[i:i + 2] for i in range(len(zh) - 1) if re.fullmatch(r"[\u4e00-\u9fff]{2}", zh[i:i + 2])}
        bigrams -= QUESTION_WORDS
        return Ask(asked, asked_unit(text, q.lang) or asked_unit(q.text, q.lang), markers, wants, weights,
                   years, doc_years, districts, given, per, bigrams, asked in ("entity", "unit") and bool(_PERSON_Q.search(text)),
                   counted_noun(text) if q.lang == "zh" and asked == "count" else "",
                   others or {}, text, self._anchors(text, q.lang) if asked == "entity" and not _PERSON_Q.search(text) else [])

    def _part_weights(self, parts: list[str], part: str, weights: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """For one half of a two-fact question: the evidence weights (its own words count more)
        and the weights of the other half's own subject ("A和|B|各筹集了多少套"), which count
        against a clause; a one-part question keeps its weights and has no other half."""
        if len(parts) == 1:
            return weights, {}
        own = {t for t, _ in self.understand(part).bm25_tokens}
        subjects = [{t for t, _ in self.understand(_PREDICATE.split(p)[0]).bm25_tokens} for p in parts if p != part]
        return ({t: w * (1.6 if t in own else 0.5) for t, w in weights.items()},
                {t: w for t, w in weights.items() if t not in own and all(t in sub for sub in subjects)})

    def _anchors(self, question: str, lang: str) -> list[str]:
        """Words the answer to a which-question sits next to: around 哪/什么, or the Chinese for
        the noun after "which (two)" ("which two towns" -> 镇)."""
        if lang == "zh":
            return _anchors_zh(question)
        m = re.search(r"\bwhich\s+(?:(?:two|three|four|five|six|\d+)\s+)?([a-z][\w-]+)", question, re.I)
        if not m or m.group(1).lower() in _PHRASE_END:
            return []
        return [t for t, _ in self.understand(m.group(1)).bm25_tokens[:2]]

    def answer(self, q: Query, hits: list[Hit]) -> Answer:
        """An Answer with the fact first and citations; abstains when the evidence is weak."""
        asked = asked_type(q.text, q.lang)
        if not hits:
            return self._abstain(q, hits, "no passages retrieved")
        weights = self._weights(q)
        named = re.findall(r"《([^》]+)》", q.text)
        if asked == "deadline" and _PUBLISH.search(q.text) and (named or _DOC_SELF.search(q.text)):
            i = next((i for i, h in enumerate(hits) if h.chunk.meta.get("publish_date") and (
                not named or any(n in h.chunk.meta.get("title", "") or h.chunk.meta.get("title", "") in n
                                 for n in named))), None)
            if i is not None:
                return self._meta_answer(q, hits, i, hits[i].chunk.meta["publish_date"], asked)
        parts = split_parts(q.text, q.lang) if is_multi(q.text, q.lang) else [q.text]
        chosen: list[Candidate] = []
        confidences: list[float] = []
        for part in parts:
            part_weights, others = self._part_weights(parts, part, weights)
            part_asked = asked_type(part, q.lang) if len(parts) > 1 else asked
            ask = self._ask(q, part, part_weights, asked if part_asked in ("fact", "entity") else part_asked, others)
            cands = sorted(self._candidates(q, hits, ask), key=lambda c: c.score, reverse=True)
            if ask.asked == "entity" and not ask.person and cands:  # which: a near-best clause that names something new,
                named = [(c, name) for c in cands[:5] if c.score >= cands[0].score - 0.3  # of the asked kind if it can
                         and (name := self._name_of(q, hits[c.hit], c))]
                if named:
                    cands = [max(named, key=lambda cn: any(a in cn[1] for a in ask.anchors))[0]] + cands
            pick = next((c for c in cands if all(
                (c.hit, c.quote_start) != (o.hit, o.quote_start) or c.lead != o.lead for o in chosen)
                and not any(c.figure and o.figure and abs(c.figure.value - o.figure.value) < 1e-9 for o in chosen)), None)
            if pick is not None:
                chosen.append(pick)
                confidences.append(self._confidence(q, hits, pick, ask))
        threshold = self.thresholds[q.lang]
        kept = [c for c, conf in zip(chosen, confidences) if conf >= threshold]
        if not kept:  # no half of the question is found with enough evidence
            why = f"confidence {max(confidences):.2f} below {threshold}" if confidences else "no sentence found"
            return self._abstain(q, hits, why)
        chosen, confidence = kept, min(conf for conf in confidences if conf >= threshold)
        return self._compose(q, hits, chosen, asked, confidence)

    def _confidence(self, q: Query, hits: list[Hit], best: Candidate, ask: "Ask") -> float:
        """0..1: the share of the question's informative weight found in the best chunk and,
        equally, in the quoted window with its heading; near 0 when the chunk is about another
        year or district than asked; lowered when a figure of the asked kind or meaning is
        missing."""
        chunk = hits[best.hit].chunk
        total = sum(ask.weights.values()) or 1.0
        local = chunk.text[best.quote_start:best.quote_end] + " " + (chunk.heading_path[-1] if chunk.heading_path else "")
        conf = 0.5 * self._coverage(chunk.embed_text, ask.weights) / total \
            + 0.5 * self._coverage(local, ask.weights) / total
        if contradicts(chunk, q.years, q.districts, q.doc_years) and contradicts(chunk, ask.years, ask.districts, ask.doc_years):
            conf = min(conf, 0.1)
        if ask.asked in ("count", "amount", "share") and _unit_fit(best.figure, ask.asked, ask.unit) < 0:
            conf -= 0.3 if ask.asked == "count" else 0.5  # no figure of the asked kind at all
        if ask.counted and self._coverage(chunk.text[best.quote_start:best.quote_end], {ask.counted: 1.0}) < 0.5:
            conf -= 0.2  # the passage counts something else (两处幼儿园 for 多少个学位)
        if ask.asked == "deadline" and not chunk.meta.get("deadline") and not _PERIOD.fullmatch(best.lead) and (
                best.figure is None or best.figure.unit not in ("date", "年")):
            conf -= 0.3  # asked when, and neither a date nor a deadline cell is found
        role = best.role  # a task row's column; a plan is all targets; elsewhere the clause's wording
        if not role and chunk.meta.get("doc_kind") == "task_list":
            role = "target"
        elif not role:
            cue = {k: bool(c.search(chunk.text[best.quote_start:best.quote_end])) for k, (c, _, _) in _MARKERS_RE.items()}
            role = ("target" if cue["target"] and not cue["achieved"] else
                    "achieved" if cue["achieved"] and not cue["target"] else "")
        if ask.wants and role and role != ask.wants and not (ask.wants == "target" and role == "plan"):
            conf -= 0.15
        if role == "target" and _ACTUAL.search(ask.text):  # asked what was actually done, found a plan
            conf -= 0.3
        conf -= 0.3 * len(self._unknown_nouns(q))
        if ask.asked == "entity" and not ask.person and not self._name_of(q, hits[best.hit], best):
            conf -= 0.3  # asked which, and the passage names nothing the question does not already say
        return max(0.0, min(1.0, conf))

    # ---------------------------------------------------------------- composing
    def _citation(self, n: int, hit: Hit, qs: int, qe: int) -> Citation:
        c = hit.chunk
        keep = {k: c.meta[k] for k in ("row", "item", "task", "lead_unit", "deadline", "district", "year",
                                       "section", "publish_date") if k in c.meta}
        return Citation(n, c.id, c.doc, c.meta.get("title", ""), c.heading_path, c.text[qs:qe].strip(),
                        c.start + qs, c.start + qe, round(hit.score, 6), keep)

    @staticmethod
    def _meta_lead(q: Query, cand: Candidate, hit: Hit, asked: str) -> str | None:
        """The task row's own cell when that is what is asked: the lead unit; the deadline
        when the question asks for the time limit (or no date of the event is quoted)."""
        meta = hit.chunk.meta
        if asked == "unit" and meta.get("lead_unit"):
            return meta["lead_unit"]
        if asked == "deadline" and meta.get("deadline") and meta["deadline"] != "已完成" and (
                _TIME_LIMIT.search(q.text) or (cand.figure is None or cand.figure.unit != "date") and not _PERIOD.fullmatch(cand.lead)):
            return meta["deadline"]
        if asked == "status" and meta.get("deadline") == "已完成":
            return f"已完成({cand.lead})" if cand.lead and cand.role == "achieved" else "已完成"
        return None

    def _lead_text(self, q: Query, cand: Candidate, hit: Hit, asked: str) -> str:
        meta_lead = self._meta_lead(q, cand, hit, asked)
        if meta_lead:
            return meta_lead
        if asked in ("entity", "unit") and _PERSON_Q.search(q.text):
            if name := self._person(hit.chunk.text[cand.quote_start:cand.quote_end], q):
                return name
        if asked == "entity" and (name := self._name_of(q, hit, cand)):
            return name
        f = cand.figure
        if q.lang == "en" and f is not None and f.unit not in ("date", "年") and cand.lead == re.sub(r"\s+", "", f.text):
            return format_quantity_en(f.value, f.unit, f.text)
        if q.lang == "en" and cand.lead in PERIODS_EN:
            return f"{PERIODS_EN[cand.lead]} ({cand.lead})"
        return cand.lead

    def _name_of(self, q: Query, hit: Hit, cand: Candidate) -> str | None:
        """`_new_name` of a candidate, worked out once."""
        if cand.name is None:
            cand.name = self._new_name(q, hit, cand) or ""
        return cand.name or None

    def _new_name(self, q: Query, hit: Hit, cand: Candidate) -> str | None:
        """What a which/what question asks for, from the quoted window's clauses, the one with
        most of the question's words first: a quoted name the question does not say
        (“即墨酥梨”), or the clause stripped at both ends of the question's own words and of
        function words ("推动|浙商银行、日照银行、齐鲁银行|在区内新设分支机构"), if what is left
        is mostly new. A question asking for several ("哪两个镇", "which two towns") gets the
        names of every clause that has the asked kind (移风店镇10处、田横镇10处)."""
        known = {t for t, _ in q.bm25_tokens} | set(tokenize(q.text)) | set(tokenize(q.zh_text))
        known = {t.lower() for t in known}
        anchors = self._anchors(q.text, q.lang)
        weights = self._weights(q)
        clauses = [m.group(0) for m in _CLAUSE.finditer(hit.chunk.text[cand.quote_start:cand.quote_end])]
        ranked = sorted(clauses, key=lambda c: (-sum(a in c for a in anchors), -self._coverage(c, weights)))
        for clause in ranked:
            if not self._coverage(clause, weights):
                break  # the rest say nothing the question asks about
            if name := _clause_name(clause, known):
                if anchors and _SEVERAL.search(q.text) and any(a in name for a in anchors):
                    names = [n for c in clauses if (n := _clause_name(c, known)) and any(a in n for a in anchors)]
                    return "、".join(dict.fromkeys(names))
                return name
        return None

    @staticmethod
    def _is_total(text: str, figure: Found) -> bool:
        """True when the figure's clause calls it a cumulative total (累计...): adding the other
        figure to it would count part of it twice."""
        clause = next((m.group(0) for m in _CLAUSE.finditer(text) if m.start() <= figure.start < m.end()), "")
        return bool(_MARKERS_RE["cumulative"][0].search(clause))

    @staticmethod
    def _person(text: str, q: Query) -> str | None:
        """The first personal name in the quoted text that the question does not already say
        (common words the dictionary tags as names, like 呼唤, are not names)."""
        import jieba
        import jieba.posseg

        names: list[str] = []
        glued = False  # a surname cut off its given name (周 | 海涛) is joined back
        for w, flag in jieba.posseg.cut(text):
            if flag == "nr" and glued and len(names[-1]) == 1 and len(names[-1] + w) <= 4:
                names[-1] += w
            elif flag == "nr":
                names.append(w)
            glued = flag == "nr"
        return next((w for w in names if 2 <= len(w) <= 4 and jieba.dt.FREQ.get(w, 0) < 300
                     and w not in q.text and w not in q.zh_text), None)

    def _meta_answer(self, q: Query, hits: list[Hit], i: int, value: str, asked: str) -> Answer:
        hit = hits[i]
        cit = self._citation(1, hit, 0, min(len(hit.chunk.text), 80))
        text = (f"{value}. Source: “{cit.title}”[1]" if q.lang == "en" else f"{value}[1]。依据:《{cit.title}》[1]")
        return Answer(q.text, text, [cit], [], False, "extractive", {}, q.lang, [f"asked: {asked}", "from document metadata"])

    def _compose(self, q: Query, hits: list[Hit], chosen: list[Candidate], asked: str,
                 confidence: float) -> Answer:
        citations: list[Citation] = []
        leads, quotes = [], []
        for cand in chosen:
            hit = hits[cand.hit]
            start = hit.chunk.start + cand.quote_start
            cit = next((c for c in citations if c.chunk_id == hit.chunk.id and c.start == start), None)
            if cit is None:
                cit = self._citation(len(citations) + 1, hit, cand.quote_start, cand.quote_end)
                citations.append(cit)
                quotes.append(f"“{cit.quote}”[{cit.n}]")
            lead = self._lead_text(q, cand, hit, cand.asked or asked)
            if (cand.asked or asked) == "unit" and _PLURAL_UNITS.search(q.text) and "row" in hit.chunk.meta:
                same_row = [h.chunk.meta.get("lead_unit") for h in hits if h.chunk.doc == hit.chunk.doc
                            and h.chunk.meta.get("row") == hit.chunk.meta["row"]]
                lead = "、".join(dict.fromkeys(u for u in same_row if u)) or lead
            if lead:
                leads.append(f"{lead}[{cit.n}]")
        if not leads:  # nothing to put first: the passage does not state what is asked
            return self._abstain(q, hits, "no fact of the asked kind in the best passage")
        figs = [c.figure for c in chosen if c.figure is not None]
        if len(figs) == 2 and _SUM.search(q.text) and figs[0].unit == figs[1].unit and figs[0].unit != "date" \
                and not any(self._is_total(hits[c.hit].chunk.text, c.figure) for c in chosen):
            total = figs[0].value + figs[1].value
            total_txt = f"{total:.10g}{figs[0].unit}"
            leads.append(f"in total {format_quantity_en(total, figs[0].unit, total_txt)}" if q.lang == "en" else f"合计{total_txt}")
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
    return index.idf
