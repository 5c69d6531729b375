"""Answers to questions over a whole task table, from the task records: the count or the list
first, every row named (number and task name) and cited; superlatives with ties reported as
ties; a filter that matches nothing said plainly."""
from __future__ import annotations

import calendar
from typing import Any, Callable

from ..models import Answer, Chunk, Citation
from .questions import TableQuestion
from .records import TaskTable


def resolve_before(tq: TableQuestion, table: TaskTable) -> None:
    """A due-before month becomes the last day of that month in each document's year."""
    f = tq.filter
    if f.due_before and len(f.due_before) <= 2:
        year = next((r["year"] for r in table.records if r["doc"] in (f.docs or []) and r["year"]), None)
        f.due_before = f"{year}-{int(f.due_before):02d}-31" if year else None


def _label(r: dict[str, Any], name: str, lang: str) -> str:
    return f"{'row' if r['doc_kind'] == 'progress_table' else 'item'} {r['number']} {name}" if lang == "en" \
        else f"第{r['number']}项 {name}"


class TableAnswerer:
    """Answers table questions from a TaskTable, citing the chunks of every row."""

    def __init__(self, table: TaskTable, chunk: Callable[[str], Chunk]) -> None:
        self.table = table
        self.chunk = chunk  # chunk id -> Chunk

    def name(self, r: dict[str, Any]) -> str:
        """A row's task name, made distinctive: a name that stands inside another row's of the same
        document (支持企业专利质押贷款) goes on through the sentence that follows it in its row."""
        task = r["task"]
        if not any(o is not r and o["doc"] == r["doc"] and task in o["task"] for o in self.table.records):
            return task
        text = self.chunk(r["subrows"][0]["chunk_id"]).text
        at = text.find(task)
        if at < 0:
            return task
        end = text.find("。", at + len(task) + 1)  # through the sentence that follows the name
        return text[at:end if 0 < end <= at + len(task) + 40 else at + len(task) + 12].split("\n")[0]

    def answer(self, question: str, lang: str, tq: TableQuestion) -> Answer:
        resolve_before(tq, self.table)
        if tq.missing:
            return self._none(question, lang, tq, f"没有名为“{tq.missing}”的单位或部分" if lang == "zh"
                              else f"no unit or part named “{tq.missing}” in the task tables")
        records = self.table.select(tq.filter)
        if tq.op == "superlative":
            return self._superlative(question, lang, tq, records)
        if not records:
            return self._none(question, lang, tq, "没有符合条件的任务" if lang == "zh" else "no task matches")
        return self._listing(question, lang, tq, records, len(records))

    def _citations(self, records: list[dict[str, Any]], units: list[str] | None) -> list[Citation]:
        out = []
        for r in records:
            sub = next((s for s in r["subrows"] if units and set(s["leads"]) & set(units)), r["subrows"][0])
            c = self.chunk(sub["chunk_id"])
            at = max(0, c.text.find(r["task"][:20]))
            end = min(len(c.text), at + len(r["task"]))
            meta = {k: v for k, v in (("row" if r["doc_kind"] == "progress_table" else "item", r["number"]),
                                      ("task", r["task"]), ("lead_unit", "、".join(sub["leads"])),
                                      ("deadline", sub["deadline"]), ("section", r["section"]),
                                      ("status", sub["status"])) if v}
            out.append(Citation(len(out) + 1, c.id, c.doc, r["title"], c.heading_path, c.text[at:end],
                                c.start + at, c.start + end, 1.0, meta))
        return out

    def _listing(self, question: str, lang: str, tq: TableQuestion, records: list[dict[str, Any]],
                 count: int, head: str = "") -> Answer:
        cits = self._citations(records, tq.filter.units)
        items = [f"{_label(r, self.name(r), lang)}[{c.n}]" for r, c in zip(records, cits)]
        if not head:
            head = f"{count} task{'s' * (count != 1)}" if lang == "en" else f"共{count}项"
        sep = "; " if lang == "en" else ";"
        text = f"{head}: " + sep.join(items) if lang == "en" else f"{head}:" + sep.join(items)
        notes = ["answered from the task records", *tq.notes]
        return Answer(question, text, cits, [], False, "table", {}, lang, notes)

    def _none(self, question: str, lang: str, tq: TableQuestion, why: str) -> Answer:
        text = f"0 — {why}." if lang == "en" else f"0项({why})。"
        return Answer(question, text, [], [], False, "table", {}, lang, ["answered from the task records", *tq.notes])

    def _superlative(self, question: str, lang: str, tq: TableQuestion, records: list[dict[str, Any]]) -> Answer:
        if tq.group == "task_units":
            by = {r["id"]: len(r["leads"]) for r in records}
            best = max(by.values(), default=0)
            winners = [r for r in records if by[r["id"]] == best]
            cits = self._citations(winners, None)
            parts = [f"{_label(r, self.name(r), lang)}({best}{'个单位' if lang == 'zh' else ' units'}:{'、'.join(r['leads'])})[{c.n}]"
                     for r, c in zip(winners, cits)]
            return Answer(question, ";".join(parts), cits, [], False, "table", {}, lang, ["answered from the task records"])
        f = tq.filter
        groups = self.table.count_by(records, tq.group or "unit", f)
        if not groups:
            return self._none(question, lang, tq, "没有符合条件的任务" if lang == "zh" else "no task matches")
        ranked = sorted(groups.items(), key=lambda kv: len(kv[1]), reverse=not tq.fewest)
        cut = len(ranked[min(tq.top, len(ranked)) - 1][1])
        winners = [(k, rs) for k, rs in ranked if (len(rs) >= cut if not tq.fewest else len(rs) <= cut)]
        tie = len(winners) > tq.top
        all_rows = list({r["id"]: r for _, rs in winners for r in rs}.values())
        units = [k for k, _ in winners] if tq.group == "unit" else f.units
        cits = self._citations(all_rows, units)
        n_of = {r["id"]: c.n for r, c in zip(all_rows, cits)}
        parts = []
        for k, rs in winners:
            if tq.group == "month":
                k = f"{calendar.month_name[k]} ({k}月)" if lang == "en" else f"{k}月"
            rows = "、".join(f"{r['number']}[{n_of[r['id']]}]" for r in rs)
            parts.append(f"{k} ({len(rs)} tasks: rows {rows})" if lang == "en" else f"{k}({len(rs)}项:第{rows}项)")
        head = ("tie: " if tie else "") if lang == "en" else ("并列(一样多):" if tie else "")
        text = head + ("; ".join(parts) if lang == "en" else ";".join(parts))
        return Answer(question, text, cits, [], False, "table", {}, lang,
                      ["answered from the task records", *tq.notes])
