"""Document loading (issue 2): file types, encodings, boilerplate removal on made-up files and on
the real seeds, nothing of the content lost, articles of a listing page, document metadata."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from rag.chunking import chunk_source
from rag.documents import decode_bytes, find_files, load_file, normalise, read_raw
from rag.models import GovragError

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))

BODY = (
    "示范区2023年工作总结\n"
    "发布日期:2023-12-30\n"
    "一、经济发展\n"
    "全年完成地区生产总值520亿元,增长6.5%。新增市场主体1.2万户。\n"
    "二、民生保障\n"
    "新建学校3所,新增城镇就业8000人。\n"
)
# Site furniture seen on the seed pages, alone in a file.
FURNITURE_ONLY = "返回手机版\n\n请输入检索词\n\n发表评论\n请登录后提交\n提交\n评论列表(0条)\n查看更多评论\n"
# Navigation, submission rules and contacts of the sites the seeds were scraped from.
BOILERPLATE = ("投稿", "返回手机版", "请输入检索词", "评论列表", "发表评论", "请登录后提交", "查看更多评论",
               "产业园区网", "400-162-2002", "立即获取", "投资咨询热线")
# A raw line containing one of these starts the page footer (comment box, submission rules).
FOOTER_STARTS = ("点我投稿", "投稿提示", "投稿须知", "请输入文字", "发表评论", "评论列表")


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _check_body(source) -> None:
    assert "全年完成地区生产总值520亿元,增长6.5%。" in source.text
    assert "\r" not in source.text and "\ufeff" not in source.text
    [doc] = source.documents
    assert doc.meta["title"] == "示范区2023年工作总结"
    assert doc.meta["publish_date"] == "2023-12-30"
    assert doc.meta["year"] == 2023
    assert doc.meta["kind"] == "work_report"
    chunks = chunk_source(source)
    assert any("新增城镇就业8000人" in c.text for c in chunks)


@pytest.mark.parametrize("name, data", [
    ("utf8.txt", BODY.encode("utf-8")),
    ("bom.txt", b"\xef\xbb\xbf" + BODY.encode("utf-8")),
    ("gbk.txt", BODY.encode("gbk")),
    ("gb18030.txt", (BODY + "生僻字𠀀也能读出。\n").encode("gb18030")),
    ("crlf.txt", BODY.replace("\n", "\r\n").encode("utf-8")),
    ("crlf_gbk.txt", BODY.replace("\n", "\r\n").encode("gbk")),
    ("utf16.txt", "\ufeff".encode("utf-16-le") + BODY.encode("utf-16-le")),
])
def test_encodings_and_line_endings(tmp_path, name, data):
    source = load_file(_write(tmp_path, name, data))
    _check_body(source)
    if name == "gb18030.txt":
        assert "生僻字𠀀也能读出。" in source.text


def test_gbk_file_whose_only_chinese_is_its_last_character():
    """A GBK byte pair at the end is not a cut-off UTF-8 character: nothing may be dropped."""
    assert decode_bytes(b"Report 2023: done " + "完".encode("gbk")) == "Report 2023: done 完"
    assert decode_bytes("结束。".encode("gbk")) == "结束。"
    # a UTF-8 file cut inside its last character keeps everything before it
    assert decode_bytes("完成率95%。".encode("utf-8")[:-1]) == "完成率95%"


def test_markdown_file(tmp_path):
    md = "# 示范区2023年工作总结\n\n发布日期:2023-12-30\n\n## 一、经济发展\n\n全年完成地区生产总值520亿元,增长6.5%。\n"
    source = load_file(_write(tmp_path, "report.md", md))
    assert "#" not in source.text
    assert source.documents[0].meta["title"] == "示范区2023年工作总结"
    [chunk] = [c for c in chunk_source(source) if "520亿元" in c.text]
    assert chunk.heading_path[-1] == "一、经济发展"


def test_html_file(tmp_path):
    html = (
        "<html><head><title>示范区2023年工作总结</title><style>.nav{color:red}</style>"
        "<script>var tip='返回手机版';</script></head><body><nav>首页 | 新闻中心</nav>"
        "<div>返回手机版</div><div>请输入检索词</div><h1>示范区2023年工作总结</h1><p>发布日期:2023-12-30</p>"
        "<p>全年完成地区生产总值520亿元,增长6.5%。</p><table><tr><td>新建学校</td><td>3所</td></tr></table>"
        "<p>新增城镇就业&nbsp;8000人。</p><div>发表评论</div><div>评论列表(0条)</div></body></html>"
    )
    source = load_file(_write(tmp_path, "page.html", html))
    text = source.text
    assert "全年完成地区生产总值520亿元,增长6.5%。" in text
    assert "新增城镇就业 8000人。" in text and "新建学校 3所" in text
    for junk in ("<", "color:red", "var tip", "首页 | 新闻中心", "返回手机版", "请输入检索词", "发表评论", "评论列表"):
        assert junk not in text, junk
    meta = source.documents[0].meta
    assert meta["title"] == "示范区2023年工作总结" and meta["publish_date"] == "2023-12-30"


def test_empty_file_gives_no_documents_and_no_chunks(tmp_path):
    source = load_file(_write(tmp_path, "empty.txt", b""))
    assert source.text == "" and source.documents == [] and chunk_source(source) == []


def test_file_of_only_boilerplate_gives_no_chunks(tmp_path):
    source = load_file(_write(tmp_path, "furniture.txt", FURNITURE_ONLY))
    assert source.text.strip() == ""
    assert chunk_source(source) == []


def _site_footer() -> str:
    """The real footer of the listing-page site (submission rules, contacts), from seed 003."""
    raw = next(SEEDS.glob("003_*.txt")).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(raw) if "点我投稿" in line)
    return "\n".join(raw[start:]) + "\n"


def test_short_articles_above_a_long_footer(tmp_path):
    """The footer is dropped even when it is longer than the articles above it."""
    page = (
        "  • 示范区新建口袋公园5处 市民休闲更便利\n\n"
        "    今年以来,示范区新建口袋公园5处,总面积1.2万平方米,方便周边居民休闲健身。\n\n    2024-05-01\n\n"
        "  • 示范区新增公交线路3条 出行更便捷\n\n"
        "    示范区新开通公交线路3条,覆盖12个社区,日均客流超过5000人次。\n\n    2024-06-01\n\n"
    )
    footer = _site_footer()
    assert len(footer) > len(page)
    source = load_file(_write(tmp_path, "short.txt", page + footer))
    assert [d.meta["publish_date"] for d in source.documents] == ["2024-05-01", "2024-06-01"]
    assert "日均客流超过5000人次。" in source.text
    for term in BOILERPLATE:
        assert term not in source.text, term


def test_navigation_links_above_the_article_do_not_cut_it(tmp_path):
    page = ("网站地图 | 投稿须知 | 发表评论\n示范区2023年工作总结\n发布日期:2023-12-30\n"
            "全年完成地区生产总值520亿元,增长6.5%。新增市场主体1.2万户,新增城镇就业8000人。\n"
            "二、民生保障\n新建学校3所,改造老旧小区42个,新增养老床位300张。\n")
    source = load_file(_write(tmp_path, "nav.txt", page))
    assert "新建学校3所,改造老旧小区42个,新增养老床位300张。" in source.text
    assert "全年完成地区生产总值520亿元" in source.text


@pytest.mark.parametrize("data", [
    bytes(range(256)) * 8,                                   # arbitrary bytes
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),       # an image renamed to .txt
    b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100),     # a zip / docx renamed to .txt
    bytes(b for b in random.Random(0).randbytes(6000) if b),  # noise without NUL bytes
])
def test_binary_file_is_refused(tmp_path, data):
    with pytest.raises(GovragError, match="binary|cannot detect the text encoding"):
        load_file(_write(tmp_path, "not_text.txt", data))


def test_unsupported_type_and_missing_file(tmp_path):
    with pytest.raises(GovragError, match="unsupported"):
        load_file(_write(tmp_path, "data.xlsx", b"abc"))
    with pytest.raises(GovragError, match="no such file"):
        load_file(tmp_path / "missing.txt")
    with pytest.raises(GovragError):
        find_files([tmp_path / "nowhere"])


def test_find_files_expands_folders_and_skips_hidden(tmp_path):
    _write(tmp_path, "a.txt", BODY)
    _write(tmp_path, "b.md", BODY)
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "c.html", "<p>正文。</p>")
    (tmp_path / ".hidden").mkdir()
    _write(tmp_path / ".hidden", "d.txt", BODY)
    _write(tmp_path, "e.csv", "x,y")
    names = [p.name for p in find_files([tmp_path])]
    assert names == ["a.txt", "b.md", "c.html"]


# ---------------------------------------------------------------- the real seeds


def test_five_seed_files():
    assert [p.name[:3] for p in SEED_FILES] == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("term", BOILERPLATE)
def test_no_chunk_holds_site_boilerplate(seed_chunks, term):
    offenders = [c.id for chunks in seed_chunks.values() for c in chunks if term in c.text]
    assert not offenders, f"{term!r} in {offenders}"


def test_boilerplate_was_there_in_the_raw_files():
    """The check above means something: the raw pages do hold that furniture."""
    raw = "".join(p.read_text(encoding="utf-8") for p in SEED_FILES)
    for term in BOILERPLATE:
        assert term in raw, term


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name[:3])
def test_every_figure_sentence_survives_cleaning(seed_sources, seed_chunks, path):
    """Every raw line with a digit and a sentence end before the page footer is in the cleaned
    text (whitespace aside) and inside some chunk."""
    raw_lines = path.read_text(encoding="utf-8").splitlines()
    footer = next((i for i, line in enumerate(raw_lines) if any(m in line for m in FOOTER_STARTS)), len(raw_lines))
    source = seed_sources[path.name[:3]]
    cleaned = _squash(source.text)
    lines = [line for line in raw_lines[:footer] if re.search(r"\d", line) and "。" in line]
    assert lines
    lost = [line[:50] for line in lines if _squash(line) not in cleaned]
    assert not lost, lost

    covered = bytearray(len(source.text))
    for c in seed_chunks[path.name[:3]]:
        covered[c.start:c.end] = b"\x01" * (c.end - c.start)
    uncovered = []
    for line in lines:
        text = read_raw_line(line)
        pos = source.text.find(text)
        assert pos >= 0, text[:50]
        if not all(covered[i] or source.text[i].isspace() for i in range(pos, pos + len(text))):
            uncovered.append(text[:50])
    assert not uncovered, uncovered


def read_raw_line(line: str) -> str:
    from rag.documents import normalise

    return normalise(line).strip()


def test_read_raw_keeps_furniture_and_load_file_drops_it():
    raw = read_raw(SEED_FILES[0])
    assert raw.startswith("返回手机版")
    assert not load_file(SEED_FILES[0]).text.startswith("返回手机版")


def test_listing_page_003_splits_into_three_articles(seed_sources):
    source = seed_sources["003"]
    docs = source.documents
    assert len(docs) == 3
    titles = [d.meta["title"] for d in docs]
    assert "2021年即墨区政府工作报告" in titles[0]
    assert titles[1] == "即墨蓝谷深化园区发展 产业链长制激活海洋产业动能"
    assert "周戈庄新村" in titles[2] and "羊肚菌" in titles[2]
    assert docs[0].meta["year"] == 2021 and docs[0].meta["kind"] == "work_report"
    assert docs[1].meta["publish_date"] == "2025-07-02"
    assert docs[2].meta["publish_date"] == "2022-04-24"
    assert docs[2].meta["year"] == 2022
    # contiguous, ordered spans of the one cleaned text, each with its own content
    assert [d.index for d in docs] == [0, 1, 2]
    assert docs[0].start == 0 and docs[-1].end == len(source.text)
    assert all(a.end == b.start for a, b in zip(docs, docs[1:]))
    assert "生产总值1278.4亿元" in source.text[docs[0].start:docs[0].end]
    assert "产业链长制" in source.text[docs[1].start:docs[1].end]
    assert "亩产鲜菇达 800 斤" in source.text[docs[2].start:docs[2].end]
    assert "羊肚菌" not in source.text[docs[0].start:docs[0].end]
    # chunks carry their own article's metadata
    chunks = chunk_source(source)
    morel = next(c for c in chunks if "亩产鲜菇" in c.text)
    assert morel.meta["publish_date"] == "2022-04-24" and morel.meta["title"] == titles[2]
    report = next(c for c in chunks if "1278.4亿元" in c.text)
    assert report.meta["year"] == 2021 and report.meta["title"] == titles[0]


@pytest.mark.parametrize("key, expected", [
    ("000", {"title": "政府工作报告确定2022年重点工作事项工作进展情况表(第三季度)", "district": "即墨区",
             "year": 2022, "publish_date": "2022-10-07", "kind": "progress_table"}),
    ("001", {"title": "青岛市城阳区深化新旧动能转换推动绿色低碳高质量发展2023年重点工作任务",
             "district": "城阳区", "year": 2023, "publish_date": "2023-04-27", "kind": "task_list"}),
    ("004", {"title": "潮海街道办事处2020年下半年工作计划完成情况", "district": "潮海街道", "year": 2020,
             "publish_date": "2021-01-12", "kind": "work_report"}),
])
def test_seed_metadata(seed_sources, key, expected):
    [doc] = seed_sources[key].documents
    for field, value in expected.items():
        assert doc.meta.get(field) == value, (field, doc.meta)


def test_seed_002_is_a_jimo_work_report(seed_sources):
    [doc] = seed_sources["002"].documents
    assert doc.meta["district"] == "即墨区"
    assert doc.meta["kind"] == "work_report"


def test_source_hash_is_of_the_cleaned_text(seed_sources, tmp_path):
    """Same content, different furniture or line endings -> the same hash (dedup on index)."""
    a = _write(tmp_path, "a.txt", BODY)
    b = _write(tmp_path, "b.txt", ("返回手机版\n\n" + BODY).replace("\n", "\r\n").encode("gbk"))
    assert load_file(a).sha256 == load_file(b).sha256
    assert len({s.sha256 for s in seed_sources.values()}) == 5


def test_full_width_forms_become_ascii_one_for_one():
    text = "完成投资１２亿元，同比增长５％（预计）；详见：附表！"
    folded = normalise(text)
    assert folded == "完成投资12亿元,同比增长5%(预计);详见:附表!"
    assert len(folded) == len(text)  # offsets into the text stay valid

