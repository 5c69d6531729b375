"""Task records and questions over whole task tables, on the real seeds and on made-up tables."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rag.documents import load_file
from rag.chunking import chunk_source
from rag.models import GovragError
from rag.tables import TaskFilter, TaskTable, build_records, check_records, load_records, save_records
from rag.tables.names import find_units_zh, unit_score

JIMO, CHENGYANG = "000_9a654e1af8e81530.txt", "001_07901cef5f83406f.txt"


@pytest.fixture(scope="module")
def table(seed_chunks):
    return TaskTable(build_records([c for chunks in seed_chunks.values() for c in chunks]))


def _rows(records) -> list[int]:
    return [r["number"] for r in records]


# ---------------------------------------------------------------- records of the seeds

def test_every_row_and_item_is_a_record(table):
    jimo = [r for r in table.records if r["doc"] == JIMO]
    chengyang = [r for r in table.records if r["doc"] == CHENGYANG]
    # The Jimo table numbers its rows 1..60; rows 4, 10, 14, 20, 32, 33, 35, 42 and 43 are split
    # into one block per reporting unit (3+2+3+2+3+2+2+2+4 = 23 blocks for 9 rows), so 60 rows
    # hold 60 - 9 + 23 = 74 sub-rows. The Chengyang list numbers its items 1..71.
    assert _rows(jimo) == list(range(1, 61)) and sum(len(r["subrows"]) for r in jimo) == 74
    assert _rows(chengyang) == list(range(1, 72))
    assert all(r["district"] == "即墨区" and r["year"] == 2022 for r in jimo)
    assert all(r["district"] == "城阳区" and r["year"] == 2023 for r in chengyang)


def test_lead_units_per_unit_as_the_text_states_them(table):
    jimo = Counter(u for r in table.records if r["doc"] == JIMO for u in r["leads"])
    # Read off the 主办单位 cells: 区工业和信息化局 reports on rows 4, 5, 9, 12, 14, 16, 18, 21, 32;
    # 区科学技术局 on 10, 11, 13, 14, 15, 36, 38, 39; 区住房和城乡建设局 on 20, 27, 43, 50, 51, 57, 60;
    # 区民政局 on 56 and 59. Row 47's one cell names two units (区海洋发展局、鳌山卫街道办事处).
    assert (jimo["区工业和信息化局"], jimo["区科学技术局"], jimo["区住房和城乡建设局"], jimo["区民政局"]) == (9, 8, 7, 2)
    assert table.by_id[f"{JIMO}#47"]["leads"] == ["区海洋发展局", "鳌山卫街道办事处"]
    chengyang = Counter(u for r in table.records if r["doc"] == CHENGYANG for u in r["leads"])
    # 区发展改革局 is named in the (牵头单位:…) of items 7, 9, 10, 12, 14, 16, 20, 22, 23, 25, 26, 35, 67;
    # item 14 reads "区农业农村局等各产业主管部门": the unit is 区农业农村局.
    assert chengyang["区发展改革局"] == 13 and "区农业农村局" in table.by_id[f"{CHENGYANG}#14"]["leads"]
    participants = Counter(u for r in table.records for u in r["participants"])
    assert participants["区交通运输局"] == 3  # items 9, 31, 32 name it after 参与单位
    assert [r["number"] for r in table.records if r["doc"] == CHENGYANG and not r["leads"]] == [69, 70, 71]


def test_sections_and_deadlines(table):
    sections = Counter(r["section_no"] for r in table.records if r["doc"] == CHENGYANG)
    # 一 1-6, 二 7-14, 三 15-19, 四 20-33, 五 34-37, 六 38-43, 七 44-49, 八 50-56, 九 57-65, 十 66-68, 十一 69-71
    assert [sections[n] for n in range(1, 12)] == [6, 8, 5, 14, 4, 6, 6, 7, 9, 3, 3]
    done = [r["number"] for r in table.records if r["doc"] == JIMO and all(s["deadline"] == "已完成" for s in r["subrows"])]
    assert done == [6, 13, 21, 22, 23, 27, 37, 40, 44, 48, 49, 51, 53, 54, 56, 57, 60]
    row20 = table.by_id[f"{JIMO}#20"]["subrows"]
    assert [(s["deadline"], s["due"]) for s in row20] == [("11月底", "2022-11-30"), ("已完成", None)]
    assert table.by_id[f"{JIMO}#36"]["subrows"][0]["due"] == "2022-11-30"  # 11月份


def test_status_keeps_the_words_that_decided_it(table):
    s53 = table.by_id[f"{JIMO}#53"]["subrows"][0]  # 已完成 in the deadline cell, 正在收尾 in the progress
    assert s53["status"] == "completed" and s53["status_words"] == "完成时限:已完成"
    s42 = table.by_id[f"{JIMO}#42"]["subrows"][1]  # "问题清单尚未下发。待…出台后,再开展相关工作"
    assert s42["status"] == "not_started" and "尚未下发" in s42["status_words"]
    assert table.by_id[f"{CHENGYANG}#1"]["subrows"][0]["status"] == "unknown"  # a task list states no progress


def test_filters_combine_within_one_sub_row(table):
    # 区科学技术局 reports with 12月底 on rows 10, 11, 15, 38, 39 (rows 13 and 14: 已完成; 36: 11月份)
    f = TaskFilter(docs=[JIMO], units=["区科学技术局"], deadline="12月底")
    assert _rows(table.select(f)) == [10, 11, 15, 38, 39]
    assert _rows(table.select(TaskFilter(docs=[JIMO], deadline="11"))) == [20, 36]
    only = TaskFilter(docs=[CHENGYANG], units=["区交通运输局"], role="participant_only")
    assert _rows(table.select(only)) == [9, 31, 32]
    assert _rows(table.select(TaskFilter(docs=[CHENGYANG], sections=[10]))) == [66, 67, 68]
    assert table.select(TaskFilter(docs=[JIMO], units=["没有这个局"])) == []


# ---------------------------------------------------------------- names as people write them

@pytest.mark.parametrize("mention, unit", [
    ("卫健局", "区卫生健康局"), ("人社局", "区人力资源社会保障局"), ("工信局", "区工业和信息化局"),
    ("区科技局", "区科学技术局"), ("住建局", "区住房城市建设管理局"), ("环保局", "市生态环境局"),
    ("市场监管局", "区市场监督管理局"), ("应急管理局", "区应急局"),
])
def test_short_and_long_names_match(mention, unit):
    assert unit_score(mention, unit) > 0


@pytest.mark.parametrize("mention, unit", [("科技局", "区卫生健康局"), ("管理局", "区综合行政执法局"), ("财政局", "区税务局")])
def test_different_units_do_not_match(mention, unit):
    assert unit_score(mention, unit) == 0


def test_a_name_inside_a_longer_one_is_not_another_unit():
    units = ["区市场监督管理局", "区科学技术局"]
    found, unknown = find_units_zh("进展表中,区应急管理局主办了哪些任务?", units)
    assert found == [] and unknown == ["区应急管理局"]
    found, _ = find_units_zh("表里区科技局主办的有几项?", units)
    assert found == [("区科技局", ["区科学技术局"])]


# ---------------------------------------------------------------- stored with the index

def test_records_are_stored_and_checked_against_the_chunks(seed_index, tmp_path):
    from rag.index import load_index

    index = load_index(seed_index)
    stored = [json.loads(line) for line in (index.dir / "tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(stored) == 131 and stored == index.tasks.records
    broken = [dict(r) for r in stored]
    broken[0] = {**broken[0], "number": 99}
    with pytest.raises(GovragError):
        check_records(broken, index.chunks)
    save_records(tmp_path, stored[1:])
    with pytest.raises(GovragError, match="task records cover"):
        load_records(tmp_path, index.chunks)


MADE_UP = (
    "示范区2024年重点工作任务\n"
    "一、推动产业升级\n"
    "1.培育先进制造业。新增规上工业企业30家。(牵头单位:区工业和信息化局、区发展改革局)\n"
    "2.发展数字经济。建设5G基站300个。(牵头单位:区大数据局;参与单位:各街道)\n"
    "二、改善民生福祉\n"
    "3.扩大就业。新增城镇就业1万人。(牵头单位:区人力资源社会保障局)\n"
    "4.办好教育。新建学校3所。(牵头单位:区教育体育局,参与单位:区财政局、区工业和信息化局)\n"
)


def test_a_made_up_task_list_answers_table_questions(tmp_path):
    from rag.tables import TableAnswerer, parse

    (tmp_path / "tasks.txt").write_text(MADE_UP, encoding="gb18030")
    chunks = chunk_source(load_file(tmp_path / "tasks.txt"), 400, 40)
    table = TaskTable(build_records(chunks))
    by_id = {c.id: c for c in chunks}
    answerer = TableAnswerer(table, by_id.__getitem__)

    def ask(question: str, lang: str = "zh"):
        tq = parse(question, lang, table, [], [], lambda text: [("工业和信息化", 1.0)] if "industry" in text.lower() else [])
        assert tq is not None, question
        return answerer.answer(question, lang, tq)

    a = ask("示范区人社局牵头了哪些任务?")
    assert a.answer.startswith("共1项") and "扩大就业" in a.answer and a.citations[0].meta["item"] == 3
    a = ask("工信局作为参与单位或牵头单位出现在哪几项?")
    assert "共2项" in a.answer and "培育先进制造业" in a.answer and "办好教育" in a.answer
    a = ask("第二部分有几项任务?")
    assert a.answer.startswith("共2项")
    a = ask("哪个部分的任务最多?")
    assert a.answer.startswith("并列") and "一、推动产业升级" in a.answer and "二、改善民生福祉" in a.answer
    a = ask("区统计局牵头了几项任务?")
    assert a.answer.startswith("0") and "区统计局" in a.answer and not a.citations
    a = ask("How many tasks does the Bureau of Industry and Information Technology lead?", "en")
    assert a.answer.startswith("1 task") and "培育先进制造业" in a.answer
    assert parse("新建学校多少所?", "zh", table, [], [], lambda t: []) is None
    assert parse("任务里要新建多少条公交线路?", "zh", table, [], [], lambda t: []) is None  # 条 counts the routes
    assert parse("第二部分的任务有几项已完成?", "zh", table, [], [], lambda t: []) is not None  # 已完成 is no noun
    assert parse("办好教育这项任务的牵头单位有哪些?", "zh", table, [], [], lambda t: []) is None
    # no filter: over every row only when the question says so, else a figure inside one task
    assert parse("任务清单里,学校已经建了多少个?", "zh", table, [], [], lambda t: []) is None
    assert ask("这份任务清单一共列了多少项?").answer.startswith("共4项")
    assert ask("How many items does the task list have in total?", "en").answer.startswith("4 ")


# ---------------------------------------------------------------- through the pipeline and the CLI

def test_pipeline_answers_table_questions_and_leaves_the_rest(pipeline):
    a = pipeline.ask("城阳区2023年重点任务里,卫健局牵头了哪些任务?")
    assert a.mode == "table" and a.answer.startswith("共4项")
    assert [c.meta["item"] for c in a.citations] == [22, 61, 62, 66]
    assert all(c.doc == CHENGYANG and c.quote for c in a.citations)
    a = pipeline.ask("Which unit leads the most tasks in the Jimo 2022 progress table?")
    assert a.mode == "table" and a.answer.startswith("区工业和信息化局") and len(a.citations) == 9
    ordinary = pipeline.ask("即墨区2022年新建了多少个5G基站?")
    assert ordinary.mode == "extractive" and "1115" in ordinary.answer
    one_task = pipeline.ask("城阳“推动科技金融融合发展”这项任务由哪些单位牵头?")
    assert one_task.mode != "table"


def test_table_questions_as_people_phrase_them(pipeline):
    """The table's own marking (标为“已完成”, marked as completed), its absence for every unit, a
    ranking of months, a unit named with its district's possessive, lists asked after the
    noun (事项中哪些), rows that name participants (写明了参与单位), task titles, a topic word
    that is no kind of unit, a single lead unit, every row, and an English topic's broadest term."""
    from rag.tables import parse

    table, terms = pipeline.retriever.index.tasks, pipeline.retriever.terms

    def understood(question: str, lang: str = "zh"):
        tq = parse(question, lang, table, [], [], terms)
        assert tq is not None, question
        return tq

    marked = understood("How many tasks in the Jimo Q3 progress table are shown as completed for every lead unit?", "en")
    assert marked.filter.deadline == "已完成" and marked.filter.every_subrow
    done = [r["number"] for r in table.records if r["doc"] == JIMO and all(s["deadline"] == "已完成" for s in r["subrows"])]
    assert _rows(table.select(marked.filter)) == done
    none = understood("In the Jimo progress table, how many tasks have no unit's part marked as completed?", "en")
    assert none.filter.not_deadline == "已完成" and none.filter.every_subrow
    assert not set(_rows(table.select(none.filter))) & set(done)
    month = understood("即墨进展表里,完成时限落在哪个月的任务最多?")
    assert month.op == "superlative" and month.group == "month"
    due = Counter(m for r in table.records if r["doc"] == JIMO for m in {int(s["due"][5:7]) for s in r["subrows"] if s["due"]})
    (top, n), (_, second) = due.most_common(2)
    answer = pipeline.ask("Which month do most deadlines in the Jimo Q3 progress table fall in?")
    assert n > second and answer.mode == "table" and f"({top}月) ({n} tasks" in answer.answer
    assert len(answer.citations) == n
    owned = understood("Which tasks does Jimo's science and technology bureau lead in the Q3 progress table?", "en")
    assert owned.filter.units == ["区科学技术局"]
    listed = understood("即墨三季度进展表里,区科技局负责的事项中哪些已经标为“已完成”?")
    assert listed.op == "list" and listed.filter.deadline == "已完成" and _rows(table.select(listed.filter)) == [13, 14]
    withp = understood("城阳重点任务清单里,写明了参与单位的任务有几项?")
    assert withp.op == "count" and withp.filter.with_participants
    assert all(r["participants"] for r in table.select(withp.filter))
    assert understood("How many task titles in the Chengyang list contain 绿色?", "en").filter.words == ["绿色"]
    mention = understood("How many tasks in the Jimo progress table mention enterprises (企业)?", "en")
    assert mention.filter.unit_part is None and mention.filter.words == ["企业"]
    alone = understood("Which Chengyang key tasks does the development and reform bureau lead on its own?", "en")
    assert alone.filter.n_leads == ("==", 1) and all(len(r["leads"]) == 1 for r in table.select(alone.filter))
    every = understood("All told, how many numbered tasks does the Jimo progress table list?", "en")
    assert len(table.select(every.filter)) == sum(r["doc"] == JIMO for r in table.records)
    topic = understood("How many tasks in the Jimo progress table are about parking?", "en")  # car parks and spaces
    assert topic.filter.words and all(w in r["task"] for w in topic.filter.words for r in table.select(topic.filter))
    assert len(table.select(topic.filter)) == sum("停车" in r["task"] for r in table.records if r["doc"] == JIMO) > 1


def test_pipeline_tasks_api(pipeline):
    rows = pipeline.tasks(unit="civil affairs bureau", district="即墨区")
    assert [r["number"] for r in rows] == [56, 59]
    with pytest.raises(GovragError, match="no unit named"):
        pipeline.tasks(unit="区统计局")


def test_govrag_tasks_csv(seed_index):
    govrag = Path(sys.executable).parent / "govrag"
    out = subprocess.run([str(govrag), "tasks", "--unit", "卫健局", "--csv", "--index", str(seed_index)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["doc"], r["number"]) for r in rows] == [(CHENGYANG, "22"), (CHENGYANG, "61"), (CHENGYANG, "62"),
                                                       (CHENGYANG, "66")]
    assert all("区卫生健康局" in r["leads"] for r in rows) and "matched 区卫生健康局" in out.stderr
    bad = subprocess.run([str(govrag), "tasks", "--unit", "统计局", "--index", str(seed_index)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no unit named" in bad.stderr and "Traceback" not in bad.stderr
