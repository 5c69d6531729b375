"""Chunking (issue 2 "Done when"): progress-table rows, numbered task items, report sections,
the offsets contract, stable ids, token budgets, made-up documents and `govrag chunks --json`."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from rag.chunking import _sentences, chunk_source, count_tokens
from rag.documents import load_file
from rag.models import Chunk

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
CN = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一"]
UNIT_END = re.compile(r"(局|管委会|管委|办事处|公司|分局|中心|大队|委员会|办公室|政府|街道|镇)$")


def _row_starts(text: str) -> dict[int, int]:
    """Offsets of the lines that start rows 1, 2, 3 ... in order (our own scan): the line begins
    with the next row number, not followed by another digit or a date/count unit."""
    starts, n, pos = {}, 1, 0
    for line in text.split("\n"):
        if re.match(rf"{n}(?![\d.、.,,%)):])(?![月日号个家处万])", line):
            starts[n] = pos
            n += 1
        pos += len(line) + 1
    return starts


# ---------------------------------------------------------------- 000: the progress table

def test_progress_table_has_a_chunk_for_every_task_row(seed_sources, seed_chunks):
    rows = [c for c in seed_chunks["000"] if c.kind == "task_row"]
    assert {c.meta["row"] for c in rows} == set(range(1, 61))
    assert len(rows) >= 62  # some rows have several lead-unit blocks
    assert len(_row_starts(seed_sources["000"].text)) == 60


def test_no_task_row_chunk_starts_inside_another_row(seed_sources, seed_chunks):
    text = seed_sources["000"].text
    starts = _row_starts(text)
    ends = {n: starts.get(n + 1, len(text)) for n in starts}
    by_row = defaultdict(list)
    for c in seed_chunks["000"]:
        if c.kind != "task_row":
            continue
        n = c.meta["row"]
        by_row[n].append(c)
        assert c.start == 0 or text[c.start - 1] == "\n", f"{c.id} starts mid-line"
        assert starts[n] <= c.start < c.end <= ends[n], f"{c.id} leaves row {n}"
        first_line = text[c.start:].split("\n", 1)[0]
        begins_with_row = re.match(rf"{n}(?!\d)", first_line) is not None
        sub_block = (re.match(r"\s*(1[.、.]|工作内容|任务目标)", first_line) is not None
                     or c.meta.get("lead_unit", "\0") + c.meta.get("deadline", "\0") in first_line)
        assert begins_with_row or sub_block, f"{c.id} starts with {first_line[:30]!r}"
    for n, blocks in by_row.items():
        assert blocks[0].start == starts[n], f"row {n}'s first block does not start at the row"
        for a, b in zip(blocks, blocks[1:]):  # blocks follow each other and do not overlap
            assert a.end <= b.start and not text[a.end:b.start].strip(), (a.id, b.id)
        assert not text[blocks[-1].end:ends[n]].strip(), f"text of row {n} after its last block is lost"


def test_lead_unit_and_deadline_recovered(seed_chunks):
    rows = [c for c in seed_chunks["000"] if c.kind == "task_row"]
    both = [c for c in rows if c.meta.get("lead_unit") and c.meta.get("deadline")]
    assert len(both) >= 0.9 * len(rows), f"{len(both)}/{len(rows)}"
    for c in both:
        unit, deadline = c.meta["lead_unit"], c.meta["deadline"]
        assert unit + deadline in c.text, c.id  # the unit cell is directly followed by the deadline cell
        assert all(UNIT_END.search(u) for u in unit.split("、")), (c.id, unit)
        assert re.fullmatch(r"\d{1,2}月(底|份|中旬|上旬|下旬)?前?|年底|已完成|长期|持续推进|常态化", deadline), deadline
    assert all(c.meta.get("task") and c.meta["title"] and c.meta["year"] == 2022 for c in rows)


@pytest.mark.parametrize("row, units", [
    (4, {"区工业和信息化局", "国际商贸城管委", "区商务局"}),
    (43, {"区住房和城乡建设局", "区交通运输局", "区综合行政执法局", "市公安局即墨分局"}),
])
def test_rows_with_several_lead_units(seed_chunks, row, units):
    blocks = [c for c in seed_chunks["000"] if c.kind == "task_row" and c.meta["row"] == row]
    assert len(blocks) >= 2
    found = [c.meta.get("lead_unit") for c in blocks]
    assert len(set(found)) == len(found), found  # distinct lead units
    assert set(found) == units
    assert [c.id.rsplit(":", 1)[1] for c in blocks] == [str(i) for i in range(len(blocks))]


def test_progress_row_fields(seed_chunks):
    row21 = next(c for c in seed_chunks["000"] if c.kind == "task_row" and c.meta["row"] == 21)
    assert row21.meta["lead_unit"] == "区工业和信息化局" and row21.meta["deadline"] == "已完成"
    assert "1000" in row21.meta["target"] and "1115" in row21.text
    assert row21.heading_path[0] == row21.meta["title"] and row21.heading_path[1].startswith("21 ")
    row8 = [c for c in seed_chunks["000"] if c.kind == "task_row" and c.meta["row"] == 8]
    # "1.陆港公司已完成…" is progress text, not a second lead-unit cell
    assert [c.meta["lead_unit"] for c in row8] == ["国际陆港管委"]
    assert "3.41万吨" in row8[0].meta["progress"]


# ---------------------------------------------------------------- 001: the numbered task list

def test_task_list_items_sections_and_lead_units(seed_sources, seed_chunks):
    items = [c for c in seed_chunks["001"] if c.kind == "task_item"]
    assert [c.meta["item"] for c in items] == list(range(1, 72))
    sections = list(dict.fromkeys(c.meta["section"] for c in items))
    assert len(sections) == 11
    for numeral, heading in zip(CN, sections):
        assert heading.startswith(numeral + "、"), heading
    for c in items:
        assert c.heading_path == [c.meta["title"], c.meta["section"]]
        assert c.text.startswith(f"{c.meta['item']}.")
        assert not re.search(r"\n[一二三四五六七八九十]+、", c.text), f"{c.id} swallowed the next heading"
        cell = re.search(r"[((]牵头单位[::]([^))]+)[))]", c.text)
        if cell is None:
            assert "lead_unit" not in c.meta
            continue
        leads, _, partners = re.sub(r"[,,]\s*参与单位[::]", "|", cell.group(1)).partition("|")
        assert c.meta["lead_unit"].split("、") == leads.split("、"), c.id
        if partners:
            assert c.meta["partners"].split("、") == partners.split("、"), c.id
    with_units = [c for c in items if c.meta.get("lead_unit")]
    assert len(with_units) == 68  # items 69-71 (组织实施) name no lead unit
    assert items[8].meta["lead_unit"] == "区发展改革局"
    assert items[8].meta["partners"] == "区住房城市建设管理局、区交通运输局"


# ---------------------------------------------------------------- every seed

@pytest.mark.parametrize("key", ["000", "001", "002", "003", "004"])
def test_offsets_contract(seed_sources, seed_chunks, key):
    source = seed_sources[key]
    assert seed_chunks[key]
    for c in seed_chunks[key]:
        assert source.text[c.start:c.end] == c.text, c.id
        assert c.text == c.text.strip() and c.text
        assert c.doc == source.name
        assert c.kind in ("task_row", "task_item", "section")
        assert Chunk.from_dict(json.loads(json.dumps(c.to_dict(), ensure_ascii=False))) == c


def test_heading_paths_start_with_the_title_and_do_not_repeat_it(seed_chunks):
    for cs in seed_chunks.values():
        for c in cs:
            assert c.heading_path[0] == c.meta["title"], c.id
            assert all(h.lstrip("•· ") != c.meta["title"] for h in c.heading_path[1:]), c.id


def test_chunk_ids_are_unique_and_stable(seed_sources, seed_chunks):
    ids = [c.id for cs in seed_chunks.values() for c in cs]
    assert len(ids) == len(set(ids))
    for key, source in seed_sources.items():
        again = chunk_source(load_file(source.path), 400, 40)
        assert [c.id for c in again] == [c.id for c in seed_chunks[key]]
        assert [(c.start, c.end) for c in again] == [(c.start, c.end) for c in seed_chunks[key]]
        for c in seed_chunks[key]:
            stem, kind, *_ = c.id.split(":")
            assert stem == source.path.stem and kind == c.kind


def test_row_ids_survive_an_edit_in_another_row(seed_sources, seed_chunks, tmp_path):
    path = tmp_path / SEED_FILES[0].name
    text = SEED_FILES[0].read_text(encoding="utf-8")
    assert "治理入海排污口130个" in text
    path.write_text(text.replace("治理入海排污口130个", "治理入海排污口135个"), encoding="utf-8")
    edited = {c.id: c for c in chunk_source(load_file(path), 400, 40)}
    original = {c.id: c for c in seed_chunks["000"]}
    assert edited.keys() == original.keys()
    changed = [i for i in original if original[i].text != edited[i].text]
    assert [original[i].meta.get("row") for i in changed] == [48]


@pytest.mark.parametrize("budget", [400, 120])
def test_section_chunks_keep_the_token_budget(seed_sources, budget):
    for key, source in seed_sources.items():
        for c in chunk_source(source, budget, 20):
            if c.kind != "section":
                continue
            tokens = count_tokens(c.text)
            if tokens > budget:  # only a single sentence longer than the budget may exceed it
                assert len(_sentences(source.text, c.start, c.end)) == 1, (c.id, tokens)


def test_small_budget_gives_more_overlapping_windows(seed_sources):
    big = [c for c in chunk_source(seed_sources["003"], 400, 40) if c.kind == "section"]
    small = [c for c in chunk_source(seed_sources["003"], 120, 20) if c.kind == "section"]
    assert len(small) > len(big)
    overlaps = [a for a, b in zip(small, small[1:]) if b.start < a.end]
    assert overlaps  # long paragraphs are cut into windows that repeat their last sentences
    for a, b in zip(small, small[1:]):
        if b.start < a.end:
            assert count_tokens(seed_sources["003"].text[b.start:a.end]) <= 20 + 60


# ---------------------------------------------------------------- made-up documents

def _load(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    source = load_file(path)
    return source, chunk_source(source, 400, 40)


REPORT = (
    "示范区2024年工作报告\n"
    "发布日期:2024-03-01\n"
    "各位代表:现在我向大会报告工作。 一、2023年工作回顾过去一年,全区经济平稳增长。全年完成地区生产总值520亿元,"
    "增长6.5%。 (一)产业发展持续提速。新增规上工业企业35家,工业投资增长12%。引进重点项目18个。 "
    "(二)城市面貌明显改善。改造老旧小区42个,新建公园8处。 二、2024年工作安排今年是关键之年。"
    "主要预期目标是地区生产总值增长6%左右。 (一)聚力科技创新。新增高新技术企业50家。 "
    "(二)聚力民生保障。新增城镇就业1.2万人。\n"
)


def test_report_with_inline_headings_in_one_long_line(tmp_path):
    source, chunks = _load(tmp_path, "report.txt", REPORT)
    assert source.documents[0].meta["kind"] == "work_report"
    assert all(c.kind == "section" for c in chunks)

    def path_of(fragment: str) -> list[str]:
        [c] = [c for c in chunks if fragment in c.text]
        return c.heading_path

    assert path_of("新增规上工业企业35家")[1:] == ["一、2023年工作回顾过去一年", "(一)产业发展持续提速"]
    assert path_of("改造老旧小区42个")[1:] == ["一、2023年工作回顾过去一年", "(二)城市面貌明显改善"]
    assert path_of("新增高新技术企业50家")[1:] == ["二、2024年工作安排今年是关键之年", "(一)聚力科技创新"]
    assert path_of("新增城镇就业1.2万人")[1:] == ["二、2024年工作安排今年是关键之年", "(二)聚力民生保障"]
    assert path_of("全年完成地区生产总值520亿元")[1:] == ["一、2023年工作回顾过去一年"]
    assert all(c.heading_path[0] == "示范区2024年工作报告" for c in chunks)
    # the one line became several chunks, each starting at its heading
    assert [c.text[:4] for c in chunks if c.text.startswith(("一、", "二、", "("))] == \
        ["一、20", "(一)产", "(二)城", "二、20", "(一)聚", "(二)聚"]
    assert not any("2024-03-01" in c.text for c in chunks)  # the date line is metadata


NOTICE = (
    "示范区2024年重点工作任务\n"
    "成文日期 | 2024-03-01 |\n"
    "发文机关 | 区政府办公室 |\n"
    "发文字号 | 示政办发〔2024〕7号 |\n"
    "示范区人民政府办公室\n"
    "关于印发重点工作任务的通知\n"
    "各街道办事处,区政府各部门:\n"
    "《示范区2024年重点工作任务》已经区政府研究同意,现印发给你们,请认真组织实施。\n"
    "示范区人民政府办公室\n"
    "2024年3月1日\n"
    "一、聚力科技创新\n"
    "新增高新技术企业50家,建成市级以上创新平台10个。\n"
)


def test_a_notices_metadata_and_signature_are_content_not_headings(tmp_path):
    _, chunks = _load(tmp_path, "notice.txt", NOTICE)
    [meta] = [c for c in chunks if "发文字号" in c.text]
    assert "成文日期" in meta.text and "发文机关 | 区政府办公室" in meta.text  # short lines in a row stay together
    [signed] = [c for c in chunks if "2024年3月1日" in c.text]
    assert "示范区人民政府办公室\n2024年3月1日" in signed.text
    headings = {h for c in chunks for h in c.heading_path[1:]}
    assert not any("|" in h or "2024年3月1日" in h for h in headings), headings
    [item] = [c for c in chunks if "新增高新技术企业50家" in c.text]
    assert item.heading_path[1:] == ["一、聚力科技创新"]


TABLE = (
    "2023年示范区重点工作进展情况表\n"
    "发布日期:2023-07-10\n"
    "序号工作事项具体工作内容和任务目标主办单位完成时限进展情况下一步工作计划\n"
    "1建设智慧园区平台。完成平台一期上线。区大数据局12月底1.平台一期已完成招标。\n"
    "2.数据中台已开始部署。\n"
    "加快推进平台建设。\n"
    "2改造老旧管网12公里。完成管网改造12公里。区住房和城乡建设局11月底已完成改造8公里。\n"
    "4月中旬前完成管网排查。示范街道办事处已完成已完成排查工作。\n"
    "3新建口袋公园5处。完成5处口袋公园建设。区城市管理局已完成5处口袋公园全部建成开放。\n"
)


def test_made_up_progress_table(tmp_path):
    source, chunks = _load(tmp_path, "table.txt", TABLE)
    assert source.documents[0].meta["kind"] == "progress_table"
    header = [c for c in chunks if c.kind == "section"]
    assert len(header) == 1 and "序号工作事项" in header[0].text
    rows = [c for c in chunks if c.kind == "task_row"]
    assert [(c.meta["row"], c.meta["lead_unit"], c.meta["deadline"]) for c in rows] == [
        (1, "区大数据局", "12月底"),
        (2, "区住房和城乡建设局", "11月底"),
        (2, "示范街道办事处", "已完成"),  # "4月中旬前…" continues row 2, it is no row 4
        (3, "区城市管理局", "已完成"),
    ]
    assert [c.id for c in rows] == ["table:task_row:1:0", "table:task_row:2:0", "table:task_row:2:1",
                                    "table:task_row:3:0"]
    one = rows[0]
    assert one.meta["task"] == "建设智慧园区平台"
    assert one.meta["target"] == "建设智慧园区平台。完成平台一期上线。"
    assert one.meta["progress"] == "1.平台一期已完成招标。\n2.数据中台已开始部署。"
    assert one.meta["next_steps"] == "加快推进平台建设。"
    assert rows[2].text.startswith("4月中旬前完成管网排查。")
    assert rows[2].heading_path[1] == "2 改造老旧管网12公里"


TASKS = (
    "示范区2024年重点工作任务\n"
    "为推动高质量发展,制定本任务清单。\n"
    "一、推动产业升级\n"
    "1.培育先进制造业。新增规上工业企业30家。(牵头单位:区工业和信息化局、区发展改革局)\n"
    "2.发展数字经济。建设5G基站300个。(牵头单位:区大数据局;参与单位:各街道)\n"
    "二、改善民生福祉\n"
    "3.扩大就业。新增城镇就业1万人,其中:\n"
    "1.高校毕业生就业3000人。\n"
    "(牵头单位:区人力资源社会保障局)\n"
    "4.办好教育。新建学校3所。(牵头单位:区教育体育局,参与单位:区财政局、区自然资源局)\n"
)


def test_made_up_task_list(tmp_path):
    source, chunks = _load(tmp_path, "tasks.txt", TASKS)
    assert source.documents[0].meta["kind"] == "task_list"
    items = [c for c in chunks if c.kind == "task_item"]
    assert [c.meta["item"] for c in items] == [1, 2, 3, 4]
    assert [c.meta["section"] for c in items] == ["一、推动产业升级"] * 2 + ["二、改善民生福祉"] * 2
    assert [c.meta["lead_unit"] for c in items] == [
        "区工业和信息化局、区发展改革局", "区大数据局", "区人力资源社会保障局", "区教育体育局"]
    assert items[1].meta["partners"] == "各街道"
    assert items[3].meta["partners"] == "区财政局、区自然资源局"
    assert "高校毕业生就业3000人" in items[2].text  # a nested "1." stays inside item 3
    assert [c.meta["task"] for c in items] == ["培育先进制造业", "发展数字经济", "扩大就业", "办好教育"]
    preamble = [c for c in chunks if c.kind == "section"]
    assert any("制定本任务清单" in c.text for c in preamble)
    assert not any("一、推动产业升级" in c.text for c in items)  # headings are not inside items


@pytest.mark.parametrize("name, text", [("report.txt", REPORT), ("table.txt", TABLE), ("tasks.txt", TASKS)])
def test_made_up_documents_keep_the_offsets_contract(tmp_path, name, text):
    source, chunks = _load(tmp_path, name, text.replace("\n", "\r\n"))
    assert chunks
    for c in chunks:
        assert source.text[c.start:c.end] == c.text


# ---------------------------------------------------------------- the CLI

def test_govrag_chunks_json(tmp_path):
    govrag = Path(sys.executable).parent / "govrag"
    target = tmp_path / SEED_FILES[0].name
    shutil.copy(SEED_FILES[0], target)
    out = subprocess.run([str(govrag), "chunks", str(target), "--json"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = [Chunk.from_dict(json.loads(line)) for line in out.stdout.splitlines() if line.strip()]
    from rag.config import Settings

    expected = chunk_source(load_file(target), Settings().chunk_tokens, Settings().chunk_overlap_tokens)
    assert printed == expected
    assert sum(c.kind == "task_row" for c in printed) >= 62

    bad = subprocess.run([str(govrag), "chunks", str(tmp_path / "missing.txt")], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.txt" in bad.stderr
