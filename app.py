"""Gradio chat over the govrag pipeline: UI only; retrieval and answering live in rag/.

    python app.py [--host 127.0.0.1] [--port 7860] [--index DIR]     # or: govrag serve
    GOVRAG_AUTH="user:password" python app.py                       # optional basic auth

API (gradio_client): Client(url).predict("问题", api_name="/ask") -> {"answer", "abstained",
"citations", "figures", "mode", "confidence", "timings", ...}; optional k, doc, district, year, filters (JSON).

Start: the page comes up at once; the lexical index (chunks + BM25) is brought up to date with
its documents in a few seconds and the chat answers from it; vectors are computed in the
background and switched in when complete (status line: lexical-only / embedding N% / hybrid).
The documents tab adds files (kept in the uploads folder) and removes documents; with
GOVRAG_AUTH set only signed-in users can. API: ask, documents, add_documents, remove_document.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import queue
import re
import sys
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline by default

import gradio as gr  # noqa: E402

from rag.config import Settings, load_settings  # noqa: E402
from rag.models import Answer, Chunk, Citation, GovragError  # noqa: E402

CONCURRENCY = 8  # answers at once (UI chat and API share this pool)
MAX_REQUEST_FILE = "200mb"  # uploads larger than this are cut off by the server; smaller ones over
# settings.max_upload_mb reach the pipeline and are refused there with a clear message
LLM_SLOTS = 2  # of which at most this many wait on the LLM; the others stay extractive-fast
_HIDDEN_NOTES = ("asked:", "confidence:", "translation:", "best guess:")
_MD_ACTIVE = re.compile(r"([\\`*_\[\]{}#|~>!-])")

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "## 政务文件问答 · 每个回答都有出处\n离线运行 · 向量 + BM25 混合检索 · 回答中的数字逐一与原文核对",
        "lang": "界面语言", "chat": "对话", "question": "问题", "send": "提问", "clear": "清空",
        "placeholder": "例如:即墨区2022年新建了多少个5G基站?", "examples": "示例问题(取自文件)",
        "settings": "检索设置", "k": "引用段落数 (k)", "doc": "文件", "district": "区/街道", "year": "年份",
        "all": "全部", "mode": "回答方式", "extractive": "抽取式(无需大模型)", "llm": "大模型生成",
        "table": "按任务记录统计",
        "sources": "### 出处", "no_sources": "提问后,这里显示回答引用的原文段落,引用的句子会高亮。",
        "closest": "未找到可靠答案。最接近的段落:", "figures": "数字核对", "verified": "已在出处中核实",
        "unverified": "未在出处中找到", "row": "第{row}项", "lead": "牵头单位", "deadline": "时限/进展",
        "status": "索引:{docs} 个文件 · {chunks} 个片段 · 向量模型 {embedder} · 检索:{retrieval} · 模式:{mode}",
        "took": " · 上次用时 {s:.2f} 秒", "building": "首次启动:正在建立关键词索引(几秒钟)…",
        "loading": "正在加载索引和模型…", "failed": "索引不可用:{error}", "empty": "请输入问题。",
        "wait": "正在建立索引,完成后自动回答…", "error": "出错了:{error}", "busy": "大模型繁忙,已改用抽取式回答",
        "lexical": "仅关键词", "hybrid": "混合(向量 + 关键词)", "embedding": "向量化 {pct}%",
        "docs_tab": "文件", "upload": "添加文件(txt / md / html / pdf / docx,可多选)", "add": "添加到索引",
        "indexed": "### 已索引的文件", "remove_doc": "要删除的文件", "remove": "从索引中删除",
        "columns": "文件|标题|区/街道|年份|类型|片段数|添加时间|来源", "upload_src": "上传", "base_src": "文件夹",
        "no_files": "请先选择要添加的文件。", "pick_doc": "请先选择要删除的文件。", "adding": "读取 {name}",
        "indexing": "写入索引", "added": "已添加:{names}(现在即可提问;向量在后台计算)",
        "replaced": "已更新:{names}", "skipped": "未添加:{why}", "removed": "已删除:{name}",
        "login": "请先登录,才能添加或删除文件。",
        "tasks_tab": "任务表", "t_doc": "任务表/清单", "t_unit": "单位(简称也可,如 卫健局)", "t_role": "角色",
        "t_section": "部分(序号或标题中的词)", "t_status": "状态", "t_due": "完成时限不晚于(YYYY-MM-DD)",
        "t_filter": "筛选", "t_download": "下载 CSV", "t_roles": "牵头|参与|都算",
        "t_statuses": "全部|已完成|未完成|推进中|未启动|未知", "t_count": "共 {n} 项",
        "t_columns": "文件|序号|部分|任务|牵头单位|参与单位|完成时限|状态|依据",
        "t_head": "| [n] | 序号 | 任务 | 牵头单位 | 完成时限 | 状态 |",
    },
    "en": {
        "title": "## Government documents Q&A · every answer cited\n"
                 "Offline · hybrid dense + BM25 retrieval · every figure checked against its source",
        "lang": "Language", "chat": "Chat", "question": "Question", "send": "Ask", "clear": "Clear",
        "placeholder": "e.g. How many 5G base stations did Jimo build in 2022?",
        "examples": "Example questions (from the documents)", "settings": "Retrieval settings",
        "k": "Passages cited (k)", "doc": "Document", "district": "District", "year": "Year", "all": "All",
        "mode": "Answer mode", "extractive": "Extractive (no LLM)", "llm": "LLM", "table": "counted from task records",
        "sources": "### Sources", "no_sources": "Ask a question; the cited passages show here with the quoted span highlighted.",
        "closest": "No reliable answer found. Closest passages:", "figures": "Figures",
        "verified": "verified in the source", "unverified": "not found in the sources", "row": "Row {row}",
        "lead": "Lead unit", "deadline": "Deadline / status",
        "status": "Index: {docs} documents · {chunks} chunks · embedder {embedder} · retrieval: {retrieval} · "
                  "mode: {mode}",
        "took": " · last answer {s:.2f} s", "building": "First start: building the keyword index (a few seconds)…",
        "loading": "Loading the index and model…", "failed": "Index unavailable: {error}",
        "empty": "Please type a question.", "wait": "Building the index; the answer follows when it is ready…",
        "error": "Error: {error}", "busy": "LLM busy; extractive answer instead",
        "lexical": "lexical-only", "hybrid": "hybrid (dense + BM25)",
        "embedding": "embedding {pct}%",
        "docs_tab": "Documents", "upload": "Add files (txt / md / html / pdf / docx, several at once)",
        "add": "Add to the index", "indexed": "### Indexed documents", "remove_doc": "Document to remove",
        "remove": "Remove from the index", "columns": "File|Title|District|Year|Kind|Chunks|Added|Source",
        "upload_src": "upload", "base_src": "folder", "no_files": "Choose the files to add first.",
        "pick_doc": "Choose the document to remove first.", "adding": "reading {name}", "indexing": "indexing",
        "added": "Added: {names} (answerable now; vectors are computed in the background)",
        "replaced": "Replaced: {names}", "skipped": "Not added: {why}", "removed": "Removed: {name}",
        "login": "Sign in to add or remove documents.",
        "tasks_tab": "Task tables", "t_doc": "Task table / list", "t_unit": "Unit (short names too, e.g. 卫健局)",
        "t_role": "Role", "t_section": "Section (number or a word of its title)", "t_status": "Status",
        "t_due": "Deadline on or before (YYYY-MM-DD)", "t_filter": "Filter", "t_download": "Download CSV",
        "t_roles": "lead|participant|any", "t_statuses": "all|completed|not completed|in progress|not started|unknown",
        "t_count": "{n} tasks", "t_columns": "File|No.|Section|Task|Lead units|Participants|Deadline|Status|Evidence",
        "t_head": "| [n] | No. | Task | Lead units | Deadline | Status |",
    },
}

CSS = """
.gr-cards {display:flex; flex-direction:column; gap:10px}
.gr-card {border:1px solid var(--border-color-primary); border-radius:10px; padding:10px 12px;
  background:var(--background-fill-secondary)}
.gr-card-head {font-weight:600; margin-bottom:2px}
.gr-card-n {display:inline-block; min-width:1.8em; color:var(--color-accent); font-weight:700}
.gr-card-meta {font-size:0.85em; color:var(--body-text-color-subdued); margin-bottom:6px}
.gr-card-text {font-size:0.92em; line-height:1.6; white-space:pre-wrap; max-height:16em; overflow:auto}
.gr-card-text mark {background:#ffe58a; color:inherit; padding:0 1px; border-radius:2px}
.gr-figs {font-size:0.9em; margin-bottom:4px}
.gr-fig {display:inline-block; border-radius:6px; padding:1px 7px; margin:2px 4px 2px 0}
.gr-fig.ok {background:#e3f6e5; color:#17612a} .gr-fig.bad {background:#fde8e8; color:#9b1c1c}
.gr-muted {color:var(--body-text-color-subdued); font-size:0.92em}
#gr-status {font-size:0.88em; color:var(--body-text-color-subdued); gap:0; flex-wrap:wrap}
#gr-status > * {flex:0 1 auto !important; min-width:0 !important; width:auto !important}
#gr-status .html-container {padding:0 !important}
.gr-ok {color:#17612a} .gr-bad {color:#9b1c1c}
"""
THEME = gr.themes.Soft(font=["Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "monospace"])


def esc(text: Any) -> str:
    """HTML-escaped text (everything from documents or the question goes through this)."""
    return html.escape(str(text), quote=True)


def esc_md(text: Any) -> str:
    """Text for a Markdown message: HTML-escaped, then Markdown syntax made literal."""
    return _MD_ACTIVE.sub(r"\\\1", esc(text))


# ---------------------------------------------------------------- the pipeline, maybe built late

class PipelineHolder:
    """The pipeline, or a zero-argument factory run in a background thread (first-start build)."""

    def __init__(self, pipeline_or_factory: Any, index_dir: str | Path | None = None) -> None:
        self._pipeline: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self.building = index_dir is not None and not (Path(index_dir) / "CURRENT").is_file()
        if hasattr(pipeline_or_factory, "ask"):
            self._pipeline = pipeline_or_factory
            self._ready.set()
        else:
            threading.Thread(target=self._run, args=(pipeline_or_factory,), name="govrag-load", daemon=True).start()

    def _run(self, factory: Callable[[], Any]) -> None:
        try:
            self._pipeline = factory()
        except BaseException as exc:  # noqa: BLE001 - shown in the page
            self._error = exc
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def get(self, timeout: float | None = None) -> Any:
        """The pipeline (waiting for a build); GovragError when it could not be made."""
        if not self._ready.wait(timeout):
            raise GovragError("the index is still being built")
        if self._error is not None:
            raise GovragError(str(self._error) or type(self._error).__name__)
        return self._pipeline

    def loading_text(self, lang: str) -> str:
        return LABELS[lang]["building" if self.building else "loading"]


# ---------------------------------------------------------------- facts about the index

class Corpus:
    """What the UI shows about an index: chunks by id, filter choices, example questions."""

    _FIG = re.compile(r"(新增|新建|建成|完成|培育|引进|改造)([^,,。;;、\d][^,,。;;、]{1,9}?)\d+(?:\.\d+)?\s*"
                      r"(个|处|家|座|所|公里|户|条|项|台)")

    def __init__(self, pipeline: Any) -> None:
        index = pipeline.retriever.index
        self.version = index.dir
        self.chunks: dict[str, Chunk] = {c.id: c for c in index.chunks}
        self.manifest: dict[str, Any] = index.manifest
        titles: dict[str, Counter] = {}
        for c in index.chunks:
            titles.setdefault(c.doc, Counter())[c.meta.get("title") or c.doc] += 1
        self.docs = [(f"{t.most_common(1)[0][0][:30]} ({doc})", doc) for doc, t in sorted(titles.items())]
        self.districts = sorted({str(c.meta["district"]) for c in index.chunks if c.meta.get("district")})
        self.years = sorted({str(c.meta["year"]) for c in index.chunks if c.meta.get("year")}, reverse=True)
        self.examples = self._examples(index.chunks)

    def _examples(self, chunks: list[Chunk], n: int = 4) -> list[str]:
        """A few questions made from task rows/items: a target figure, progress, lead unit."""
        out: list[str] = []
        rows = [c for c in chunks if c.kind in ("task_row", "task_item") and c.meta.get("task")]

        def where(c: Chunk) -> str:
            return f"{c.meta.get('district', '')}{str(c.meta['year']) + '年' if c.meta.get('year') else ''}"

        for c in rows:
            m = self._FIG.search(c.meta["task"])
            if m:
                out.append(f"{where(c)}{m.group(1)}{m.group(2)}的目标是多少{m.group(3)}?")
                break
        done = [c for c in rows if c.kind == "task_row" and c.meta.get("progress") and len(c.meta["task"]) <= 16]
        if done:
            out.append(f"{where(done[0])}“{done[0].meta['task']}”进展如何?")
        lead = [c for c in rows if c.meta.get("lead_unit") and len(c.meta["task"]) <= 12
                and all(c.doc != d.doc for d in done[:1])]
        if lead:
            out.append(f"{where(lead[-1])}“{lead[-1].meta['task']}”由哪个单位牵头?")
        sections = [c for c in chunks if c.kind == "section" and len(c.heading_path) > 1
                    and c.meta.get("doc_kind") == "work_report"]
        if sections:
            out.append(f"{sections[0].meta.get('title', '')}提到了哪些重点工作?")
        return list(dict.fromkeys(q for q in out if q))[:n]

    def status(self, lang: str, mode: str, retrieval: str) -> str:
        L = LABELS[lang]
        return L["status"].format(docs=len(self.manifest.get("documents", {})), chunks=len(self.chunks),
                                  embedder=self.manifest.get("embedder", "?"), retrieval=retrieval, mode=L[mode])


def retrieval_text(pipeline: Any, lang: str) -> str:
    """lexical-only / embedding N% / hybrid, as the status line says it."""
    L = LABELS[lang]
    progress = pipeline.embedding_progress()
    if progress is not None:
        done, total = progress
        return L["embedding"].format(pct=int(100 * done / total) if total else 0)
    return L[pipeline.retriever.index.retrieval]


# ---------------------------------------------------------------- rendering (pure functions)

def highlight(text: str, start: int, end: int, window: int = 700) -> str:
    """Escaped chunk text with [start, end) in <mark>; long texts cut around the mark."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    lo, hi = 0, len(text)
    if len(text) > window:
        lo, hi = max(0, start - window // 3), min(len(text), max(end, start) + window // 3)
    pre, post = ("…" if lo > 0 else ""), ("…" if hi < len(text) else "")
    if end <= start:
        return pre + esc(text[lo:hi]) + post
    return f"{pre}{esc(text[lo:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:hi])}{post}"


def render_card(c: Citation, chunk: Chunk | None, lang: str, mark: bool = True) -> str:
    """One citation: title, district/year, task row or heading path, chunk text with the quoted
    span in <mark> (no mark for the closest passages of an abstention)."""
    L = LABELS[lang]
    meta = {**(chunk.meta if chunk else {}), **c.meta}
    parts = [str(meta[key]) for key in ("district", "year") if meta.get(key)]
    if meta.get("year"):
        parts[-1] += "年" if lang == "zh" else ""
    if meta.get("row") is not None:  # a task row: number, lead unit, deadline
        parts.append(L["row"].format(row=meta["row"]))
    elif any(c.heading_path[1:]):  # a section or task item: where it sits
        parts.append(" › ".join(h for h in c.heading_path[1:] if h))
    parts += [f"{L[key]}: {meta[name]}" for key, name in (("lead", "lead_unit"), ("deadline", "deadline"))
              if meta.get(name)]
    if chunk is None:
        body = f"<mark>{esc(c.quote)}</mark>" if mark else esc(c.quote)
    elif not mark:
        body = highlight(chunk.text, 0, 0)
    else:
        s = c.start - chunk.start
        if chunk.text[s:c.end - chunk.start].strip() != c.quote.strip():
            s = chunk.text.find(c.quote)
        body = highlight(chunk.text, s, s + len(c.quote)) if s >= 0 else f"<mark>{esc(c.quote)}</mark>"
    return (f'<div class="gr-card"><div class="gr-card-head"><span class="gr-card-n">[{int(c.n)}]</span>'
            f'{esc(c.title or c.doc)}</div><div class="gr-card-meta">{esc(" · ".join(parts))}'
            f' · <code>{esc(c.doc)}</code></div><div class="gr-card-text">{body}</div></div>')


def render_sources(answer: Answer | None, chunks: dict[str, Chunk], lang: str) -> str:
    """The sources panel: figure checks, then one card per citation (or closest passages)."""
    L = LABELS[lang]
    if answer is None:
        return f'<p class="gr-muted">{esc(L["no_sources"])}</p>'
    out = []
    if answer.figures:
        figs = "".join(f'<span class="gr-fig {"ok" if f.verified else "bad"}" '
                       f'title="{esc(L["verified" if f.verified else "unverified"])}">'
                       f'{"✓" if f.verified else "✗"} {esc(f.text)}'
                       f'{f" [{int(f.citation)}]" if f.citation is not None else ""}</span>' for f in answer.figures)
        out.append(f'<div class="gr-figs">{esc(L["figures"])}: {figs}</div>')
    cites = answer.citations
    if answer.abstained or not cites:
        out.append(f'<p class="gr-muted">{esc(L["closest"])}</p>')
        cites = answer.passages
    out += [render_card(c, chunks.get(c.chunk_id), lang, mark=cites is answer.citations) for c in cites]
    return f'<div class="gr-cards">{"".join(out)}</div>'


def render_message(answer: Answer, lang: str = "zh") -> str:
    """The chat message: the answer text and the notes worth showing, escaped; an answer listing
    task rows shows its count and then the rows as a table, each linked to its source card."""
    notes = [n for n in answer.notes if not n.startswith(_HIDDEN_NOTES)]
    tail = "".join(f"\n\n*({esc_md(n)})*" for n in notes)
    if answer.mode != "table" or len(answer.citations) < 2:
        return esc_md(answer.answer) + tail
    head = re.split(r"[::]", answer.answer, maxsplit=1)[0] if re.match(r"^\D{0,4}\d+", answer.answer) else ""
    rows = [LABELS[lang]["t_head"], "|---|---|---|---|---|---|"]
    for c in answer.citations:
        m = c.meta
        cells = [f"[{c.n}]", m.get("row", m.get("item", "")), m.get("task", ""), m.get("lead_unit", ""),
                 m.get("deadline", ""), m.get("status", "")]
        rows.append("| " + " | ".join(esc_md(str(v)).replace("|", "\\|") for v in cells) + " |")
    lead = esc_md(head) if head else esc_md(answer.answer.split("(")[0].split(" (")[0][:120])
    return lead + "\n\n" + "\n".join(rows) + tail


def answer_json(answer: Answer) -> dict[str, Any]:
    """What the `ask` API returns."""
    d = asdict(answer)
    return {key: d[key] for key in ("question", "answer", "abstained", "citations", "figures", "mode", "confidence",
                                    "retrieval", "timings", "notes", "passages")}


def documents_rows(docs: list[Any], lang: str) -> list[list[Any]]:
    """The documents table: one row per indexed document."""
    L = LABELS[lang]
    return [[d.name, d.title, d.district, d.year or "", d.kind, d.chunks, d.added.replace("T", " ")[:16],
             L["upload_src" if d.uploaded else "base_src"]] for d in docs]


def render_add_report(report: Any, lang: str) -> str:
    """What an upload did, escaped: added, replaced, and each refused file with its reason."""
    L = LABELS[lang]
    lines = []
    if report.added:
        lines.append(f'<p class="gr-ok">{esc(L["added"].format(names="、".join(report.added)))}</p>')
    if report.replaced:
        lines.append(f'<p class="gr-ok">{esc(L["replaced"].format(names="、".join(report.replaced)))}</p>')
    lines += [f'<p class="gr-bad">{esc(L["skipped"].format(why=why))}</p>' for why in report.skipped]
    return "".join(lines)


# ---------------------------------------------------------------- the app

def parse_filters(doc: str = "", district: str = "", year: str | int = "", filters: str = "") -> dict[str, Any]:
    """Filters from dropdown values and/or a JSON object string; empty values are dropped."""
    out: dict[str, Any] = {}
    if filters and filters.strip():
        try:
            out = json.loads(filters)
        except ValueError as exc:
            raise GovragError(f"filters must be a JSON object, e.g. {{\"year\": 2022}} ({exc})") from exc
        if not isinstance(out, dict):
            raise GovragError("filters must be a JSON object, e.g. {\"year\": 2022}")
    for key, value in (("doc", doc), ("district", district), ("year", year)):
        if value not in (None, ""):
            out[key] = int(value) if key == "year" and str(value).isdigit() else value
    return {k: v for k, v in out.items() if v not in (None, "", [])}


# ---------------------------------------------------------------- state shared by the parts of the page

@dataclass
class AppState:
    """What every part of the page shares: the pipeline (maybe still loading), the settings, the
    facts shown about the index (rebuilt when the index changes), the LLM slots, and whether
    adding or removing documents needs a signed-in user."""

    holder: PipelineHolder
    settings: Settings
    require_login: bool
    modes: list[str]
    llm_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(LLM_SLOTS))
    _corpus: Corpus | None = None

    def corpus_if_ready(self) -> Corpus | None:
        """The facts about the index when the pipeline is loaded, else None (no waiting)."""
        try:
            return self.corpus(0) if self.holder.ready else None
        except GovragError:
            return None

    def corpus(self, timeout: float | None = None) -> Corpus:
        pipeline = self.holder.get(timeout)
        if self._corpus is None or self._corpus.version != pipeline.retriever.index.dir:
            self._corpus = Corpus(pipeline)
        return self._corpus

    def status(self, lang: str, mode: str) -> str:
        """The status line, escaped: loading, or the index, its retrieval mode and the answer mode."""
        if not self.holder.ready:
            return esc(self.holder.loading_text(lang))
        L = LABELS[lang]
        try:
            return esc(self.corpus().status(lang, mode, retrieval_text(self.holder.get(), lang)))
        except GovragError as exc:
            return esc(L["failed"].format(error=exc))

    def settled(self) -> bool:
        """True when nothing is loading or embedding (the status line need not be polled)."""
        if not self.holder.ready:
            return False
        try:
            return self.holder.get().embedding_progress() is None
        except GovragError:
            return True

    def check_writer(self, request: gr.Request | None, lang: str = "en") -> None:
        """With GOVRAG_AUTH set, only a signed-in user may add or remove documents."""
        if self.require_login and not getattr(request, "username", None):
            raise gr.Error(LABELS[lang]["login"])

    def run(self, question: str, k: int | None, filters: dict[str, Any], use_llm: bool) -> Iterator[str | Answer]:
        """Partial answer texts (LLM streaming), then the Answer."""
        pipeline = self.holder.get()
        if not use_llm:
            yield pipeline.ask(question, k=k, filters=filters)
            return
        if not self.llm_slots.acquire(timeout=self.settings.llm_timeout):
            answer = pipeline.ask(question, k=k, filters=filters)
            answer.notes.append(LABELS["en"]["busy"])
            yield answer
            return
        tokens: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["answer"] = pipeline.ask(question, k=k, filters=filters, use_llm=True, on_token=tokens.put)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the request thread
                result["error"] = exc
            finally:
                self.llm_slots.release()
                tokens.put(None)

        threading.Thread(target=work, daemon=True).start()
        text = ""
        while (tok := tokens.get()) is not None:
            text += tok
            yield text
        if "error" in result:
            raise result["error"]
        yield result["answer"]

    def answer(self, question: str, k: int | None, filters: dict[str, Any], use_llm: bool) -> Answer:
        """The final Answer of `run`."""
        answer = None
        for part in self.run(question, k, filters, use_llm):
            answer = part if isinstance(part, Answer) else answer
        assert answer is not None
        return answer


# ---------------------------------------------------------------- the header (title, language, status)

@dataclass
class Header:
    title: Any
    lang: Any
    status: Any  # the index, retrieval and answer mode: refreshed by the timer while loading or embedding
    took: Any  # how long the last answer took: written by the answer alone, so no refresh races it
    timer: Any


def took_text(lang: str, last: Answer | None) -> str:
    """How long the last answer took (" · 上次用时 0.04 秒"); "" before the first."""
    return LABELS[lang]["took"].format(s=last.timings.get("total_ms", 0) / 1000) if last is not None else ""


def build_header(state: AppState) -> Header:
    L = LABELS["zh"]
    with gr.Row(equal_height=True):
        title = gr.Markdown(L["title"])
        lang = gr.Radio([("中文", "zh"), ("English", "en")], value="zh", label=L["lang"], scale=0, min_width=260,
                        elem_id="gr-lang")
    with gr.Row(elem_id="gr-status"):
        status = gr.HTML(esc(state.holder.loading_text("zh")), elem_id="gr-index", scale=0, min_width=0)
        took = gr.HTML("", elem_id="gr-took", scale=0, min_width=0)
    return Header(title, lang, status, took, gr.Timer(1.0, active=True))


# ---------------------------------------------------------------- the chat tab

@dataclass
class Chat:
    chatbot: Any
    box: Any
    send: Any
    clear: Any
    examples: Any
    accordion: Any
    k: Any
    mode: Any
    doc: Any
    district: Any
    year: Any
    sources_title: Any
    sources: Any
    last: Any


def chat_layout(state: AppState) -> Chat:
    """The chat tab's components: chat, question box, examples, retrieval settings, sources."""
    L = LABELS["zh"]
    with gr.Row():
        with gr.Column(scale=5):
            chatbot = gr.Chatbot(label=L["chat"], height=400, elem_id="gr-chat", buttons=["copy"],
                                 feedback_options=None)
            with gr.Row(equal_height=True):
                box = gr.Textbox(label=L["question"], placeholder=L["placeholder"], scale=5, lines=1, max_lines=4,
                                 elem_id="gr-question", autofocus=True, show_label=False, container=False)
                send = gr.Button(L["send"], variant="primary", scale=1, elem_id="gr-send")
                clear = gr.Button(L["clear"], scale=0, min_width=80)
            examples = gr.Dataset(label=L["examples"], components=[box], samples=[], elem_id="gr-examples")
            with gr.Accordion(L["settings"], open=True) as accordion:
                with gr.Row():
                    k = gr.Slider(1, 20, value=state.settings.k, step=1, label=L["k"])
                    mode = gr.Radio([(L[m], m) for m in state.modes], value="extractive", label=L["mode"])
                with gr.Row():
                    doc = gr.Dropdown([(L["all"], "")], value="", label=L["doc"])
                    district = gr.Dropdown([(L["all"], "")], value="", label=L["district"])
                    year = gr.Dropdown([(L["all"], "")], value="", label=L["year"])
        with gr.Column(scale=4):
            sources_title = gr.Markdown(L["sources"])
            sources = gr.HTML(render_sources(None, {}, "zh"), elem_id="gr-sources")
    return Chat(chatbot, box, send, clear, examples, accordion, k, mode, doc, district, year, sources_title,
                sources, gr.State(None))


def make_respond(state: AppState) -> Callable[..., Iterator[tuple]]:
    """The chat's answer handler: the question at once, streamed text, then answer and sources."""

    def respond(message: str, history: list, k: float, doc: str, district: str, year: str, mode: str,
                lang: str) -> Iterator[tuple]:
        L = LABELS[lang]
        question = (message or "").strip()
        if not question:
            raise gr.Error(L["empty"])
        history = list(history or []) + [{"role": "user", "content": esc_md(question)},
                                         {"role": "assistant", "content": "…" if state.holder.ready else L["wait"]}]
        yield history, gr.skip(), "", gr.skip(), gr.skip(), gr.skip()
        try:
            answer = None
            for part in state.run(question, int(k), parse_filters(doc, district, year), mode == "llm"):
                if isinstance(part, Answer):
                    answer = part
                else:
                    history[-1] = {"role": "assistant", "content": esc_md(part) + " ▌"}
                    yield history, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            assert answer is not None
            c = state.corpus()
            history[-1] = {"role": "assistant", "content": render_message(answer, lang)}
            yield (history, render_sources(answer, c.chunks, lang), gr.skip(), state.status(lang, answer.mode),
                   took_text(lang, answer), answer)
        except GovragError as exc:
            history[-1] = {"role": "assistant", "content": esc_md(L["error"].format(error=exc))}
            yield history, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    return respond


def build_chat_tab(state: AppState, header: Header) -> Chat:
    """The chat tab and its events (answering, examples, clearing)."""
    chat = chat_layout(state)
    respond = make_respond(state)
    inputs = [chat.box, chat.chatbot, chat.k, chat.doc, chat.district, chat.year, chat.mode, header.lang]
    outputs = [chat.chatbot, chat.sources, chat.box, header.status, header.took, chat.last]
    # the box is cleared by the first output only (a question typed while an answer streams stays),
    # and a question sent while the last one is still being answered is answered next
    for trigger in (chat.box.submit, chat.send.click):
        trigger(respond, inputs, outputs, api_visibility="undocumented", concurrency_id="answer",
                show_progress="minimal", trigger_mode="always_last")
    chat.examples.click(lambda sample: sample[0] if isinstance(sample, list) else sample, chat.examples, chat.box,
                        api_visibility="private", queue=False).then(
        respond, inputs, outputs, api_visibility="private", concurrency_id="answer", show_progress="minimal")
    chat.clear.click(lambda lang_: ([], render_sources(None, {}, lang_), "", None), header.lang,
                     [chat.chatbot, chat.sources, header.took, chat.last], api_visibility="private", queue=False)
    chat.mode.change(state.status, [header.lang, chat.mode], header.status, api_visibility="private", queue=False)
    return chat


def chat_choices(c: Corpus | None, lang: str) -> tuple:
    """The document / district / year dropdowns for an index."""
    every = [(LABELS[lang]["all"], "")]
    return (gr.Dropdown(choices=every + (c.docs if c else [])),
            gr.Dropdown(choices=every + [(d, d) for d in (c.districts if c else [])]),
            gr.Dropdown(choices=every + [(y, y) for y in (c.years if c else [])]))


def relabel_chat(state: AppState, chat: Chat, lang: str, mode: str, last: Answer | None) -> list:
    """The chat tab's labels in `lang` (in the order of `chat_outputs`)."""
    L = LABELS[lang]
    c = state.corpus_if_ready()
    doc, district, year = chat_choices(c, lang)
    return [gr.Chatbot(label=L["chat"]), gr.Textbox(label=L["question"], placeholder=L["placeholder"]),
            gr.Button(value=L["send"]), gr.Button(value=L["clear"]), gr.Dataset(label=L["examples"]),
            gr.Accordion(label=L["settings"]), gr.Slider(label=L["k"]),
            gr.Radio(label=L["mode"], choices=[(L[m], m) for m in state.modes]),
            gr.Dropdown(label=L["doc"], choices=doc.choices), gr.Dropdown(label=L["district"], choices=district.choices),
            gr.Dropdown(label=L["year"], choices=year.choices), L["sources"],
            render_sources(last, c.chunks if c else {}, lang)]


def chat_outputs(chat: Chat) -> list:
    return [chat.chatbot, chat.box, chat.send, chat.clear, chat.examples, chat.accordion, chat.k, chat.mode, chat.doc,
            chat.district, chat.year, chat.sources_title, chat.sources]


# ---------------------------------------------------------------- the documents tab

@dataclass
class Docs:
    files: Any
    add: Any
    result: Any
    heading: Any
    table: Any
    pick: Any
    remove: Any


def docs_layout() -> Docs:
    L = LABELS["zh"]
    with gr.Row():
        with gr.Column(scale=3):
            files = gr.File(label=L["upload"], file_count="multiple", elem_id="gr-upload")
            add = gr.Button(L["add"], variant="primary", elem_id="gr-add")
            result = gr.HTML("", elem_id="gr-add-result")
        with gr.Column(scale=2):
            pick = gr.Dropdown([], value=None, label=L["remove_doc"], elem_id="gr-remove-doc")
            remove = gr.Button(L["remove"], variant="stop", elem_id="gr-remove")
    heading = gr.Markdown(L["indexed"])
    table = gr.Dataframe(headers=L["columns"].split("|"), value=[], interactive=False, wrap=True, elem_id="gr-docs")
    return Docs(files, add, result, heading, table, pick, remove)


def docs_view(state: AppState, lang: str) -> tuple:
    """(table, remove dropdown) for the live index."""
    docs = state.holder.get().documents()
    return (gr.Dataframe(value=documents_rows(docs, lang), headers=LABELS[lang]["columns"].split("|")),
            gr.Dropdown(choices=[(f"{d.title[:30]} ({d.name})", d.name) for d in docs], value=None))


def build_docs_tab(state: AppState, header: Header) -> Docs:
    """Upload several files, list the indexed documents, remove one."""
    docs = docs_layout()

    def add(files: list | None, lang: str, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
        L = LABELS[lang]
        state.check_writer(request, lang)
        paths = [f if isinstance(f, str) else f.name for f in files or []]
        if not paths:
            raise gr.Error(L["no_files"])

        def step(i: int, n: int, name: str) -> None:
            progress((i, n), desc=L["adding"].format(name=name) if name else L["indexing"])

        report = state.holder.get().add_documents(paths, [Path(p).name for p in paths], step)
        return (render_add_report(report, lang), *docs_view(state, lang), None, gr.Timer(active=True))

    def remove(name: str | None, lang: str, request: gr.Request) -> tuple:
        L = LABELS[lang]
        state.check_writer(request, lang)
        if not name:
            raise gr.Error(L["pick_doc"])
        try:
            state.holder.get().remove_document(name)
        except GovragError as exc:
            raise gr.Error(str(exc)) from exc
        return (f'<p class="gr-ok">{esc(L["removed"].format(name=name))}</p>', *docs_view(state, lang),
                gr.Timer(active=True))

    docs.add.click(add, [docs.files, header.lang], [docs.result, docs.table, docs.pick, docs.files, header.timer],
                   api_visibility="private", concurrency_id="documents", concurrency_limit=1)
    docs.remove.click(remove, [docs.pick, header.lang], [docs.result, docs.table, docs.pick, header.timer],
                      api_visibility="private", concurrency_id="documents", concurrency_limit=1)
    return docs


def relabel_docs(state: AppState, lang: str) -> list:
    """The documents tab's labels in `lang` (in the order of `docs_outputs`)."""
    L = LABELS[lang]
    table = docs_view(state, lang)[0] if state.holder.ready else gr.Dataframe(headers=L["columns"].split("|"))
    return [gr.File(label=L["upload"]), gr.Button(value=L["add"]), L["indexed"], table,
            gr.Dropdown(label=L["remove_doc"]), gr.Button(value=L["remove"])]


def docs_outputs(docs: Docs) -> list:
    return [docs.files, docs.add, docs.heading, docs.table, docs.pick, docs.remove]


# ---------------------------------------------------------------- the task tables tab

@dataclass
class Tasks:
    doc: Any
    unit: Any
    role: Any
    section: Any
    status: Any
    due: Any
    go: Any
    note: Any
    table: Any
    download: Any


_ROLES = ("lead", "participant", "any")
_STATUSES = ("", "completed", "not_completed", "in_progress", "not_started", "unknown")


def tasks_layout() -> Tasks:
    """Filters over the task records (document, unit and role, section, status, deadline), the
    table (sortable by its headers) and a CSV download."""
    L = LABELS["zh"]
    with gr.Row():
        doc = gr.Dropdown([(L["all"], "")], value="", label=L["t_doc"], elem_id="gr-t-doc")
        unit = gr.Textbox(label=L["t_unit"], elem_id="gr-t-unit")
        role = gr.Radio(list(zip(L["t_roles"].split("|"), _ROLES)), value="lead", label=L["t_role"])
    with gr.Row():
        section = gr.Textbox(label=L["t_section"], elem_id="gr-t-section")
        status = gr.Dropdown(list(zip(L["t_statuses"].split("|"), _STATUSES)), value="", label=L["t_status"])
        due = gr.Textbox(label=L["t_due"], elem_id="gr-t-due")
    with gr.Row():
        go = gr.Button(L["t_filter"], variant="primary", elem_id="gr-t-filter")
        download = gr.DownloadButton(L["t_download"], value=None, elem_id="gr-t-download")
    note = gr.Markdown("", elem_id="gr-t-note")
    table = gr.Dataframe(headers=L["t_columns"].split("|"), value=[], interactive=False, wrap=True, elem_id="gr-tasks")
    return Tasks(doc, unit, role, section, status, due, go, note, table, download)


def tasks_view(state: AppState, lang: str, doc: str = "", unit: str = "", role: str = "lead", section: str = "",
               status: str = "", due: str = "") -> tuple:
    """(note, table, CSV download) of the task records passing the filters."""
    import csv
    import tempfile

    L = LABELS[lang]
    pipeline = state.holder.get()
    try:
        rows = pipeline.retriever.index.tasks.to_rows(pipeline.tasks(
            doc=doc or None, unit=unit.strip() or None, role=role or "lead", section=section.strip() or None,
            status=status or None, due_before=due.strip() or None))
    except GovragError as exc:
        return f'<span class="gr-bad">{esc(exc)}</span>', gr.Dataframe(value=[]), gr.DownloadButton(value=None)
    keys = ("doc", "number", "section", "task", "leads", "participants", "deadline", "status", "status_words")
    path = Path(tempfile.mkdtemp(prefix="govrag-tasks-")) / "tasks.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(L["t_columns"].split("|"))
        writer.writerows([[r[k] for k in keys] for r in rows])
    return (esc(L["t_count"].format(n=len(rows))), gr.Dataframe(value=[[r[k] for k in keys] for r in rows],
                                                               headers=L["t_columns"].split("|")),
            gr.DownloadButton(value=str(path)))


def tasks_docs(state: AppState, lang: str) -> Any:
    """The task-table documents for the filter's dropdown."""
    tasks = state.holder.get().retriever.index.tasks
    titles = {r["doc"]: r["title"] for r in tasks.records}
    return gr.Dropdown(choices=[(LABELS[lang]["all"], "")] + [(f"{t[:30]} ({d})", d) for d, t in titles.items()])


def relabel_tasks(lang: str) -> list:
    """The task tab's labels in `lang` (in the order of `tasks_outputs`)."""
    L = LABELS[lang]
    return [gr.Textbox(label=L["t_unit"]), gr.Radio(label=L["t_role"], choices=list(zip(L["t_roles"].split("|"), _ROLES))),
            gr.Textbox(label=L["t_section"]),
            gr.Dropdown(label=L["t_status"], choices=list(zip(L["t_statuses"].split("|"), _STATUSES))),
            gr.Textbox(label=L["t_due"]), gr.Button(value=L["t_filter"]), gr.DownloadButton(label=L["t_download"])]


def tasks_outputs(t: Tasks) -> list:
    return [t.unit, t.role, t.section, t.status, t.due, t.go, t.download]


def build_tasks_tab(state: AppState, header: Header) -> Tasks:
    """Filter, sort and download the task records."""
    t = tasks_layout()
    t.go.click(lambda doc, unit, role, section, status, due, lang: tasks_view(state, lang, doc, unit, role, section,
                                                                               status, due),
               [t.doc, t.unit, t.role, t.section, t.status, t.due, header.lang], [t.note, t.table, t.download],
               api_visibility="private", concurrency_id="answer")
    return t


# ---------------------------------------------------------------- the API (gradio_client)

def build_api(state: AppState) -> None:
    """Endpoints for programs: ask, documents, add_documents, remove_document."""

    def ask(question: str, k: int = 0, doc: str = "", district: str = "", year: str = "", filters: str = "",
            llm: bool = False) -> dict:
        """Answer one question with citations. k: passages (0 = default); doc/district/year or
        filters (a JSON object, e.g. {"year": 2022}) narrow the search; llm: use the LLM if configured."""
        if not (question or "").strip():
            raise gr.Error("the question is empty")
        try:
            return answer_json(state.answer(question, int(k) or None, parse_filters(doc, district, year, filters),
                                             bool(llm)))
        except GovragError as exc:
            raise gr.Error(str(exc)) from exc

    def documents() -> list[dict]:
        """Every indexed document: name, title, district, year, kind, chunks, added, uploaded."""
        return [asdict(d) for d in state.holder.get().documents()]

    def add_documents(files: list | None, request: gr.Request) -> dict:
        """Add files; returns added, replaced, skipped (one reason per refused file) and retrieval."""
        state.check_writer(request)
        paths = [f if isinstance(f, str) else f.name for f in files or []]
        if not paths:
            raise gr.Error("no files given")
        pipeline = state.holder.get()
        report = pipeline.add_documents(paths, [Path(p).name for p in paths])
        return {**asdict(report), "retrieval": pipeline.retriever.index.retrieval}

    def remove_document(name: str, request: gr.Request) -> dict:
        """Remove one document by file name; returns the documents left."""
        state.check_writer(request)
        try:
            state.holder.get().remove_document(name)
        except GovragError as exc:
            raise gr.Error(str(exc)) from exc
        return {"removed": name, "documents": documents()}

    def tasks(doc: str = "", unit: str = "", role: str = "lead", section: str = "", status: str = "",
              due_before: str = "") -> list[dict]:
        """Task records: doc, unit (as people write it), role (lead | participant | any), section
        (number or title words), status, due_before (YYYY-MM-DD)."""
        pipeline = state.holder.get()
        try:
            return pipeline.retriever.index.tasks.to_rows(pipeline.tasks(
                doc=doc or None, unit=unit or None, role=role or "lead", section=section or None,
                status=status or None, due_before=due_before or None))
        except GovragError as exc:
            raise gr.Error(str(exc)) from exc

    gr.api(ask, api_name="ask", concurrency_id="answer")
    gr.api(tasks, api_name="tasks", concurrency_id="answer")
    gr.api(documents, api_name="documents", concurrency_id="answer")
    gr.api(remove_document, api_name="remove_document", concurrency_id="documents", concurrency_limit=1)
    with gr.Row(visible=False):  # files need a File component to arrive as uploads
        files, out, trigger = gr.File(file_count="multiple"), gr.JSON(), gr.Button()
    trigger.click(add_documents, files, out, api_name="add_documents", concurrency_id="documents",
                  concurrency_limit=1)


# ---------------------------------------------------------------- the page

def wire_page(state: AppState, demo: gr.Blocks, header: Header, tabs: list, chat: Chat, docs: Docs,
              tasks: Tasks) -> None:
    """Loading (progress, then choices and examples), the status line's polling, the language."""

    def on_load(lang: str, mode: str) -> Iterator[tuple]:
        while not state.holder.ready:
            yield (gr.skip(),) * 7 + (state.status(lang, mode),)
            state.holder.wait(0.5)
        try:
            c = state.corpus()
        except GovragError:
            yield (gr.skip(),) * 7 + (state.status(lang, mode),)
            return
        yield (*chat_choices(c, lang), gr.Dataset(samples=[[q] for q in c.examples]), *docs_view(state, lang),
               tasks_docs(state, lang), state.status(lang, mode))

    def tick(lang: str, mode: str) -> tuple:
        return state.status(lang, mode), gr.Timer(active=not state.settled())

    def relabel(lang: str, mode: str, last: Answer | None) -> list:
        L = LABELS[lang]
        return ([L["title"], gr.Radio(label=L["lang"]), gr.Tab(label=L["chat"]), gr.Tab(label=L["docs_tab"]),
                 gr.Tab(label=L["tasks_tab"])]
                + relabel_chat(state, chat, lang, mode, last) + relabel_docs(state, lang) + relabel_tasks(lang)
                + [state.status(lang, mode), took_text(lang, last)])

    demo.load(on_load, [header.lang, chat.mode],
              [chat.doc, chat.district, chat.year, chat.examples, docs.table, docs.pick, tasks.doc, header.status],
              api_visibility="private", concurrency_limit=None, show_progress_on=[header.status])
    header.timer.tick(tick, [header.lang, chat.mode], [header.status, header.timer], api_visibility="private",
                      queue=False, show_progress="hidden")
    header.lang.change(relabel, [header.lang, chat.mode, chat.last],
                       [header.title, header.lang, *tabs] + chat_outputs(chat) + docs_outputs(docs) + tasks_outputs(tasks)
                       + [header.status, header.took],
                       api_visibility="private", queue=False)


def build_app(pipeline_or_factory: Any, settings: Settings, require_login: bool | None = None) -> gr.Blocks:
    """The chat and documents tabs and the API over a Pipeline (or a factory that builds one, run
    in the background). `require_login` (default: GOVRAG_AUTH is set) limits adding and
    removing documents to signed-in users."""
    if require_login is None:
        require_login = bool(os.environ.get("GOVRAG_AUTH"))
    modes = ["extractive", "llm"] if settings.llm_configured else ["extractive"]
    state = AppState(PipelineHolder(pipeline_or_factory, settings.index_dir), settings, require_login, modes)
    with gr.Blocks(title="govrag", analytics_enabled=False) as demo:
        header = build_header(state)
        with gr.Tabs():
            with gr.Tab(LABELS["zh"]["chat"], id="chat", elem_id="gr-tab-chat") as chat_tab:
                chat = build_chat_tab(state, header)
            with gr.Tab(LABELS["zh"]["docs_tab"], id="docs", elem_id="gr-tab-docs") as docs_tab:
                docs = build_docs_tab(state, header)
            with gr.Tab(LABELS["zh"]["tasks_tab"], id="tasks", elem_id="gr-tab-tasks") as tasks_tab:
                tasks = build_tasks_tab(state, header)
        wire_page(state, demo, header, [chat_tab, docs_tab, tasks_tab], chat, docs, tasks)
        build_api(state)
    return demo


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """GOVRAG_AUTH="user:password" -> (user, password); unset -> None."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise GovragError('GOVRAG_AUTH must look like "user:password"')
    return user, password


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           **kwargs: Any) -> Any:
    """Queue (bounded concurrency) and start the server with the app's theme and CSS."""
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo.launch(server_name=host, server_port=port, auth=auth, theme=THEME, css=CSS, ssr_mode=False,
                       footer_links=["api"], max_file_size=MAX_REQUEST_FILE, **kwargs)


def _factory(settings: Settings) -> Callable[[], Any]:
    """Bring the lexical index up to date with its documents (build it when there is none), load
    the pipeline, and start computing the missing vectors in the background."""

    def make() -> Any:
        from rag.library import sync_lexical
        from rag.pipeline import Pipeline

        if not (Path(settings.index_dir) / "CURRENT").is_file():
            print(f"govrag: no index at {settings.index_dir}; building it from {settings.docs} "
                  "(the chat is already up and shows progress)", file=sys.stderr, flush=True)
        report = sync_lexical(settings)
        if report is not None:
            print(report.summary(), file=sys.stderr, flush=True)
        pipeline = Pipeline.load(settings.index_dir, settings)
        for warm_up in ("政府工作报告", "government work report"):  # load jieba, model, glossary now,
            pipeline.ask(warm_up, k=1)  # not in the first user's question
        pipeline.embed_in_background()
        print(f"govrag: ready ({len(pipeline.retriever.index.chunks)} chunks, "
              f"{pipeline.retriever.index.retrieval} retrieval)", file=sys.stderr, flush=True)
        return pipeline

    return make


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="govrag chat (Gradio)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--index", help="index folder (default: .govrag/index; built on first start)")
    p.add_argument("--config", help="TOML settings file")
    return p


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    """Start the chat (blocks until interrupted). Used by `govrag serve` and `python app.py`."""
    if not isinstance(args, argparse.Namespace):
        args = build_parser().parse_args(args)
    try:
        settings = load_settings(getattr(args, "config", None), index_dir=getattr(args, "index", None))
        auth = parse_auth(os.environ.get("GOVRAG_AUTH"))
        demo = build_app(_factory(settings), settings)
        print(f"govrag: chat on http://{args.host}:{args.port}" + (" (basic auth)" if auth else ""),
              file=sys.stderr, flush=True)
        launch(demo, args.host, args.port, auth, quiet=True)
    except (GovragError, OSError) as exc:  # bad settings/auth, port taken
        print(f"govrag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
