"""Load documents: decode, normalise, strip web boilerplate, split pages into articles, metadata.

A file becomes one cleaned text (`SourceFile.text`) and one or more logical documents
(`Document`, an article span of that text with its own title, date and kind). Chunk offsets
always point into `SourceFile.text`.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .models import GovragError

TEXT_SUFFIXES = {".txt", ".md", ".html", ".htm"}
OPTIONAL_SUFFIXES = {".pdf": "pypdf", ".docx": "python-docx"}
MAX_FILE_BYTES = 200 * 1024 * 1024

# Site furniture, one list: lines equal to one of these are navigation or widgets.
FURNITURE_LINES = {
    "返回手机版", "请输入检索词", "请输入文字", "发表评论", "请登录后提交", "提交", "查看更多评论",
    "立即获取", "关闭", "确认", "投稿提示", "分享到", "打印本页", "关闭窗口", "返回顶部", "上一篇",
    "下一篇", "扫一扫在手机打开当前页", "字号", "大", "中", "小",
}
# A line containing one of these starts the site footer (comment box, submission rules, contacts):
# everything from there to the end of the page is dropped, if it lies in the page's last part.
FOOTER_MARKERS = (
    "点我投稿", "投稿须知", "投稿提示", "发表评论", "请输入文字", "评论列表", "投资咨询热线",
    "版权所有", "网站地图", "ICP备",
)
FOOTER_MIN_POSITION = 0.5  # a footer marker counts only after this share of the page's text,
# except the comment and submission widgets, which count anywhere after the article's first
# paragraph (a short article can sit above a long footer of submission rules)
WIDGET_MARKERS = ("点我投稿", "投稿须知", "投稿提示", "发表评论", "请输入文字", "评论列表")
_CONTENT_LINE = re.compile(r"^(?=.{30,}).*[。!?]")
_FURNITURE_RE = re.compile(
    r"^(评论列表\(\d+条\)|[((](?:上接|下转|接上|转)[^))]{1,8}[))]|[•·]\s*\S{1,10}|\d{3,4}-\d{3,4}-\d{3,4}|第?\d+页|分享到.*)$"
)
_BULLET_TITLE_RE = re.compile(r"^[•·]\s*(\S.{3,})$")
_DATE_LINE_RE = re.compile(r"^(20\d{2})-(\d{2})-(\d{2})$")
_PUBLISH_RE = re.compile(r"发布日期\s*[::|]\s*\|?\s*(20\d{2})[-年/.](\d{1,2})[-月/.](\d{1,2})")
_CN_DATE_RE = re.compile(r"(20\d{2})年(\d{1,2})月(\d{1,2})日")
_YEAR_RE = re.compile(r"(20\d{2})年")
_YEAR_NAMED = re.compile(r"(?<![\d.])(20\d{2})(?![\d.])(?!\s*(?:万|亿|元|个|人|吨|%|米))")  # 2023年, 2023—2024产季
_TITLE_END_RE = re.compile(r"(工作报告|任务|计划|情况|情况表|季度\)|方案|规划|要点|总结)$")

# Places the corpus talks about; the first is the canonical name, the rest are aliases.
DISTRICTS: dict[str, tuple[str, ...]] = {
    "即墨区": ("即墨区", "即墨"),
    "城阳区": ("城阳区", "城阳"),
    "潮海街道": ("潮海街道",),
    "崂山区": ("崂山区", "崂山"),
    "黄岛区": ("黄岛区", "西海岸新区"),
    "市南区": ("市南区",),
    "市北区": ("市北区",),
    "李沧区": ("李沧区",),
    "胶州市": ("胶州市", "胶州"),
    "平度市": ("平度市", "平度"),
    "莱西市": ("莱西市", "莱西"),
}


@dataclass
class Document:
    """A logical document: one article span of a source file, with metadata."""

    doc: str  # file name
    index: int  # article number inside the file (0 for single-article files)
    start: int
    end: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceFile:
    """A decoded, cleaned file and the logical documents it holds."""

    path: Path
    text: str
    sha256: str
    documents: list[Document]

    @property
    def name(self) -> str:
        return self.path.name


def decode_bytes(data: bytes, name: str = "input") -> str:
    """Decode UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK; reject binary data."""
    if not data:
        return ""
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):  # UTF-16 with a byte-order mark (Windows "Unicode" text)
            try:
                return data[2:].decode(codec)
            except UnicodeDecodeError as exc:
                raise GovragError(f"{name}: damaged UTF-16 text ({exc.reason})") from exc
    if b"\x00" in data[:4096]:
        raise GovragError(f"{name}: looks like a binary file (NUL bytes), not a text document")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # UTF-8 cut off inside the last character: keep the rest. (Other errors near the end,
        # such as a GBK file whose only Chinese is its last character, are not truncation.)
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8")
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise GovragError(f"{name}: cannot detect the text encoding (not UTF-8 or GB18030)")
    return str(best)


# Full-width ASCII forms (U+FF01-FF5E: ，？；：（）％１２) -> their ASCII twins, one character for
# one, so offsets into the text stay valid. The seeds are written with ASCII punctuation, and every
# pattern that reads text or questions is written for it.
_HALF_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}


def fold_width(text: str) -> str:
    """Full-width ASCII forms as ASCII (，->, ？->? １->1); the length is unchanged."""
    return text.translate(_HALF_WIDTH)


def normalise(text: str) -> str:
    """Unify line endings, odd spaces and full-width ASCII forms; the content is otherwise kept."""
    text = fold_width(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\u3000", " ").replace("\xa0", " ").replace("\ufeff", "")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return "\n".join(line.rstrip() for line in text.split("\n"))


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, with line breaks at block elements."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
              "article", "table", "ul", "ol", "header", "footer", "title"}
    HIDDEN = {"script", "style", "noscript", "template", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts))


def _read_optional(path: Path) -> str:
    module = OPTIONAL_SUFFIXES[path.suffix.lower()]
    try:
        if path.suffix.lower() == ".pdf":
            from pypdf import PdfReader

            return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
        import docx

        return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
    except ImportError as exc:
        raise GovragError(
            f"{path.name}: reading {path.suffix} files needs {module}: pip install 'govrag[docs]'"
        ) from exc


def read_raw(path: Path) -> str:
    """The decoded, normalised text of a file, before boilerplate removal."""
    path = Path(path)
    if not path.exists():
        raise GovragError(f"{path}: no such file")
    if not path.is_file():
        raise GovragError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix in OPTIONAL_SUFFIXES:
        return normalise(_read_optional(path))
    if suffix not in TEXT_SUFFIXES:
        raise GovragError(f"{path.name}: unsupported file type {suffix!r} (use .txt .md .html .pdf .docx)")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise GovragError(f"{path.name}: {size // 2**20} MB is over the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        text = decode_bytes(path.read_bytes(), path.name)
    except OSError as exc:
        raise GovragError(f"{path}: cannot read ({exc.strerror})") from exc
    if suffix in {".html", ".htm"}:
        text = html_to_text(text)
    text = normalise(text)
    if suffix == ".md":  # markdown heading marks are markup, not text ("## 一、…" is a heading)
        text = re.sub(r"^ {0,3}#{1,6} +(.*?)(?: +#+)? *$", r"\1", text, flags=re.M)
    return text


def is_furniture(line: str) -> bool:
    """True for navigation, widget and contact lines."""
    s = line.strip()
    return s in FURNITURE_LINES or bool(_FURNITURE_RE.match(s))


def strip_boilerplate(text: str) -> str:
    """Drop furniture lines, then the footer that starts at the first footer marker."""
    lines = text.split("\n")
    total = max(1, sum(len(line) for line in lines))
    seen, kept, content = 0, [], False
    for line in lines:
        seen += len(line)
        if seen / total >= FOOTER_MIN_POSITION and any(m in line for m in FOOTER_MARKERS):
            break
        if content and any(m in line for m in WIDGET_MARKERS):
            break
        content = content or bool(_CONTENT_LINE.match(line.strip()))
        kept.append("" if is_furniture(line) else line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")


def _article_spans(text: str) -> list[tuple[int, int, str | None, str | None]]:
    """Split a listing page into (start, end, title, date); one span when it is a single article.

    An article on a listing page starts at a bullet title line ("• title") and its date may
    follow on a line of its own (2022-04-24).
    """
    starts: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        m = _BULLET_TITLE_RE.match(line.strip())
        if m and len(m.group(1)) >= 6:
            starts.append((offset, m.group(1).strip()))
        offset += len(line) + 1
    if len(starts) < 2:
        return [(0, len(text), None, None)]
    spans = []
    for i, (start, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[start:end]
        dates = [m for line in body.split("\n") if (m := _DATE_LINE_RE.match(line.strip()))]
        date = "-".join(dates[-1].groups()) if dates else None
        spans.append((start, end, title, date))
    if starts[0][0] > 0 and text[: starts[0][0]].strip():
        spans.insert(0, (0, starts[0][0], None, None))
    return spans


def _title(body: str) -> str:
    lines = [line.strip() for line in body.split("\n") if line.strip()]
    for i, line in enumerate(lines):
        if _PUBLISH_RE.search(line) and i > 0 and "|" not in lines[i - 1]:
            return lines[i - 1]
    for line in lines[:40]:
        if len(line) <= 60 and "|" not in line and "》" not in line and _TITLE_END_RE.search(line):
            return line
    return next((line[:60] for line in lines if "|" not in line), "")


def _district(title: str, body: str) -> str | None:
    def count(s: str) -> Counter:
        return Counter({name: sum(s.count(a) for a in aliases) for name, aliases in DISTRICTS.items()})

    for counts in (count(title), count(body)):
        if counts and max(counts.values()) > 0:
            return counts.most_common(1)[0][0]
    return None


def _kind(title: str, body: str) -> str:
    if "进展情况表" in title or re.search(r"序号\s*工作事项", body):
        return "progress_table"
    if "牵头单位" in body and re.search(r"^\d{1,3}[.．]", body, re.M):
        return "task_list"
    if re.search(r"工作报告|完成情况|工作总结|工作计划", title):
        return "work_report"
    return "news"


def document_meta(title: str, body: str, date: str | None = None) -> dict[str, Any]:
    """Title, district, year the content is about, publish date, kind, issuing body."""
    meta: dict[str, Any] = {"title": title}
    if date is None and (m := _PUBLISH_RE.search(body)):
        date = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    if date is None and (m := _CN_DATE_RE.search(body[:3000])):
        date = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    if date:
        meta["publish_date"] = date
    if (district := _district(title, body)) is not None:
        meta["district"] = district
    years = _YEAR_RE.findall(title) or _YEAR_RE.findall(body[:2000])
    if years:
        meta["year"] = int(years[0])
    if m := re.search(r"发文机关\s*\|\s*([^|\n]+?)\s*\|", body):
        meta["issuer"] = m.group(1)
    meta["kind"] = _kind(title, body)
    if meta["kind"] == "news":  # an article is about every year it names (a title may name one compared with)
        meta["years"] = sorted({int(y) for y in _YEAR_NAMED.findall(title + body)})
    return meta


def load_file(path: str | Path) -> SourceFile:
    """Read one file into cleaned text and logical documents (raises GovragError on bad input)."""
    path = Path(path)
    text = strip_boilerplate(read_raw(path))
    documents = []
    for i, (start, end, title, date) in enumerate(_article_spans(text)):
        body = text[start:end]
        if not body.strip():
            continue
        meta = document_meta(title or _title(body), body, date)
        documents.append(Document(path.name, i, start, end, meta))
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return SourceFile(path, text, sha, documents)


def find_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and directories into the supported document files, sorted, de-duplicated."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise GovragError(f"{p}: no such file or directory")
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES | set(OPTIONAL_SUFFIXES) \
                        and not any(part.startswith(".") for part in f.relative_to(p).parts):
                    found[f.resolve()] = None
        else:
            found[p.resolve()] = None
    if not found:
        raise GovragError(f"no documents (.txt .md .html .pdf .docx) in {', '.join(map(str, paths))}")
    return list(found)
