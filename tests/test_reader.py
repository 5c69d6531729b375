"""The reader's parts on made-up passages: candidates, one test per feature family, the fitted
model's calibrated probability; and the training command reproducing the stored model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rag.english import Vocabulary
from rag.index import tokenize
from rag.models import Chunk, Hit
from rag.reader import Half, Reader, _assign, split_parts
from rag.reader.candidates import Candidate, candidates
from rag.reader.features import FEATURES, INDEX, section_role
from rag.retriever import understand

from helpers import refit

REPORT = "一、城市建设\n全年新建口袋公园12个,累计建成口袋公园30个。投资1.2亿元改造老旧小区,计划年底前完工。"


def _hits(*texts: str, kind: str = "section", **meta) -> list[Hit]:
    return [Hit(Chunk(f"t:{kind}:{i}", "t.txt", kind, text, ["t", "一、城市建设"], 0, len(text),
                      {"title": "t", **meta}), 1.0 - 0.1 * i, {}, {"bm25": 10.0 - i}) for i, text in enumerate(texts)]


def _reader(hits: list[Hit]) -> Reader:
    vocabulary = Vocabulary(tokenize(" ".join(h.chunk.text for h in hits)))
    return Reader(lambda tok: 3.0, " ".join(h.chunk.text for h in hits), lambda q: understand(q, vocabulary=vocabulary))


def _rows(question: str, hits: list[Hit]):
    """(candidates, feature matrix) of a one-fact question over the hits."""
    reader = _reader(hits)
    q = reader.understand(question)
    [half] = reader.halves(q, hits)
    return half.cands, half.X


def _value(X: np.ndarray, row: int, name: str) -> float:
    return float(X[row, INDEX[name]])


def _find(cands, kind: str, lead: str) -> int:
    return next(i for i, c in enumerate(cands) if c.kind == kind and c.lead == lead)


# ---------------------------------------------------------------- candidates

def test_every_figure_period_and_name_is_a_candidate():
    hits = _hits(REPORT)
    cands = candidates(hits, {"口袋公园"})
    figures = [c.lead for c in cands if c.kind == "figure"]
    assert figures == ["12个", "30个", "1.2亿元"]
    assert any(c.kind == "period" and c.lead == "年底前" for c in cands)
    assert all(hits[0].chunk.text[c.sent[0]:c.sent[1]] for c in cands)


def test_a_task_row_offers_its_cells():
    text = "5新建停车场。新建停车场2处。区住房和城乡建设局12月底已建成1处。"
    hits = _hits(text, kind="task_row", row=5, lead_unit="区住房和城乡建设局", deadline="12月底")
    cands = candidates(hits, set())
    assert {("cell_unit", "区住房和城乡建设局"), ("cell_deadline", "12月底")} <= {(c.kind, c.lead) for c in cands}
    roles = {c.lead: c.role for c in cands if c.kind == "figure" and c.figure.unit == "处"}
    assert roles == {"2处": "target", "1处": "achieved"}  # the column each figure sits in


def test_a_key_value_table_offers_each_value_with_its_key():
    from rag.reader.render import quote_window

    text = "索引号 | 12345 | 主题分类 | |\n发文字号 | 示范政发〔2024〕3号 | 有效性 | 有效 |\n全年新建口袋公园12个。"
    cands = [c for c in candidates(_hits(text), set()) if c.kind == "field"]
    assert {c.lead: text[slice(*quote_window(text, c))] for c in cands} == {
        "12345": "索引号 | 12345", "示范政发〔2024〕3号": "发文字号 | 示范政发〔2024〕3号", "有效": "有效性 | 有效"}
    columns = "地区 | 2021 | 2022 |\n城区 | 5 | 6 |"  # a table of figures: odd cells, no key-value pairs
    assert not [c for c in candidates(_hits(columns), set()) if c.kind == "field"]


def test_a_who_question_offers_the_name_after_a_title():
    text = "女子跳远决赛中,山东选手马欣然以6米58夺冠。研究员阿不都热合曼·买买提担任科考队长。"
    cands = candidates(_hits(text), {"女子", "跳远"}, who=True)
    assert [c.lead for c in cands if c.kind == "person"] == ["马欣然", "阿不都热合曼·买买提"]
    assert not [c for c in candidates(_hits(text), set()) if c.kind == "person"]  # only when asked who


# ---------------------------------------------------------------- feature families

def test_question_features_say_what_is_asked():
    cands, X = _rows("全年新建口袋公园多少个?", _hits(REPORT))
    assert _value(X, 0, "q_asked_count") == 1 and _value(X, 0, "q_en") == 0
    cands, X = _rows("How much was invested in old residential compounds?", _hits(REPORT))
    assert _value(X, 0, "q_asked_amount") == 1 and _value(X, 0, "q_en") == 1


def test_passage_features_rank_and_year_agreement():
    hits = _hits("新建口袋公园12个。", "2022年新建口袋公园20个。")
    hits[1].chunk.meta["year"] = 2022
    cands, X = _rows("2022年新建口袋公园多少个?", hits)
    first, second = _find(cands, "figure", "12个"), _find(cands, "figure", "20个")
    assert _value(X, first, "h_rank") == 0 and _value(X, second, "h_rank") == 1
    assert _value(X, second, "h_year") == 1 and _value(X, first, "h_year") == 0


def test_passage_features_say_which_passages_share_the_first_passage_s_document():
    hits = _hits("新建口袋公园12个。", "新建口袋公园20个。", "新建口袋公园30个。")
    hits[2] = Hit(Chunk("u:section:0", "u.txt", "section", hits[2].chunk.text, ["u"], 0, 9, {"title": "u"}), 0.5, {}, {})
    cands, X = _rows("新建口袋公园多少个?", hits)
    same, other = _find(cands, "figure", "20个"), _find(cands, "figure", "30个")
    assert _value(X, same, "h_top_doc") == 1 and _value(X, other, "h_top_doc") == 0


def test_sentence_features_see_another_year_and_a_target_in_earlier_clauses():
    text = "2022年海铁联运业务量达到145万标准箱。2023年港口将力争完成吞吐量12.8亿吨,海铁联运业务量突破160万标准箱。"
    cands, X = _rows("2022年海铁联运业务量是多少标准箱?", _hits(text))
    done, plan = _find(cands, "figure", "145万标准箱"), _find(cands, "figure", "160万标准箱")
    assert _value(X, plan, "s_year_other") == 1 and _value(X, done, "s_year_other") == 0
    assert _value(X, plan, "s_target_before") == 1 and _value(X, done, "s_target_before") == 0
    cands, X = _rows("海铁联运业务量是多少标准箱?", _hits(text))  # a question naming no year: no other year
    assert _value(X, _find(cands, "figure", "160万标准箱"), "s_year_other") == 0


def test_missing_says_which_passage_and_sentence_lack_the_question_s_most_specific_term():
    hits = _hits("全区新建口袋公园12个。", "蓝村街道新建口袋公园3个。全区改造老旧小区20个。")
    cands, X = _rows("蓝村街道新建口袋公园多少个?", hits)
    whole, village, homes = _find(cands, "figure", "12个"), _find(cands, "figure", "3个"), _find(cands, "figure", "20个")
    assert _value(X, whole, "h_missing") > 0.5 and _value(X, village, "h_missing") < 0.2
    assert _value(X, homes, "h_missing") == _value(X, village, "h_missing")  # the same passage
    assert _value(X, homes, "s_missing") > _value(X, village, "s_missing")  # its sentence lacks 口袋公园


def test_a_passage_about_another_year_offers_no_candidate():
    hits = _hits("2021年新建口袋公园12个。")
    hits[0].chunk.meta["year"] = 2021
    cands, _ = _rows("2022年新建口袋公园多少个?", hits)
    assert cands == []


def test_clause_features_overlap_and_meaning_cues():
    cands, X = _rows("累计建成口袋公园多少个?", _hits(REPORT))
    new, total = _find(cands, "figure", "12个"), _find(cands, "figure", "30个")
    assert _value(X, total, "c_cumulative_cue") == 1 and _value(X, new, "c_cumulative_cue") == 0
    assert _value(X, total, "c_cov") > _value(X, new, "c_cov")  # 累计建成 is in its clause only


def test_specific_overlap_discounts_words_every_passage_holds():
    hits = _hits("2018年田径大奖赛肇庆站结束最后一个比赛日的争夺。", "田径大奖赛肇庆站上,选手马欣然获得女子跳远冠军。")
    cands, X = _rows("田径大奖赛肇庆站女子跳远冠军是谁?", hits)
    lede, fact = _find(cands, "clause", "2018年田径大奖赛肇庆站结束最后一个比赛日的争夺"), _find(cands, "person", "马欣然")
    assert _value(X, lede, "s_spec") == 0  # it only says what both passages say
    assert _value(X, fact, "s_spec") > 0.5 and _value(X, fact, "c_spec") > 0.5


def test_task_row_column_features_follow_the_asked_meaning():
    text = "5新建停车场。新建停车场2处。区住房和城乡建设局12月底已建成1处。"
    hits = _hits(text, kind="task_row", row=5, lead_unit="区住房和城乡建设局", deadline="12月底")
    cands, X = _rows("停车场目前已经建成了几处?", hits)
    plan, done = _find(cands, "figure", "2处"), _find(cands, "figure", "1处")
    assert _value(X, done, "c_role_achieved") == 1 and _value(X, done, "c_role_match") == 1
    assert _value(X, plan, "c_role_target") == 1 and _value(X, plan, "c_role_mismatch") == 1


def test_a_section_under_a_plan_heading_holds_targets():
    assert section_role(["2021年政府工作报告", "三、2021年主要工作安排2021年是开局之年", "(二)聚力经略海洋"]) == "target"
    assert section_role(["潮海街道2020年下半年工作计划完成情况", "一、抓好疫情防控"]) == "achieved"
    assert section_role(["政府工作报告", "切实加强政府自身建设"]) == ""
    text = "新增高标准农田8.3万亩。"
    hits = [Hit(Chunk("t:section:0", "t.txt", "section", text, ["t", "三、2021年主要工作安排"], 0, len(text),
                      {"title": "t"}), 1.0, {}, {"bm25": 10.0})]
    cands, X = _rows("实际新建成了多少亩高标准农田?", hits)
    i = _find(cands, "figure", "8.3万亩")
    assert _value(X, i, "c_role_target") == 1 and _value(X, i, "c_role_mismatch") == 1


def test_a_full_width_question_splits_into_its_halves():
    from rag.pipeline import clean_question

    question = clean_question("原计划要完成多少？三季度实际完成了多少？", 500)
    assert question == "原计划要完成多少?三季度实际完成了多少?"
    assert split_parts(question, "zh") == ["原计划要完成多少", "三季度实际完成了多少"]
    assert understand("原计划要完成多少？三季度实际完成了多少？").text == question


def test_two_halves_get_the_likeliest_pair_of_different_answers():
    def half(*leads: str) -> Half:
        return Half(None, [Candidate(0, "figure", lead, (0, 1), (0, 1), 0) for lead in leads], np.zeros((len(leads), 1)))

    a, b = half("80%", "60%"), half("80%", "60%")
    # both halves rank 80% first; the second half is far surer of it, so the first takes 60%
    assert _assign([a, b], [[(0, 0.6), (1, 0.5)], [(0, 0.9), (1, 0.2)]]) == [(1, 0.5), (0, 0.9)]
    assert _assign([a], [[(0, 0.6), (1, 0.5)]]) == [(0, 0.6)]


def test_an_answer_needs_p_right_to_exceed_p_no_answer_by_the_margin():
    from rag.reader.model import ReaderModel, load_model

    def constant(logit: float) -> dict:
        return {"trees": [{"feature": [0], "threshold": [0.0], "left": [0], "right": [0], "leaf": [True],
                           "value": [logit], "missing_left": [False]}]}

    data = {**load_model().data, "thresholds": {"*": 0.0}}  # margin 0: P(right) must exceed P(no answer)
    hits = _hits(REPORT)
    reader = _reader(hits)
    q = reader.understand("全年新建口袋公园多少个?")
    reader._model = ReaderModel({**data, "no_answer": constant(-20.0)})  # P(no answer) ~ 0
    answered = reader.answer(q, hits)
    reader._model = ReaderModel({**data, "no_answer": constant(20.0)})  # P(no answer) ~ 1
    declined = reader.answer(q, hits)
    assert not answered.abstained and answered.answer.startswith("12个")
    assert declined.abstained and "P(no answer) 1.00" in declined.notes[0]
    assert answered.confidence == declined.confidence  # P(right) itself is the same
    without = ReaderModel({k: v for k, v in data.items() if k != "no_answer"})
    assert without.no_answer(np.zeros(1), np.zeros((1, len(FEATURES)), dtype=np.float32), 0, None) == 0.0


def test_the_margin_is_the_one_of_the_kind_of_document_the_answer_comes_from():
    from rag.reader.model import ReaderModel, load_model

    data = load_model().data
    for kind, answers in (("news", False), ("work_report", True), (None, True)):
        hits = _hits(REPORT, **({"doc_kind": kind} if kind else {}))
        reader = _reader(hits)
        reader._model = ReaderModel({**data, "thresholds": {"*": -1.0, "news": 1.0}})  # news: never sure enough
        answer = reader.answer(reader.understand("全年新建口袋公园多少个?"), hits)
        assert answer.abstained != answers, (kind, answer.notes)
    assert ReaderModel({**data, "thresholds": {"*": -1.0, "news": 1.0}}).threshold("task_list") == -1.0


def test_candidate_features_unit_fit_and_given_figures():
    cands, X = _rows("投资多少亿元改造老旧小区?", _hits(REPORT))
    money, parks = _find(cands, "figure", "1.2亿元"), _find(cands, "figure", "12个")
    assert _value(X, money, "f_fit") > _value(X, parks, "f_fit")
    assert _value(X, money, "k_figure") == 1 and _value(X, money, "f_amount") == 1
    assert _value(X, money, "lead_digits") == 1
    assert all(_value(X, i, "lead_digits") == 0 for i, c in enumerate(cands) if not any(ch.isdigit() for ch in c.lead))
    cands, X = _rows("新建的12个口袋公园之外,累计建成多少个?", _hits(REPORT))
    assert _value(X, _find(cands, "figure", "12个"), "f_given") == 1  # the question states it
    cands, X = _rows("新建的12个口袋公园分别是哪些?", _hits(REPORT))
    restated = next(i for i, c in enumerate(cands) if c.kind != "figure" and "12个" in c.lead)
    assert _value(X, restated, "lead_given") == 1  # a clause that only repeats the count asked about
    assert _value(X, _find(cands, "figure", "30个"), "lead_given") == 0


def test_candidate_features_count_list_items_and_see_a_name_s_ending():
    text = "新建口袋公园3个,分别位于蓝村街道、通济街道和龙山街道,由青岛海晟建设有限公司承建,完成投资1.2亿元。"
    cands, X = _rows("新建的3个口袋公园分别在哪里?", _hits(text))
    places = next(i for i, c in enumerate(cands) if c.kind == "list")
    assert _value(X, places, "lead_items") >= 1 and _value(X, _find(cands, "figure", "3个"), "lead_items") == 0
    cands, X = _rows("口袋公园由哪家公司承建?", _hits(text))
    builder = next(i for i, c in enumerate(cands) if c.lead.endswith("有限公司"))
    money = _find(cands, "figure", "1.2亿元")
    assert _value(X, builder, "lead_name_end") == 1 and _value(X, money, "lead_name_end") == 0


def test_the_feature_list_is_what_the_matrix_holds():
    cands, X = _rows("全年新建口袋公园多少个?", _hits(REPORT))
    assert X.shape == (len(cands), len(FEATURES)) and X.dtype == np.float32 and np.isfinite(X).all()


# ---------------------------------------------------------------- the fitted model

def test_a_plain_statement_is_more_probable_than_a_passage_that_lacks_the_fact():
    stated = _reader(_hits(REPORT)).answer(understand("全年新建口袋公园多少个?"), _hits(REPORT))
    hits = _hits("开展文明城市创建,组织志愿服务活动。")
    missing = _reader(hits).answer(understand("全年新建口袋公园多少个?"), hits)
    assert stated.confidence is not None and missing.confidence is not None
    assert stated.confidence > missing.confidence
    assert not stated.abstained and stated.answer.startswith("12个"), stated.answer


def test_the_model_file_matches_the_features():
    from rag.reader.model import MODEL_PATH, load_model

    model = load_model(MODEL_PATH)
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert data["features"] == list(FEATURES) and -1 < model.threshold(None) < 1  # a margin P(right) - P(no answer)
    assert all(-1 < model.threshold(kind) < 1 for kind in data["thresholds"])
    assert data["calibration"]["inputs"][3:] == list(FEATURES)


@pytest.mark.slow
def test_training_reproduces_the_stored_model_bit_for_bit(seed_index, tmp_path):
    from rag.reader.model import MODEL_PATH

    out = tmp_path / "reader_model.json"
    refit("eval.train_reader", seed_index, out)
    fresh, stored = json.loads(out.read_text(encoding="utf-8")), json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    for key in ("features", "trees", "baseline", "calibration", "no_answer", "thresholds"):
        assert fresh[key] == stored[key], key


def test_the_threshold_is_the_middle_of_a_broad_optimum_not_a_lone_spike():
    from eval.train_reader import window_mean

    right = np.array([10, 10, 30, 10, 10, 20, 24, 25, 24, 20, 10], dtype=float)  # questions right per threshold
    assert int(np.argmax(right)) == 2  # the lone spike
    assert int(np.argmax(window_mean(right, 2))) == 7  # the middle of the plateau
    assert window_mean(right, 0).tolist() == right.tolist()
