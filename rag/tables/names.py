"""Names in questions over task tables, matched against the names the documents use.

Units are matched by general rules: the same name, the name without its 区 / 市 prefix, a part
of it, or an abbreviation that keeps its characters in order with the same first character and
the same kind of body (卫健局 -> 区卫生健康局, 人社局 -> 区人力资源社会保障局, 工信局 ->
区工业和信息化局); the short forms people use for a bureau's field (环保 for 生态环境) are data
in rag/data/table_cues.toml. English names go through the glossary and dictionary
(rag/english.py): the unit whose name holds most of the phrase's Chinese terms. Sections are
matched by number or by the title that shares most words with the question; the words a task's
name must contain are the quoted ones, or what is left of the question once everything else
is accounted for.
"""
from __future__ import annotations

import re
from typing import Callable

from ..chunking import cn_numeral
from .records import CUES

Terms = Callable[[str], list[tuple[str, float]]]  # English words -> weighted Chinese terms

CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_UNIT_END = "局委办部心司队会室处道府院"  # the last character of a unit's name
_LIKE_END = {"局": "局委", "委": "委局"}  # a bureau and a commission stand for each other
_PREFIX = re.compile(r"^(?:青岛市|区|市(?!场)|即墨区?|城阳区?|崂山区?)")
_NOT_A_NAME = re.compile(r"哪|什么|几|各个|该|这|那|单位|部门")
_BOUNDARY = set("的里中在由是和与及或者让被把对给跟同为表年度季当,,、::;;“”\"'‘’(()")
_EN_NUMBERS = {w: i + 1 for i, w in enumerate("one two three four five six seven eight nine ten eleven twelve "
                                               "thirteen fourteen fifteen".split())}
_EN_UNIT = re.compile(r"\b((?:[a-z][\w'-]*\s+){0,7}?(?:bureau|commission|committee|office|department|regulator|"
                      r"cent(?:er|re)|branch|administration|headquarters|authority)(?:\s+of(?:\s+[a-z][\w-]*){1,6})?)\b", re.I)
_EN_PLACES = "district|jimo|chengyang|qingdao"  # words that place a unit, never name it
_EN_FILLER = re.compile(rf"^(?:the|a|an|{_EN_PLACES}|municipal|'?s|which|what|each|any|one|by|led|"
                        r"lead|leads|is|are|does|do)\s+", re.I)
_EN_OWNER = re.compile(rf"\b(?:{_EN_PLACES})['’]s\s+", re.I)  # the district's own (bureau)
_STOP_ZH = sorted(CUES["residual"]["stop_zh"].split(), key=len, reverse=True)
_STOP_EN = frozenset(CUES["residual"]["stop_en"].split())


def number(word: str) -> int | None:
    """12, 十二 or twelve -> 12."""
    if word.isdigit():
        return int(word)
    if word and all(ch in "一二三四五六七八九十" for ch in word):
        return cn_numeral(word)
    return _EN_NUMBERS.get(word.lower())


# ---------------------------------------------------------------- units

def _core(name: str) -> str:
    return _PREFIX.sub("", name) or name


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def _score(m: str, u: str) -> float:
    if m == u:
        return 2.5
    if len(m) >= 3 and m in u and m[-1] == u[-1]:
        return 2.0
    if len(m) >= 3 and m[0] == u[0] and m[-1] in _LIKE_END.get(u[-1], u[-1]):
        if _subsequence(m[:-1], u[:-1]):
            return 1.5 if m[-1] == u[-1] else 1.0
        if len(u) >= 3 and _subsequence(u[:-1], m[:-1]):
            return 1.2
    return 0.0


def unit_score(mention: str, unit: str) -> float:
    """How surely `mention` (as a person writes it) names `unit` (as the document writes it):
    3 the same, 2.5 the same without prefixes, 2 a part of it, 1.5 an abbreviation (its
    characters in order, same first character, same kind of body), 1.2 the unit's name is
    the abbreviation, 0 no match. A short form of a field (环保) also stands for its long ones."""
    if mention == unit:
        return 3.0
    m, u = _core(mention), _core(unit)
    if len(m) < 2:
        return 0.0
    forms = [m] + [m.replace(short, long) for short, longs in CUES["aliases"].items() if short in m for long in longs]
    return max(_score(f, u) for f in forms)


def _starts(text: str, e: int) -> list[int]:
    """Where a name ending at `e` may start, nearest first: after punctuation or a function
    word, or at 区/市."""
    out = []
    for s in range(e - 1, max(-1, e - 18), -1):
        if not CJK.match(text[s]):
            break
        if s == 0 or not CJK.match(text[s - 1]) or text[s - 1] in _BOUNDARY or text[s] in "区市":
            out.append(s)
    return out


def find_units_zh(text: str, units: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """([(mention, the units it names)], [mentions that name no unit]) in Chinese text. A
    mention starts where a word can start, so the 管理局 of 区应急管理局 is not taken for
    another 管理局."""
    found: list[tuple[str, list[str]]] = []
    unknown: list[str] = []
    for e, ch in enumerate(text):
        if ch not in _UNIT_END:
            continue
        best: tuple[float, int, list[str]] = (0.0, 0, [])
        for s in _starts(text, e):
            scores = {u: unit_score(text[s:e + 1], u) for u in units}
            top = max(scores.values(), default=0.0)
            if top > 0 and (top, e + 1 - s) > best[:2]:
                best = (top, e + 1 - s, [u for u, v in scores.items() if v == top])
        if best[2]:
            mention = text[e + 1 - best[1]:e + 1]
            found = [(m, us) for m, us in found if m not in mention]  # 区委 inside 区委宣传部
            found.append((mention, best[2]))
        elif ch in "局委" and (name := _unit_shaped(text, e)):
            unknown.append(name)
    return found, [u for u in unknown if not any(u in m or m in u for m, _ in found)]


def _unit_shaped(text: str, e: int) -> str | None:
    """The name ending at `e` when it looks like a bureau's (区统计局), else None."""
    name = next((text[s:e + 1] for s in _starts(text, e) if len(_core(text[s:e + 1])) >= 2), "")
    return name if name and len(name) <= 10 and not _NOT_A_NAME.search(name) else None


def find_units_en(question: str, units: list[str], terms: Terms) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """English unit names ("the civil affairs bureau", "the market regulator"), resolved
    through their Chinese terms: the units that contain most of the phrase's specific terms."""
    found, unknown = [], []
    for m in _EN_UNIT.finditer(question):
        phrase = _EN_OWNER.sub("", re.split(r"\bthe\s+", m.group(1))[-1])  # "Jimo's" names no unit
        while (short := _EN_FILLER.sub("", phrase)) != phrase:
            phrase = short
        if len(phrase.split()) < 2 and not re.search(r"\bof\b", phrase):
            continue  # "which bureau", "the bureau": no name
        scores = {u: sum(w for t, w in terms(phrase) if len(t) >= 2 and t in _core(u) and t not in ("局", "委员会"))
                  for u in units}
        top = max(scores.values(), default=0.0)
        if top >= 0.5:
            found.append((phrase, [u for u, v in scores.items() if v >= top - 1e-9]))
        else:
            unknown.append(phrase)
    return found, unknown


def find_units(text: str, lang: str, units: list[str], terms: Terms) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Units named in a question of either language (Chinese names inside English too)."""
    found, unknown = find_units_zh(text, units)
    if lang == "en":
        found_en, unknown_en = find_units_en(text, units, terms)
        found, unknown = found + found_en, unknown + (unknown_en if not found and not found_en else [])
    return found, unknown


def unit_kind(text: str, lang: str) -> str | None:
    """A kind of unit said on its own (公司, 管委, 街道 / companies, subdistricts), in the
    question's language or in Chinese inside an English question."""
    for language in dict.fromkeys([lang, "zh"]):
        for part, pattern in CUES["unit_kinds"][language].items():
            if re.search(pattern, text, re.I if language == "en" else 0):
                return part
    return None


# ---------------------------------------------------------------- sections

def common_length(a: str, b: str) -> int:
    """Length of the longest common substring of a and b."""
    best = 0
    for i in range(len(a)):
        for j in range(i + best + 1, len(a) + 1):
            if a[i:j] not in b:
                break
            best = j - i
    return best


def find_sections(text: str, lang: str, sections: dict[int, str], terms: Terms) -> tuple[list[int] | None, str]:
    """(section numbers the question names, or None; a named number the document lacks).
    By number (第九部分, 十二、, part twelve) or, when the question speaks of a part, by the
    title that shares most words with it (守安全底线那部分, the rural revitalization section)."""
    said = [m.group(1) for m in re.finditer(r"第([一二三四五六七八九十\d]{1,3})(?:部分|板块|大项|章|方面|大类)", text)]
    said += [m.group(1) for m in re.finditer(r"(?:^|[((“\"\s])([一二三四五六七八九十]{1,3})、", text)]
    if lang == "en":
        said += [m.group(1) for m in re.finditer(r"\b(?:section|part|chapter)\s+(\d{1,2}|[一二三四五六七八九十]{1,3}|[a-z]+)\b", text, re.I)]
        said += [m.group(1) for m in re.finditer(r"\(([一二三四五六七八九十]{1,3})\)", text)]
    wanted = [n for n in (number(x) for x in said) if n]
    if wanted:
        missing = [n for n in wanted if n not in sections]
        return [n for n in wanted if n in sections], (f"第{missing[0]}部分" if missing else "")
    if not re.search(CUES["group"][f"section_any_{lang}"], text, re.I if lang == "en" else 0):
        return None, ""
    titles = {n: re.sub(r"^[一二三四五六七八九十]{1,3}、", "", t) for n, t in sections.items()}
    if lang == "en" and not CJK.search(text):
        m = re.search(r"((?:[\w'-]+\s+){1,5}?)(?:section|part)\b|\b(?:section|part) (?:on|about|of) ((?:[\w'-]+\s*){1,6})", text, re.I)
        phrase = " ".join(w for w in re.split(r"[\s-]+", (m.group(1) or m.group(2)) if m else "")
                          if w.lower() not in _STOP_EN)
        scores = {n: sum(w for t, w in terms(phrase) if len(t) >= 2 and t in title) for n, title in titles.items()}
    else:
        scores = {n: float(v) for n, title in titles.items() if (v := common_length(title, text)) >= 4}
    best = max(scores.values(), default=0)
    hits = [n for n, v in scores.items() if v == best and v >= 0.5]
    return (hits, "") if len(hits) == 1 else (None, "")


# ---------------------------------------------------------------- words in the task's name

_VALUE = re.compile(r"^(?:已完成|\d{1,2}月.*|年底|年末|(?:参与|牵头|主办|责任|配合)(?:单位)?|完成时限|管委|公司|街道|"
                    r"[一二三四五六七八九十]{1,3})$")


def find_words(text: str, lang: str, tasks: list[str], terms: Terms, taken: list[str], titles: list[str],
               rest: bool = True) -> list[str]:
    """Words a task's name must contain: quoted ones (“保卫战”, “新建……停车场项目”), Chinese
    ones in an English question (mention new energy (新能源)), the topic of "跟X有关 / 涉及X",
    else (with `rest`, when the question has no other filter) the one longest piece left of
    the question once its cue words, the names already matched (`taken`) and the documents'
    `titles` are removed (in English: the Chinese term of its topic that most task names hold),
    where that piece occurs in some task names but not in most."""
    def usable(w: str) -> bool:
        return bool(CJK.search(w)) and not _VALUE.match(w) and not any(
            w == t or (len(w) >= 4 and w in t) or t in w for t in taken)

    quoted = re.findall(r"[“\"‘'「]([^”\"’'」]{1,24})[”\"’'」]", text)
    if lang == "en":
        quoted += _CJK_RUN.findall(text)
    words = [w for q in quoted if usable(q) for w in re.split(r"…+|\.{2,}", q) if len(w) >= 2 and usable(w)]
    if lang == "zh" and not words:  # a topic word counts only where some task names it
        words = [w for m in re.finditer(_TOPIC_ZH, text) if (w := m.group(1) or m.group(2)) and usable(w)
                 and any(w in t for t in tasks)]
    if words or not rest:
        return list(dict.fromkeys(words))
    pieces = _residual_zh(text, taken + titles) if lang == "zh" else _residual_en(text, terms)
    common = len(tasks) / 2
    named = {w: sum(w in t for t in tasks) for w in pieces}
    if lang == "en":  # of an English topic's Chinese terms the broadest: parking -> 停车, not 停车泊位
        pieces = sorted(pieces, key=lambda w: -min(named[w], common))
    return [w for w in pieces if usable(w) and not any(w in t for t in titles) and 0 < named[w] <= common][:1]


_TOPIC_ZH = (r"(?:跟|与|和|同)([\u4e00-\u9fff]{2,8}?)(?:有关|相关)|(?:涉及|关于|提到|提及|点名|写到|带有?|含有?|包含|针对)"
             r"([\u4e00-\u9fff]{2,8}?)(?:的|二字|两个字|字样|这|那|[,,??((]|$)")


def _residual_zh(text: str, taken: list[str]) -> list[str]:
    """The longest pieces of a Chinese question left after names and cue words are removed."""
    for name in sorted(taken, key=len, reverse=True):
        if len(name) >= 2:
            text = text.replace(name, " ")
    text = re.sub(r"[\d]+|[^\u4e00-\u9fff]+", " ", text)
    for word in _STOP_ZH:
        text = text.replace(word, " ")
    return sorted((w for w in text.split() if len(w) >= 2), key=len, reverse=True)


def _residual_en(text: str, terms: Terms) -> list[str]:
    """The Chinese terms of an English question's topic: the words after "about / related to /
    mention ..." or before "tasks / projects", cue words left out."""
    phrases = re.findall(r"\b(?:about|on|related to|relating to|to do with|concerning|involving|covering|deal(?:s|ing)? with|mention(?:s|ing)?)"
                         r"\s+((?:[a-z][\w'-]*\s*){1,3})", text, re.I)
    phrases += re.findall(r"\b((?:[a-z][\w'-]*\s+){1,2})(?:projects|tasks|items)\b", text, re.I)
    words = [w for p in phrases for w in p.lower().split() if w not in _STOP_EN]
    return [t for t, _ in sorted(terms(" ".join(words)), key=lambda tw: -tw[1]) if len(t) >= 2] if words else []
