"""Recognising a question over a whole task table and turning it into a filter.

"区卫生健康局牵头了哪些任务?", "城阳区第七部分有多少项任务?", "哪些任务还没有完成?",
"哪个部分的任务最少?", "Which tasks does the civil affairs bureau lead?" become a
`TableQuestion` (count / list / superlative + a TaskFilter); a question about one task ("这项任务
的牵头单位") or about anything but tasks gets None and goes to the ordinary reader. The cue
words are data in rag/data/table_cues.toml.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .names import CJK, Terms, find_sections, find_units, find_units_en, find_units_zh, find_words, number, unit_kind
from .records import CUES, TaskFilter, TaskTable

_MONTHS_EN = {m: i + 1 for i, m in enumerate("january february march april may june july august september "
                                             "october november december".split())}


def _has(section: str, key: str, lang: str, text: str) -> re.Match[str] | None:
    return re.search(CUES[section][f"{key}_{lang}"], text, re.I if lang == "en" else 0)


@dataclass
class TableQuestion:
    """A question over the whole table, as understood."""

    op: str  # count | list | superlative
    filter: TaskFilter
    group: str | None = None  # superlatives: unit | section | month | task_units
    fewest: bool = False
    top: int = 1
    notes: list[str] = field(default_factory=list)  # how names were matched
    missing: str = ""  # a unit or section the documents do not have


def _operation(text: str, lang: str) -> tuple[str, str | None, bool] | None:
    """(op, what a superlative ranks, fewest) or None when no table operation is asked."""
    if _has("group", "task_units", lang, text):
        return "superlative", "task_units", False
    if _has("ops", "superlative", lang, text):
        group = next((g for g in ("section", "month", "unit") if _has("group", g, lang, text)), None)
        return "superlative", group, bool(_has("group", "fewest", lang, text))
    if _has("ops", "count", lang, text):
        return "count", None, False
    if _has("ops", "list", lang, text):
        return "list", None, False
    return None


def _role(text: str, lang: str) -> str:
    for role in ("participant_only", "lead", "any", "participant"):
        if _has("role", role, lang, text):
            return role
    return "lead"


def _docs(table: TaskTable, districts: list[str], years: list[int], text: str) -> list[str]:
    """The documents a question is about: by district and year, narrowed by the kind of
    document it names (progress table / task list) when that leaves any."""
    docs = [d for d in table.docs() if any(r["doc"] == d and (not districts or r["district"] in districts)
                                            and (not years or r["year"] in years) for r in table.records)]
    kinds = {"progress_table": r"进展|季度|progress|quarter|\bq[1-4]\b", "task_list": r"任务清单|清单|重点工作任务|task list|key[- ]task list"}
    by_kind = [d for d in docs for kind, cue in kinds.items()
               if re.search(cue, text, re.I) and any(r["doc"] == d and r["doc_kind"] == kind for r in table.records)]
    return list(dict.fromkeys(by_kind)) or docs


def parse(question: str, lang: str, table: TaskTable, districts: list[str], years: list[int],
          terms: Terms) -> TableQuestion | None:
    """The table question asked, or None when the question is not about the table as a whole.
    `terms` gives the weighted Chinese terms of English words (rag.english.expand_query)."""
    text = question.strip()
    tasks = [r["task"] for r in table.records]
    op = _operation(text, lang)
    quoted_task = any(w in t for q in re.findall(r"[“\"]([^”\"]{2,24})[”\"]", text)
                      for w in re.split(r"…+", q) if len(w) >= 2 for t in tasks)
    if op is None and quoted_task and _has("ops", "list_any", lang, text):
        op = ("list", None, False)
    if op is None or not tasks or _has("scope", "one_task", lang, text):
        return None
    if not (_has("scope", "task", lang, text) or quoted_task or op[1] == "month"):  # months rank deadlines
        return None
    if re.search(r"第\s*\d{1,3}\s*(?:项|条|行)|\b(?:row|item|task) (?:no\.? ?)?\d{1,3}\b", text, re.I) and op[0] != "superlative":
        return None  # one numbered row: an ordinary question
    tq = TableQuestion(op[0], TaskFilter(docs=_docs(table, districts, years, text), role=_role(text, lang)), op[1], op[2])
    rest = _units(tq, text, lang, table, terms)
    if rest is None:
        return tq
    f = tq.filter
    sections = {n: t for d in f.docs or [] for n, t in table.sections(d).items()}
    f.sections, missing = find_sections(rest, lang, sections, terms)
    if missing:
        tq.missing = missing
        return tq
    _counts_and_status(tq, rest, lang)
    taken = [sections[n] for n in f.sections or []] + [u for d in f.docs or [] for u in table.units(d)]
    titles = list(dict.fromkeys(r["title"] for r in table.records if r["doc"] in (f.docs or [])))
    alone = not (f.units or f.unit_part or f.sections or f.deadline or f.not_deadline or f.due_before or f.status
                 or f.n_leads or f.with_participants or tq.group)
    f.words = find_words(rest, lang, [r["task"] for r in table.records if r["doc"] in (f.docs or [])],
                         terms, taken, titles, rest=alone) or None
    if alone and not f.words and not _has("scope", "whole", lang, text):  # a superlative is never alone (it has a group)
        return None  # no filter and not said to be over every row: a figure inside one task
    if m := re.search(r"\btop\s*(\d+|one|two|three|four|five)\b|\bwhich (two|three|four|five)\b", text, re.I):
        tq.top = number(m.group(1) or m.group(2)) or 1
    elif m := re.search(r"前([一二两三四五六七八九十\d]+)", text):
        tq.top = number(m.group(1).replace("两", "二")) or 1
    return tq


def _units(tq: TableQuestion, text: str, lang: str, table: TaskTable, terms: Terms) -> str | None:
    """Set the unit filter: named units (the documents narrowed to those that have them) or a
    kind of unit said on its own (有街道作为牵头单位: every 街道). Returns the question with the
    unit names taken out, or None when it names a unit no document has (`tq.missing`)."""
    f = tq.filter
    left_out = _has("when", "except", lang, text)
    if left_out:  # 除了工信局和住建局,谁最多: those units are ranked out, not filtered on
        for d in f.docs or []:
            f.exclude_units = (f.exclude_units or []) + [u for _, us in find_units(left_out.group(1), lang, table.units(d), terms)[0] for u in us]
        text = text.replace(left_out.group(0), " ")
    found, unknown, docs = [], [], []
    for d in f.docs or []:  # each document's own names: 科技局 is 区科技局 in one, 区科学技术局 in another
        here, missing = find_units(text, lang, table.units(d), terms)
        found += here
        unknown += missing
        docs += [d] * bool(here)
    rest = text
    for mention, _ in found:
        rest = rest.replace(mention, " ")
    part = unit_kind(rest, lang)
    if part and all(part in u for _, us in found for u in us):
        f.unit_part = part
        if tq.group is None and tq.op == "superlative":
            tq.group = "unit"
    elif found:
        f.units = list(dict.fromkeys(u for _, us in found for u in us))
        f.docs = docs
        tq.notes += list(dict.fromkeys(f"“{m}” matched {'、'.join(us)}" for m, us in found if len(us) > 1 or m != us[0]))
        if tq.group is None and tq.op == "superlative" and len(f.units) > 1:
            tq.group = "unit"  # 汽车产业新城管委和国际陆港管委,哪个主办的多?
    elif unknown and tq.group != "unit" and not part:
        tq.missing = unknown[0]
        return None
    if tq.op == "superlative" and tq.group is None:
        tq.group = "unit"
    return rest


def _month(text: str, lang: str) -> tuple[str | None, str | None]:
    """(a deadline cell or month the question filters on, the month it must be due before)."""
    if lang == "en":
        for name, n in _MONTHS_EN.items():
            if re.search(rf"\b(?:before|by)\s+(?:the\s+)?(?:end of\s+)?{name}\b", text, re.I):
                return None, str(n)
            if re.search(rf"\b{name}\b", text, re.I):
                return str(n), None
    if m := re.search(r"(\d{1,2})月底?(?:以)?前", text):
        return None, m.group(1)
    if m := re.search(r"(\d{1,2})月底", text):
        return f"{m.group(1)}月底", None
    if m := re.search(r"(\d{1,2})月", text):
        return m.group(1), None
    if _has("when", "year_end", lang, text):
        return "12", None
    return None, None


def _counts_and_status(tq: TableQuestion, text: str, lang: str) -> None:
    """Filters on the number of lead units, the deadline cell and the status."""
    f = tq.filter
    if m := _has("units_count", "at_least", lang, text):
        said = next(g for g in m.groups() if g).replace("两", "二")
        f.n_leads = (">=", number(said) or 2)
    else:
        for key, value in (("several", (">=", 2)), ("single", ("==", 1)), ("none", ("==", 0))):
            if _has("units_count", key, lang, text):
                f.n_leads = value
                break
    if _has("units_count", "participants", lang, text) and f.units is None and f.role != "participant_only":
        f.with_participants, f.role = True, "lead"
    month, before = _month(text, lang)
    if _has("when", "not_done", lang, text):
        f.not_deadline = "已完成"
    elif _has("when", "deadline_column", lang, text) and re.search(r"已完成|\bcompleted\b|\bdone\b", text, re.I):
        f.deadline = "已完成"
    elif month or before:
        f.deadline, f.due_before = month, before
    elif _has("when", "not_completed", lang, text):
        f.status = "not_completed"
    elif _has("when", "completed", lang, text):
        f.status = "completed"
    f.every_subrow = bool(f.deadline or f.not_deadline) and bool(_has("when", "every", lang, text))


def task_filter(table: TaskTable, terms: Terms, doc: str | None = None, district: str | None = None,
                unit: str | None = None, role: str = "lead", section: str | None = None, status: str | None = None,
                due_before: str | None = None, words: list[str] | None = None) -> tuple[TaskFilter, list[str]]:
    """A TaskFilter from command-line / API arguments: a unit as people write it (卫健局, the
    health commission), a section by number or name, a due date. Returns (filter, notes on
    what the names matched); GovragError when a name matches nothing."""
    from ..models import GovragError

    docs = [d for d in table.docs() if doc in (None, d) and (district is None or any(
        r["doc"] == d and r["district"] and (district in r["district"] or r["district"] in district)
        for r in table.records))]
    if not docs:
        raise GovragError(f"no task table matches doc={doc!r} district={district!r}; documents: {', '.join(table.docs())}")
    f = TaskFilter(docs=docs, role=role, status=status, words=words or None)
    notes: list[str] = []
    if unit:
        units = [u for d in docs for u in table.units(d)]
        found, _ = find_units_zh(unit, units) if CJK.search(unit) else find_units_en(f"the {unit}", units, terms)
        if not found:
            raise GovragError(f"no unit named {unit!r} in the task tables; known units include: {'、'.join(units[:12])}")
        f.units = list(dict.fromkeys(u for _, us in found for u in us))
        notes.append(f"{unit} matched {'、'.join(f.units)}")
    if section:
        sections = {n: t for d in docs for n, t in table.sections(d).items()}
        n = number(section)
        hits = [n] if n in sections else [k for k, t in sections.items() if section in t]
        if not hits:
            raise GovragError(f"no section {section!r}; sections: {'; '.join(sections.values()) or 'none'}")
        f.sections = hits
    if due_before:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", due_before):
            raise GovragError(f"due before wants a date like 2022-11-30, not {due_before!r}")
        f.due_before = due_before
    return f, notes
