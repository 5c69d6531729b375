"""Every span in the retrieved passages that could answer a question.

A passage is cut into sentences (a task row's glued cells are cut apart too) and each sentence
into clauses; a short clause reads with the one before it (its subject). Each clause offers
candidates of every kind: each figure in it, a time without a number (年内, 上半年), a personal
name, a new name (quoted, or the clause stripped of the question's words), a definition's
explanation, and the clause itself; a task row also offers its lead-unit, deadline and status
cells, and a page's key-value table (发文字号 | 青城政办发〔2023〕18号 |) each value. What is good
about a candidate is judged in features.py, by the fitted model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..grounding import Found, find_figures
from ..models import Hit
from . import cues


@dataclass
class Candidate:
    """One possible answer: where it sits in hit `hit` (offsets into the chunk text) and what
    would be put first."""

    hit: int  # index into the hits
    kind: str  # figure | period | person | name | definition | clause | list | cell_unit | cell_deadline | cell_status | field
    lead: str  # the fact to put first
    sent: tuple[int, int]  # the sentence
    clause: tuple[int, int]  # the clause itself
    context: int  # where the clause's reading starts (the clause before, when it borrows its subject)
    figure: Found | None = None  # offsets into the chunk text
    role: str = ""  # a task row's column: target | achieved | plan


def regions(hit: Hit) -> list[tuple[int, int, str]]:
    """(start, end, column) of a task row's cells in the chunk text: target | achieved | plan."""
    meta, text = hit.chunk.meta, hit.chunk.text
    if hit.chunk.kind != "task_row" or not meta.get("lead_unit"):
        return []
    cell = text.find(meta["lead_unit"] + meta.get("deadline", ""))
    if cell < 0:
        return []
    after = cell + len(meta["lead_unit"] + meta.get("deadline", ""))
    nxt = meta.get("next_steps", "")
    plan_at = text.find(nxt[:30], after) if nxt else -1
    out = [(0, cell, "target"), (after, plan_at if plan_at > 0 else len(text), "achieved")]
    return out + ([(plan_at, len(text), "plan")] if plan_at > 0 else [])


def sentences(hit: Hit) -> list[tuple[int, int]]:
    """Sentence spans of a chunk; a task row is also cut where its glued cells meet and after
    its row number."""
    text, meta = hit.chunk.text, hit.chunk.meta
    row = meta.get("row")
    prefix = re.match(rf"{row}(?![\d.．、,,)%月日])", text) if hit.chunk.kind == "task_row" and row else None
    cells = regions(hit)
    cuts = [s for s, _, _ in cells[1:]] + [e for _, e, _ in cells[:1]]
    cuts = sorted(set(cuts + ([prefix.end()] if prefix else [])))
    spans = []
    for m in cues.SENTENCE.finditer(text):
        s, e = m.start(), m.end()
        for c in cuts:
            if s < c < e:
                spans.append((s, c))
                s = c
        spans.append((s, e))
    if prefix:
        spans = [(s, e) for s, e in spans if (s, e) != (0, prefix.end())]
    return [(s, e) for s, e in spans if text[s:e].strip()]


def states_figure(text: str) -> bool:
    return any(f.unit not in ("date", "年") for f in find_figures(text))


@lru_cache(maxsize=8192)
def _pos(text: str, hmm: bool = False) -> tuple[tuple[str, str], ...]:
    """Words and part-of-speech tags (the HMM, slower, only to find unknown personal names)."""
    import jieba.posseg

    return tuple((p.word, p.flag) for p in jieba.posseg.cut(text, HMM=hmm))


def has_subject(clause: str) -> bool:
    """True when a clause names its own thing before its figure ("市级以上工业设计中心|达到24家"),
    not only a verb ("2022年共建设完成|1115处") or a reference back (该工程)."""
    figures = find_figures(clause)
    head = clause[:figures[0].start] if figures else clause
    if cues.ANAPHOR.search(head):
        return False
    return any(flag.startswith("n") and len(word) >= 2 for word, flag in _pos(head))


def persons(text: str) -> list[str]:
    """Personal names in text, in order: those the tagger knows (a surname cut off its given name
    is joined back; common words the dictionary tags as names are not names), and the name right
    after a title (选手马欣然, 研究员阿不都热合曼·买买提) that starts with a common surname or is
    transliterated."""
    import jieba

    tokens = _pos(text, True)
    starts = [0]
    for word, _ in tokens:
        starts.append(starts[-1] + len(word))
    found: dict[int, str] = {}  # where each name starts -> the name
    last = None  # where the name the tagger found in the word before starts
    for i, (word, flag) in enumerate(tokens):
        if flag != "nr":
            last = None
        elif last is not None and len(found[last]) == 1 and len(found[last] + word) <= 4:
            found[last] += word
        else:
            found[starts[i]], last = word, starts[i]
        if word in cues.PERSON_TITLES and (name := _titled(text[starts[i + 1]:], tokens[i + 1:i + 3])):
            found[starts[i + 1]] = max(found.get(starts[i + 1], ""), name, key=len)
    return [w for _, w in sorted(found.items())
            if "·" in w or (2 <= len(w) <= 4 and jieba.dt.FREQ.get(w, 0) < 300)]


def _titled(after: str, following: tuple[tuple[str, str], ...]) -> str | None:
    """The personal name at the start of `after` (the text right after a title), if any."""
    if m := re.match(r"[\u4e00-\u9fff]{1,8}·(?=[\u4e00-\u9fff])", after):
        return m.group(0) + _pos(after[m.end():])[0][0]  # the given name: the first word after the dot
    words = [w for w, _ in following]
    if not words or not cues.CJK.fullmatch(words[0][:1]):
        return None
    first = words[0]
    given = words[1] if len(words) > 1 else ""
    if first in cues.SURNAMES and 1 <= len(given) <= 2 and all(cues.CJK.match(ch) for ch in given):
        first += given
    surname = first[:2] if first[:2] in cues.SURNAMES else first[:1]
    if surname in cues.SURNAMES and 2 <= len(first) <= 4 and all(cues.CJK.match(ch) for ch in first):
        return first
    return None


def clause_name(clause: str, known: set[str], known_chars: frozenset[str]) -> str | None:
    """A clause's quoted name the question does not say, or the clause stripped at both ends of
    the question's words (`known`, their characters `known_chars`) and function words, if what
    is left is mostly new."""
    quoted = [x for x in cues.QUOTED_NAME.findall(clause) if x.lower() not in known]
    if quoted:
        return quoted[0]
    toks = list(_pos(clause))

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
    cjk = [ch for w, _ in toks[lo:hi] for ch in w if cues.CJK.match(ch)]
    while lo < hi < len(toks) and toks[hi][1].startswith("n"):
        hi += 1  # 齐鲁|银行: the kind of thing named stays with the name
    name = "".join(w for w, _ in toks[lo:hi]).strip()
    new = sum(ch not in known_chars for ch in cjk)
    return name if new >= 2 and new >= 0.4 * len(cjk) and len(name) <= 30 else None


_NAME_END = set("vpcdurxwyezotsf")  # part-of-speech tags (first letter) that end a name: verbs, prepositions ...
_AND = ("和", "及", "与", "以及")


def enumeration(clause: str) -> str | None:
    """The names a clause enumerates with 、 (推动|浙商银行、日照银行、齐鲁银行|在区内…;
    第二人民医院、精神卫生中心和大信卫生院), without the verb before them or the count and kind
    after them (…、海洋文旅|4个主导产业); None when there are not two names of 2-16 characters."""
    if "、" not in clause:
        return None
    toks = list(_pos(clause))
    seps = [i for i, (w, _) in enumerate(toks) if w == "、"]

    def part(i: int, last: bool = False) -> bool:
        w, f = toks[i]
        if w in ("等", "在"):
            return False
        if f in ("m", "q", "mq", "eng"):
            return not last  # a number inside a name (蒲渠220千伏), not the count after the last
        return f[0] not in _NAME_END or f == "vn"

    lo, hi = seps[0], seps[-1] + 1
    while lo > 0 and part(lo - 1):
        lo -= 1
    while hi < len(toks) and part(hi, True):
        hi += 1
    if hi < len(toks) - 1 and toks[hi][0] in _AND:
        end = hi + 1
        while end < len(toks) and part(end, True):
            end += 1
        hi = end if end > hi + 1 else hi
    text = "".join(w for w, _ in toks[lo:hi]).strip("、")
    names = [x for x in re.split("、|" + "|".join(_AND), text) if x]
    return text if len(names) >= 2 and all(2 <= len(x) <= 16 for x in names) else None


def figure_text(text: str, figure: Found) -> str:
    """A figure as the source writes it, without inner spaces: a whole range (2012—2013年), a
    year with its part (2022年一季度)."""
    written = text[figure.start:figure.end]
    if figure.unit == "年" and (part := re.match(rf"\s*(?:{cues.PERIOD.pattern})", text[figure.end:])):
        written += part.group(0)
    return re.sub(r"\s+", "", written)


def _is_answer_figure(f: Found, clause: str) -> bool:
    """Ordinals (第三批), articles (一批) and phases (四期) are no quantities."""
    if clause[max(0, f.start - 1):f.start] == "第":
        return False
    if f.value == 1 and f.text.startswith("一"):
        return False
    return not (f.unit == "期" and f.text[0] in "一二三四五六七八九十")


def candidates(hits: list[Hit], known: set[str], who: bool = False) -> list[Candidate]:
    """Every candidate answer in the hits. `known` holds the question's own words (a name made
    only of them is no answer); personal names are looked for when the question asks `who`."""
    out: list[Candidate] = []
    known_chars = frozenset(ch for t in known if len(t) > 1 for ch in t)
    for hi, hit in enumerate(hits):
        text, meta = hit.chunk.text, hit.chunk.meta
        cells = regions(hit)
        spans = sentences(hit)
        for s, e in spans:
            clauses = list(cues.CLAUSE.finditer(text, s, e))
            for ci, cm in enumerate(clauses):
                own = cm.group(0)
                borrow = ci and len(own) < 25 and not (states_figure(clauses[ci - 1].group(0)) and has_subject(own))
                ctx = clauses[ci - 1].start() if borrow else cm.start()
                role = next((r for lo, up, r in cells if lo <= cm.start() < up), "")
                base = dict(hit=hi, sent=(s, e), clause=(cm.start(), cm.end()), context=ctx, role=role)
                out += _clause_candidates(text, own, cm.start(), base, known, known_chars, who)
            out += _lists(text, clauses, hi, (s, e))
        out += _fields(text, hi, spans)
        if meta.get("lead_unit"):
            out.append(_cell(hi, text, spans, "cell_unit", meta["lead_unit"]))
        if meta.get("deadline"):
            kind = "cell_deadline" if meta["deadline"] != "已完成" else "cell_status"
            out.append(_cell(hi, text, spans, kind, meta["deadline"]))
    return out


# A clause that is a name and its figure (移风店镇10处), not a statement (第一批共推荐177家企业).
_NAMED_FIGURE = re.compile(r"^(?![第共其约])[\u4e00-\u9fff]{2,8}[\d.]+[\u4e00-\u9fff%]{0,2}$")


def _named_figure(clause: str) -> bool:
    return bool(_NAMED_FIGURE.match(clause.strip()))


def _lists(text: str, clauses: list, hi: int, sent: tuple[int, int]) -> list[Candidate]:
    """Runs of short clauses that enumerate alike things (移风店镇10处,田横镇10处: each with a
    figure of the same unit), joined: what a question asking for several names wants."""
    out = []
    run: list = []
    for cm in clauses + [None]:
        figs = find_figures(cm.group(0)) if cm is not None else []
        alike = cm is not None and _named_figure(cm.group(0)) and len(figs) == 1 and (
            not run or figs[0].unit == find_figures(run[-1].group(0))[0].unit)
        if alike:
            run.append(cm)
            continue
        if len(run) >= 2:
            lead = "、".join(c.group(0).strip() for c in run)
            out.append(Candidate(hi, "list", lead, sent, (run[0].start(), run[-1].end()), run[0].start()))
        run = [cm] if cm is not None and _named_figure(cm.group(0)) and len(figs) == 1 else []
    return out


_FIELD_LINE = re.compile(r"^[^|\n]+\|(?:[^|\n]*\|)+[ \t]*$", re.M)
_FIELD_KEY = re.compile(r"\D{2,10}")  # a key: no figure in it


def _fields(text: str, hi: int, spans: list[tuple[int, int]]) -> list[Candidate]:
    """The values of a key-value table as scraped pages flatten it, one line per row of
    key | value pairs (成文日期 | 2023-04-27 | 发布日期 | 2023-04-27 |), each read with its key."""
    out = []
    for line in _FIELD_LINE.finditer(text):
        cells, at = [], line.start()
        for part in line.group(0).split("|")[:-1]:
            cells.append((at, part))
            at += len(part) + 1
        if len(cells) % 2 or not all(_FIELD_KEY.fullmatch(key.strip()) for _, key in cells[::2]):
            continue
        for (start, key), (v_at, value) in zip(cells[::2], cells[1::2]):
            lead = value.strip()
            if 1 <= len(lead) <= 40:
                start += len(key) - len(key.lstrip())
                end = v_at + len(value.rstrip())
                sent = _sentence_at(spans, start, (line.start(), line.end()))
                out.append(Candidate(hi, "field", lead, sent, (start, end), start))
    return out


def _sentence_at(spans: list[tuple[int, int]], at: int, default: tuple[int, int]) -> tuple[int, int]:
    """The sentence span that holds offset `at`, else `default`."""
    return next(((s, e) for s, e in spans if s <= at < e), default)


def _cell(hi: int, text: str, spans: list[tuple[int, int]], kind: str, value: str) -> Candidate:
    at = text.find(value)
    sent = _sentence_at(spans, max(at, 0), (0, min(len(text), 80)))
    return Candidate(hi, kind, value, sent, (max(at, 0), max(at, 0) + len(value)), sent[0], None, "")


def _clause_candidates(text: str, own: str, offset: int, base: dict, known: set[str], known_chars: frozenset[str],
                       who: bool) -> list[Candidate]:
    out = []
    for f in find_figures(own):
        if _is_answer_figure(f, own):
            at = Found(f.text, offset + f.start, offset + f.end, f.value, f.unit)
            out.append(Candidate(kind="figure", lead=figure_text(text, at), figure=at, **base))
    if period := cues.PERIOD.search(own):
        out.append(Candidate(kind="period", lead=period.group(0), **base))
    for name in persons(own)[:1] if who else []:
        out.append(Candidate(kind="person", lead=name, **base))
    if (name := clause_name(own, known, known_chars)) is not None:
        out.append(Candidate(kind="name", lead=name, **base))
    if (names := enumeration(own)) is not None:
        out.append(Candidate(kind="list", lead=names, **base))
    if definition := cues.DEFINITION.match(text[base["sent"][0]:base["sent"][1]]):
        if base["clause"][0] == base["sent"][0]:
            out.append(Candidate(kind="definition", lead=definition.group(2)[:60], **base))
    stripped = own.strip()
    if 2 <= len(stripped) <= 40:
        out.append(Candidate(kind="clause", lead=stripped, **base))
    return out
