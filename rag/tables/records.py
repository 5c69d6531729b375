"""Task records: every row of a progress table and every item of a task list as plain data.

Built from the chunks at index time (`build_records`), stored beside them in the index folder
(`tasks.jsonl`) and checked against them on load. A record is one numbered row / item; a row
that several lead units report on separately keeps one sub-row per block:

    {"id": "000_x.txt#14", "doc": ..., "title": ..., "district": "即墨区", "year": 2022,
     "doc_kind": "progress_table", "number": 14, "section": null, "section_no": null,
     "task": "新增市级以上创新平台20个", "leads": ["区发展和改革局", ...], "participants": [],
     "subrows": [{"leads": [...], "deadline": "已完成", "due": null, "status": "completed",
                  "status_words": "完成时限:已完成", "progress": "...", "chunk_id": ...}, ...],
     "targets": ["20个"], "chunk_ids": [...]}

`TaskTable` holds the records of an index as a pandas frame (one line per sub-row and unit)
and answers filters: by document, district, year, unit and role, section, deadline, status,
words in the task; `govrag tasks`, the Python API and table questions use it.
"""
from __future__ import annotations

import calendar
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from ..chunking import cn_numeral
from ..grounding import find_figures
from ..models import Chunk, GovragError

TASKS_FILE = "tasks.jsonl"
CUES = tomllib.loads((Path(__file__).resolve().parents[1] / "data" / "table_cues.toml").read_text(encoding="utf-8"))
_STATUS = {name: re.compile(pattern) for name, pattern in CUES["status"].items()}
_SECTION_HEAD = re.compile(r"^\s*([一二三四五六七八九十]{1,3})、\s*(.*)$")
STATUSES = ("completed", "in_progress", "not_started", "unknown")


def split_units(cell: str | None) -> list[str]:
    """Unit names of a lead / participant cell ("区科技局、区工业和信息化局"); a trailing
    "等各产业主管部门" names no unit of its own and is dropped."""
    units = []
    for part in re.split(r"[、,,;;]", cell or ""):
        part = re.sub(r"等[\u4e00-\u9fff]{2,}$", "", part.strip(" ::"))
        if part:
            units.append(part)
    return list(dict.fromkeys(units))


def due_date(deadline: str | None, year: int | None) -> str | None:
    """A deadline cell as an ISO date in the document's year ("12月底" -> 2022-12-31,
    "11月份" -> 2022-11-30, "10月中旬" -> 2022-10-20, "年底" -> 2022-12-31); None for a
    status ("已完成") or an open-ended cell ("长期")."""
    if not deadline or not year:
        return None
    if re.fullmatch(r"年底|年末|年内|全年", deadline):
        return f"{year}-12-31"
    m = re.match(r"(\d{1,2})月(上旬|中旬|下旬|底|份|末)?", deadline)
    if not m or not 1 <= int(m.group(1)) <= 12:
        return None
    month = int(m.group(1))
    day = {"上旬": 10, "中旬": 20}.get(m.group(2) or "", calendar.monthrange(year, month)[1])
    return f"{year}-{month:02d}-{day:02d}"


def derive_status(deadline: str | None, progress: str) -> tuple[str, str]:
    """(status, the words that decided it) of a sub-row: completed when its deadline cell
    says 已完成 or its progress says so without saying work goes on; not started / in
    progress from the progress text; unknown without one (task lists state no progress)."""
    if deadline == "已完成":
        return "completed", "完成时限:已完成"
    if not progress.strip():
        return "unknown", ""
    for status in ("not_started", "completed", "in_progress"):
        if m := _STATUS[status].search(progress):
            if status == "completed" and _STATUS["in_progress"].search(progress):
                continue
            return status, m.group(0)
    return "in_progress", ""


def _section(chunk: Chunk) -> tuple[str | None, int | None]:
    head = chunk.meta.get("section") if chunk.kind == "task_item" else None
    m = _SECTION_HEAD.match(head or "")
    return (head, cn_numeral(m.group(1))) if m else (head, None)


def build_records(chunks: list[Chunk]) -> list[dict[str, Any]]:
    """One record per numbered task row / item of the chunks, in document order."""
    records: dict[str, dict[str, Any]] = {}
    for c in chunks:
        if c.kind not in ("task_row", "task_item"):
            continue
        number = c.meta.get("row", c.meta.get("item"))
        key = f"{c.doc}#{number}"
        leads = split_units(c.meta.get("lead_unit"))
        section, section_no = _section(c)
        rec = records.setdefault(key, {
            "id": key, "doc": c.doc, "title": c.meta.get("title", ""), "district": c.meta.get("district"),
            "year": c.meta.get("year"), "doc_kind": c.meta.get("doc_kind"), "number": number,
            "section": section, "section_no": section_no, "task": c.meta.get("task") or "",
            "leads": [], "participants": [], "subrows": [], "targets": [], "chunk_ids": []})
        progress = c.meta.get("progress", "")
        deadline = c.meta.get("deadline")
        status, words = derive_status(deadline, progress)
        rec["subrows"].append({"leads": leads, "deadline": deadline, "due": due_date(deadline, rec["year"]),
                               "status": status, "status_words": words, "progress": progress,
                               "chunk_id": c.id})
        rec["leads"] = list(dict.fromkeys(rec["leads"] + leads))
        rec["participants"] = list(dict.fromkeys(rec["participants"] + split_units(c.meta.get("partners"))))
        target = c.meta.get("target", c.text if c.kind == "task_item" else "")
        rec["targets"] = list(dict.fromkeys(rec["targets"] + [f.text for f in find_figures(target)
                                                               if f.unit not in ("date", "年")]))
        rec["chunk_ids"].append(c.id)
    return list(records.values())


def check_records(records: list[dict[str, Any]], chunks: list[Chunk]) -> None:
    """GovragError unless the records hold exactly the task chunks' rows and sub-rows."""
    task_chunks = {c.id: c for c in chunks if c.kind in ("task_row", "task_item")}
    ids = [cid for r in records for cid in r["chunk_ids"]]
    if sorted(ids) != sorted(task_chunks):
        raise GovragError(f"task records cover {len(ids)} rows, the chunks {len(task_chunks)}")
    for r in records:
        for cid in r["chunk_ids"]:
            c = task_chunks[cid]
            if c.doc != r["doc"] or c.meta.get("row", c.meta.get("item")) != r["number"]:
                raise GovragError(f"task record {r['id']} does not match chunk {cid}")


def save_records(folder: Path, records: list[dict[str, Any]]) -> None:
    with open(folder / TASKS_FILE, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def load_records(folder: Path, chunks: list[Chunk]) -> list[dict[str, Any]]:
    """The records stored in an index version folder, checked against its chunks (an index
    written before records existed gets them built from its chunks)."""
    path = folder / TASKS_FILE
    if not path.is_file():
        return build_records(chunks)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    check_records(records, chunks)
    return records


@dataclass
class TaskFilter:
    """What `TaskTable.select` keeps. Units are exact names (see rag.table_questions for
    matching a name as people write it); `role` is lead | participant | any |
    participant_only; `deadline` is a deadline cell as written ("12月底", "已完成") or a
    month ("11"); `every_subrow` asks every sub-row (of the selected units) to match."""

    docs: list[str] | None = None
    district: str | None = None
    year: int | None = None
    units: list[str] | None = None
    unit_part: str | None = None  # a part of a unit's name: 公司, 管委, 街道
    role: str = "lead"
    sections: list[int] | None = None
    deadline: str | None = None
    not_deadline: str | None = None  # a deadline cell a sub-row must not have ("已完成")
    due_before: str | None = None  # ISO date
    status: str | None = None  # completed | not_completed | in_progress | not_started | unknown
    words: list[str] | None = None  # all of them in the task name
    n_leads: tuple[str, int] | None = None  # (">=", 2), ("==", 1), ("==", 0)
    with_participants: bool | None = None
    every_subrow: bool = False
    exclude_units: list[str] | None = None  # units a ranking leaves out


class TaskTable:
    """The task records of an index, with filters and groupings over them (pandas)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.by_id = {r["id"]: r for r in records}

    @cached_property
    def frame(self):
        """One line per (record, sub-row, unit, role); records without units get one line."""
        import pandas as pd

        rows = []
        for r in self.records:
            for i, s in enumerate(r["subrows"]):
                base = {"id": r["id"], "doc": r["doc"], "district": r["district"], "year": r["year"],
                        "number": r["number"], "section_no": r["section_no"], "task": r["task"], "subrow": i,
                        "deadline": s["deadline"] or "", "due": s["due"] or "", "status": s["status"],
                        "n_leads": len(r["leads"]), "n_participants": len(r["participants"])}
                units = [(u, "lead") for u in s["leads"]] + [(u, "participant") for u in r["participants"] if i == 0]
                rows += [{**base, "unit": u, "role": role} for u, role in units] or [{**base, "unit": "", "role": ""}]
        return pd.DataFrame(rows)

    def docs(self) -> list[str]:
        return list(dict.fromkeys(r["doc"] for r in self.records))

    def units(self, doc: str | None = None) -> list[str]:
        """Every unit name (lead or participant) of a document, or of all."""
        return list(dict.fromkeys(u for r in self.records if doc in (None, r["doc"])
                                  for u in r["leads"] + r["participants"]))

    def sections(self, doc: str) -> dict[int, str]:
        return {r["section_no"]: r["section"] for r in self.records if r["doc"] == doc and r["section_no"]}

    def select(self, f: TaskFilter) -> list[dict[str, Any]]:
        """The records that pass the filter, in document order."""
        df = self.frame
        if df.empty:
            return []
        keep = df["id"].notna()
        for col, value in (("district", f.district), ("year", f.year)):
            if value is not None:
                keep &= df[col] == value
        if f.docs is not None:
            keep &= df["doc"].isin(f.docs)
        if f.sections is not None:
            keep &= df["section_no"].isin(f.sections)
        if f.words:
            for w in f.words:
                keep &= df["task"].str.contains(w, regex=False)
        if f.n_leads is not None:
            op, n = f.n_leads
            keep &= df["n_leads"] >= n if op == ">=" else df["n_leads"] == n
        if f.with_participants is not None:
            keep &= (df["n_participants"] > 0) == f.with_participants
        if f.units is not None or f.unit_part:
            named = df["unit"].isin(f.units) if f.units is not None else df["unit"].str.contains(f.unit_part, regex=False)
            role = f.role if f.role != "participant_only" else "participant"
            keep &= named & ((df["role"] == role) if role != "any" else True)
        ids = self._by_subrow(df[keep], f)
        if f.role == "participant_only" and f.units is not None:
            leads = set(df[df["unit"].isin(f.units) & (df["role"] == "lead")]["id"])
            ids = [i for i in ids if i not in leads]
        return [self.by_id[i] for i in ids]

    def _by_subrow(self, df, f: TaskFilter) -> list[str]:
        """Record ids whose sub-rows pass the deadline and status filters (any sub-row, or
        every selected one with `every_subrow`)."""
        ok = df["id"].notna()
        if f.deadline:
            ok &= df["deadline"].str.startswith(f.deadline) if not f.deadline.isdigit() else \
                df["due"].str.slice(5, 7) == f"{int(f.deadline):02d}"
        if f.not_deadline:
            ok &= ~df["deadline"].str.startswith(f.not_deadline)
        if f.due_before:
            ok &= (df["due"] != "") & (df["due"] <= f.due_before)
        if f.status == "not_completed":
            ok &= df["status"] != "completed"
        elif f.status:
            ok &= df["status"] == f.status
        per_id = ok.groupby(df["id"], sort=False).agg("all" if f.every_subrow else "any")
        return list(per_id[per_id].index)

    def count_by(self, records: Iterable[dict[str, Any]], key: str, f: TaskFilter) -> dict[Any, list[dict[str, Any]]]:
        """Records grouped by `unit` (each unit in the filter's role: only the filter's units or
        kind of unit when it names them, never its excluded ones), `section`, due `month` (1-12)
        or `doc`, largest group first."""
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in records:
            if key == "unit":
                names = r["leads"] if f.role == "lead" else r["participants"] if f.role.startswith("participant") \
                    else r["leads"] + r["participants"]
                keys = [u for u in dict.fromkeys(names) if (f.units is None or u in f.units)
                        and (not f.unit_part or f.unit_part in u) and u not in (f.exclude_units or [])]
            elif key == "month":  # the months its sub-rows (the filter's units' own) are due in
                keys = sorted({int(s["due"][5:7]) for s in r["subrows"] if s["due"]
                               and (f.units is None or set(s["leads"]) & set(f.units))})
            else:
                keys = [r.get("section") if key == "section" else r[key]]
            for k in keys:
                if k:
                    groups.setdefault(k, []).append(r)
        return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))

    def to_rows(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Flat rows for CSV / JSON / a UI table: one per record."""
        return [{"doc": r["doc"], "district": r["district"], "year": r["year"], "number": r["number"],
                 "section": r["section"] or "", "task": r["task"], "leads": "、".join(r["leads"]),
                 "participants": "、".join(r["participants"]),
                 "deadline": "、".join(dict.fromkeys(s["deadline"] or "" for s in r["subrows"])).strip("、"),
                 "status": "、".join(dict.fromkeys(s["status"] for s in r["subrows"])),
                 "status_words": "、".join(dict.fromkeys(s["status_words"] for s in r["subrows"] if s["status_words"])),
                 "chunk_ids": " ".join(r["chunk_ids"])} for r in records]
