"""Figures (issue 4): parsing and normalisation of Arabic and Chinese numerals, 万/亿, percentages,
dates and ranges; same_figure; verify() against cited spans."""
from __future__ import annotations

import pytest

from rag.grounding import Found, cn_to_number, find_figures, same_figure, verify


def one(text: str) -> Found:
    found = find_figures(text)
    assert len(found) == 1, (text, found)
    return found[0]


@pytest.mark.parametrize("text, value, unit", [
    # Arabic numbers, thousands separators, decimals
    ("共建设完成1115处", 1115, "处"),
    ("累计1,115处", 1115, "处"),
    ("投资12,000.5万元", 120_005_000, "元"),
    ("纸浆期货吞吐量完成3.41万吨", 34_100, "吨"),
    ("总建筑面积不低于20万平方米", 200_000, "平方米"),
    ("一般公共预算收入112亿元", 11_200_000_000, "元"),
    ("完成利用外资3085万美元", 30_850_000, "美元"),  # a currency other than 元 keeps its name
    ("亩产鲜菇达 800 斤", 800, "斤"),
    # percentages
    ("覆盖率达到95%以上", 95, "%"),
    ("同比增长6.5%", 6.5, "%"),
    ("千分之五", None, None),
    ("下降5‰", 0.5, "%"),
    ("百分之九十五", 95, "%"),
    ("百分之三点五", 3.5, "%"),
    # 万 / 亿 multipliers with 余 / 多
    ("1.6万余吨", 16_000, "吨"),
    ("1.5万场", 15_000, "场"),
    ("2000多人", 2000, "人"),
    ("3.8亿元", 380_000_000, "元"),
    # Chinese numerals
    ("一千一百一十五处", 1115, "处"),
    ("两万人", 20_000, "人"),
    ("三十八处", 38, "处"),
    ("一百零五个", 105, "个"),
    ("三点五亿元", 350_000_000, "元"),
    ("一点五万人", 15_000, "人"),
    ("两个", 2, "个"),
])
def test_figures_are_normalised(text, value, unit):
    found = find_figures(text)
    if value is None:
        assert found == []
        return
    assert len(found) == 1, found
    assert found[0].value == pytest.approx(value)
    assert found[0].unit == unit


@pytest.mark.parametrize("text, value", [
    ("2022年10月23日", 20221023),
    ("2021年2月6日在第五次会议上", 20210206),
    ("10月23日", 1023),
    ("12月底", 1200),
    ("截至9月底", 900),
    ("10月份完工", 1000),
    ("4月中旬前", 400),
])
def test_dates(text, value):
    f = one(text)
    assert f.unit == "date" and f.value == value


@pytest.mark.parametrize("text, expected", [
    ("生长周期仅 3-4 个月", [(3, "个月"), (4, "个月")]),
    ("3至5年", [(3, "年"), (5, "年")]),
    ("鲜品每斤 80-120 元", [(80, "元"), (120, "元")]),
    ("1~2万人", [(10_000, "人"), (20_000, "人")]),
])
def test_ranges_give_both_ends(text, expected):
    assert [(f.value, f.unit) for f in find_figures(text)] == [(pytest.approx(v), u) for v, u in expected]


def test_list_markers_and_plan_names_are_not_figures():
    assert find_figures("1.加快推进项目建设") == []
    assert find_figures("“十三五”时期") == []
    assert find_figures("第二轮督察") == []
    assert [f.text for f in find_figures("新增5G基站1000个")] == ["1000个"]


def test_positions_and_several_figures_in_order():
    text = "2022年共建设完成1115处,覆盖率达到95%以上,12月底前完成。"
    found = find_figures(text)
    assert [(f.text, f.unit) for f in found] == [("2022年", "年"), ("1115处", "处"), ("95%", "%"), ("12月底", "date")]
    for f in found:
        assert text[f.start:f.end].strip() == f.text


def test_cn_to_number():
    assert cn_to_number("一千一百一十五") == 1115
    assert cn_to_number("两万") == 20_000
    assert cn_to_number("十三") == 13
    assert cn_to_number("二十") == 20
    assert cn_to_number("一百零五") == 105
    assert cn_to_number("三点五") == 3.5
    assert cn_to_number("三点五亿") == 350_000_000
    assert cn_to_number("一万二千") == 12_000
    assert cn_to_number("abc") is None
    assert cn_to_number("") is None


@pytest.mark.parametrize("a, b", [
    ("1.6万余吨", "16000吨"),
    ("1,115处", "一千一百一十五处"),
    ("1115处", "1115个"),  # count units are interchangeable
    ("1115", "1115处"),  # a bare number matches a unit
    ("95%", "百分之九十五"),
    ("两万人", "2万人"),
    ("3.41万吨", "34100吨"),
    ("380000000元", "3.8亿元"),
    ("三点五亿元", "3.5亿元"),
    ("2022年10月23日", "10月23日"),
    ("12月底", "2022年12月31日"),
    ("10月份", "10月底"),
])
def test_same_figure(a, b):
    fa, fb = one(a), one(b)
    assert same_figure(fa, fb) and same_figure(fb, fa)


@pytest.mark.parametrize("a, b", [
    ("1.6万吨", "1.6吨"),
    ("1115处", "1116处"),
    ("1115处", "1115元"),
    ("3个月", "3年"),
    ("95%", "95个"),
    ("9月底", "12月底"),
    ("2021年10月23日", "2022年10月23日"),
    ("10月23日", "10月24日"),
    ("12月底", "12个"),
])
def test_different_figures(a, b):
    fa, fb = one(a), one(b)
    assert not same_figure(fa, fb) and not same_figure(fb, fa)


def test_verify_finds_the_source_that_holds_the_figure():
    sources = [
        "区工业和信息化局已完成。我区累计建成5G基站3334处。",
        "截至10月底,2022年共建设完成1115处,千兆光网覆盖率达到95%以上。",
        "纸浆期货吞吐量完成3.41万吨。",
    ]
    assert verify(one("一千一百一十五处"), sources) == 1
    assert verify(one("3334个"), sources) == 0
    assert verify(one("百分之九十五"), sources) == 1
    assert verify(one("34100吨"), sources) == 2
    assert verify(one("10月底"), sources) == 1
    assert verify(one("1116处"), sources) is None
    assert verify(one("3.41万元"), sources) is None
    assert verify(one("1115处"), []) is None


def test_verify_checks_every_figure_of_an_answer():
    answer = "2022年新建5G基站1115处,累计3334处,覆盖率95%,投资2.5亿元。"
    cited = ["2022年共建设完成1115处,累计建成5G基站3334处,千兆光网覆盖率达到95%以上。"]
    status = {f.text: verify(f, cited) is not None for f in find_figures(answer)}
    assert status == {"2022年": True, "1115处": True, "3334处": True, "95%": True, "2.5亿元": False}


def test_ordinals_are_not_figures():
    assert find_figures("第五次会议") == []
    assert find_figures("抓好第二批农民经济适用房建设") == []
    assert [f.text for f in find_figures("第3批共5批")] == ["5批"]


@pytest.mark.parametrize("text, unit", [("规划面积约67平方公里", "平方公里"), ("新增造林300公顷", "公顷"),
                                        ("年发电1.2亿千瓦时", "千瓦时"), ("交付3艘", "艘"),
                                        ("集装箱吞吐量300万标准箱", "标准箱"), ("累计接种386万剂次", "剂次"),
                                        ("开行中欧班列4710列", "列")])
def test_area_energy_vessel_container_dose_and_train_units(text, unit):
    [found] = find_figures(text)
    assert found.unit == unit


def test_listing_something_is_no_train_count():
    assert [f.text for f in find_figures("将5个项目列入计划")] == ["5个"]
