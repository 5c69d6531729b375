"""Retrieval over the real seed index (issue 3 "Done when"): hybrid hit@5 on our own questions,
filters, year/district boosts, the LangChain adapter and the public API from another process."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.models import GovragError

REPO = Path(__file__).resolve().parents[1]
D000, D001, D002, D003, D004 = "000_", "001_", "002_", "003_", "004_"

# (question, file-name prefix of the right document, substring of the right chunk's text).
# Written for these tests, in our own words; not copied from eval/dev.jsonl.
QUESTIONS: list[tuple[str, str, str]] = [
    # 000: 2022 Q3 progress table of the Jimo work report tasks
    ("即墨区2022年打算新建多少座5G基站?", D000, "新增5G基站1000个"),
    ("创新奇智人工智能产业园规划的占地面积是多少?", D000, "总占地约200亩"),
    ("城区马路两侧计划新设多少个停车位?", D000, "新增4200个城区道路停车泊位"),
    ("即墨2022年专利授权量的目标是多少件?", D000, "新增专利授权4700件"),
    ("年内要引进多少名高层次人才?", D000, "新引进高层次人才600人"),
    ("需要整治的入海排污口有多少个?", D000, "治理入海排污口130个"),
    ("面向人才的住房计划筹建多少套?", D000, "筹建人才住房2000套"),
    ("全年要组织多少场群众性文化活动?", D000, "群众性文化活动1.5万场"),
    ("新型邻里中心示范点打算建设几处?", D000, "6处新型社区邻里中心示范点"),
    ("农村社区养老服务试点要完成多少个?", D000, "20个农村社区养老服务试点"),
    ("垃圾分类示范村要新创建多少个?", D000, "130个垃圾分类示范村"),
    ("百联奥莱开门营业这项工作由哪个单位负责?", D000, "百联奥特莱斯"),
    ("万达广场配套停车场大约能提供多少个车位?", D000, "约415个"),
    ("截至三季度老旧小区物业管理覆盖到了什么程度?", D000, "100%老旧小区物业管理覆盖"),
    ("帮助企业用专利做质押拿到的贷款目标是多少?", D000, "专利质押贷款2000万"),
    ("How many new 5G base stations did Jimo District plan to add in 2022?", D000, "新增5G基站1000个"),
    ("How many parking spaces on urban roads will Jimo add?", D000, "4200个城区道路停车泊位"),
    # 001: Chengyang 2023 key task list
    ("城阳区2023年要新增几家市级以上重点实验室?", D001, "新增2家市级以上重点实验室"),
    ("享受科技贷款贴息的企业数量力争达到多少家?", D001, "贷款贴息优惠的企业数量达到100家以上"),
    ("生产性服务业增加值的目标是多少亿元?", D001, "生产性服务业增加值突破320亿元"),
    ("城阳区燃气管道今年要新铺多少公里?", D001, "新增燃气管道21.5公里"),
    ("城镇新建民用建筑里绿色建筑要占多大比例?", D001, "绿色建筑占比达到100%"),
    ("单机容量多大以下的煤电机组要关停?", D001, "30万千瓦以下煤电机组"),
    ("城阳区实施的中小学建设项目一共多少处?", D001, "中小学建设项目24处"),
    ("2023年城阳每千人口托位数要达到多少?", D001, "千人口托位数达到3.2个"),
    ("过亿元项目累计要签约多少个?", D001, "累计签约过亿元项目120个"),
    ("畜牧业高质量发展由哪个部门牵头?", D001, "推动畜牧业高质量发展"),
    ("Which department leads the Chengyang task on growing private enterprises?", D001, "培育壮大民营经济"),
    # 002: Jimo government work report (planning part and glossary)
    ("力争新规范纳统的工业企业有多少家?", D002, "新规范纳统工业企业50家以上"),
    ("供热管网要更新改造多少公里?", D002, "供热管网13公里"),
    ("计划新建改造高标准农田多少亩?", D002, "新建改造高标准农田2万亩"),
    ("新增城镇就业的目标是多少人?", D002, "新增城镇就业2.2万人"),
    ("暖新驿站是做什么的?", D002, "暖新驿站:在党建引领下"),
    ("“三资三化”具体是指什么?", D002, "国有资源资产化"),
    # 003: 2021 Jimo work report and two news articles
    ("“十三五”期间即墨区经济总量年均增速是多少?", D003, "全区生产总值年均增长8.1%"),
    ("2020年即墨区地区生产总值达到多少亿元?", D003, "1278.4亿元"),
    ("羊肚菌从种下到收获需要多长时间?", D003, "生长周期仅 3-4 个月"),
    ("周戈庄新村的羊肚菌每亩能产多少鲜菇?", D003, "亩产鲜菇达 800 斤"),
    ("蓝谷产业链长制围绕哪些主导产业?", D003, "海洋高端装备、海洋生物、海洋高技术服务、海洋文旅4个主导产业"),
    ("2021年计划吸收到账外资多少美元?", D003, "8.2亿美元"),
    ("How long does it take for morel mushrooms to grow in Zhougezhuang village?", D003, "3-4 个月"),
    # 004: Chaohai subdistrict 2020 second-half report
    ("潮海街道2020年固定资产投资预计完成多少?", D004, "固定资产投资74.2亿元"),
    ("疫情期间潮海街道一共排查了多少户?", D004, "共摸排61271户"),
    ("扩建潮海中学教学楼投入了多少钱?", D004, "投资4400万元"),
    ("金华苑老旧小区改造花了多少钱?", D004, "投资650万元对金华苑"),
    ("潮海街道划分了多少个基础网格单元?", D004, "设置218个基础单元"),
    ("How much foreign capital did Chaohai Subdistrict use in 2020?", D004, "3085万美元"),
]


@pytest.fixture(scope="module")
def retriever(seed_index, settings):
    from rag.retriever import Retriever

    return Retriever.load(seed_index, settings)


def _hit(hits, doc: str, expected: str) -> bool:
    return any(h.chunk.doc.startswith(doc) and expected in h.chunk.text for h in hits)


def _hit_rate(retriever, channels: tuple[str, ...]) -> tuple[float, list[str]]:
    missed = [q for q, doc, exp in QUESTIONS if not _hit(retriever.search(q, k=5, channels=channels), doc, exp)]
    return 1 - len(missed) / len(QUESTIONS), missed


def test_questions_point_at_real_text():
    """Every expected substring is in its seed document (so a miss is the retriever's fault)."""
    from rag.documents import find_files, load_file

    texts = {p.name: load_file(p).text for p in find_files([REPO / "seeds"])}
    assert len(QUESTIONS) >= 30
    assert sum(1 for q, _, _ in QUESTIONS if q.isascii()) >= 3  # a few English questions
    for q, doc, exp in QUESTIONS:
        names = [n for n in texts if n.startswith(doc)]
        assert len(names) == 1 and exp in texts[names[0]], (q, exp)


def test_hit_at_5_hybrid_with_dense_and_bm25_beside_it(retriever):
    hybrid, missed = _hit_rate(retriever, ("dense", "bm25"))
    dense, _ = _hit_rate(retriever, ("dense",))
    bm25, _ = _hit_rate(retriever, ("bm25",))
    line = f"hit@5 over {len(QUESTIONS)} questions: hybrid {hybrid:.1%}  dense {dense:.1%}  bm25 {bm25:.1%}"
    print("\n" + line)
    assert hybrid >= 0.95, f"{line}; missed: {missed}"


def test_search_returns_k_distinct_chunks_with_channel_ranks(retriever):
    hits = retriever.search("即墨区5G基站建设进展", k=5)
    assert len(hits) == 5
    assert len({h.chunk.id for h in hits}) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(set(h.channels) <= {"dense", "bm25"} and h.channels for h in hits)
    dense_only = retriever.search("即墨区5G基站建设进展", k=5, channels=("dense",))
    assert all(set(h.channels) == {"dense"} for h in dense_only)
    bm25_only = retriever.search("即墨区5G基站建设进展", k=5, channels=("bm25",))
    assert all(set(h.channels) == {"bm25"} for h in bm25_only)


@pytest.mark.parametrize("filters, check", [
    ({"doc": "004_ca1486c1af4b8de3.txt"}, lambda c: c.doc == "004_ca1486c1af4b8de3.txt"),
    ({"district": "城阳区"}, lambda c: c.meta.get("district") == "城阳区"),
    ({"year": 2021}, lambda c: c.meta.get("year") == 2021),
    ({"year": "2021"}, lambda c: c.meta.get("year") == 2021),
    ({"year": [2020, 2023]}, lambda c: c.meta.get("year") in (2020, 2023)),
    ({"kind": "task_row", "district": "即墨区"}, lambda c: c.kind == "task_row" and c.meta["district"] == "即墨区"),
])
def test_filters_restrict_results(retriever, filters, check):
    question = "新增就业和高标准农田建设的目标是多少?"
    unfiltered = retriever.search(question, k=10)
    assert not all(check(h.chunk) for h in unfiltered), "the filter must matter for this question"
    hits = retriever.search(question, k=10, filters=filters)
    assert hits, filters
    assert all(check(h.chunk) for h in hits), [(h.chunk.id, h.chunk.meta.get("year")) for h in hits]


def test_filter_that_matches_nothing_and_unknown_filter(retriever):
    assert retriever.search("5G基站", k=5, filters={"year": 1999}) == []
    with pytest.raises(GovragError, match="unknown filter"):
        retriever.search("5G基站", k=5, filters={"colour": "red"})


def test_query_understanding_reads_year_district_and_row():
    from rag.retriever import understand

    q = understand("2021年即墨区第21项工作完成得怎么样?")
    assert q.years == [2021]
    assert q.districts == ["即墨区"]
    assert q.rows == [21]
    assert q.lang == "zh"
    assert understand("How many 5G base stations were built in Jimo in 2022?").lang == "en"


@pytest.mark.parametrize("year, doc", [(2021, D003), (2022, D000)])
def test_year_in_question_boosts_that_years_document(retriever, year, doc):
    """The same question about high-standard farmland, asked for two different years: the
    document of the year asked about comes first."""
    hits = retriever.search(f"{year}年即墨区高标准农田建设目标", k=5)
    assert hits[0].chunk.doc.startswith(doc), [(h.chunk.id, h.chunk.meta.get("year")) for h in hits]
    assert hits[0].chunk.meta.get("year") == year


@pytest.mark.parametrize("district, doc", [("潮海街道", D004), ("城阳区", D001)])
def test_district_in_question_boosts_that_districts_document(retriever, district, doc):
    hits = retriever.search(f"{district}教育设施建设投入情况", k=5)
    assert hits[0].chunk.doc.startswith(doc), [(h.chunk.id, h.chunk.meta.get("district")) for h in hits]
    assert hits[0].chunk.meta.get("district") == district


def test_boost_raises_the_score_of_the_matching_document(retriever):
    """Adding the year to a question lifts the chunks about that year (on average) above every
    chunk of another year (that does not mention it). A 2021 report's review of 2020 is not about 2021."""
    from rag.retriever import contradicts

    plain = {h.chunk.id: h for h in retriever.search("高标准农田建设目标", k=30)}
    dated = {h.chunk.id: h for h in retriever.search("2021年高标准农田建设目标", k=30)}
    shared = [i for i in plain if i in dated]
    up = [i for i in shared if dated[i].chunk.meta.get("year") == 2021 and not contradicts(dated[i].chunk, [2021], [])]
    other = [i for i in shared if dated[i].chunk.meta.get("year") not in (None, 2021)
             and "2021" not in dated[i].chunk.embed_text]
    assert up and other
    gain = lambda i: dated[i].score - plain[i].score  # noqa: E731
    # a learned ranker moves each chunk by its own features: on average, not every single one
    assert sum(map(gain, up)) / len(up) > max(gain(i) for i in other)


def test_langchain_adapter_returns_documents_with_metadata(retriever):
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    lc = retriever.as_langchain(k=3)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("潮海街道摸排了多少户居民?")
    assert 1 <= len(docs) <= 3
    assert all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert "61271户" in top.page_content
    for key in ("id", "doc", "kind", "heading_path", "start", "end", "score", "title", "district"):
        assert key in top.metadata, key
    assert top.metadata["doc"].startswith(D004)
    assert top.metadata["district"] == "潮海街道"
    chunk = next(c for c in retriever.index.chunks if c.id == top.metadata["id"])
    assert top.page_content == chunk.text and top.metadata["start"] == chunk.start

    filtered = retriever.as_langchain(k=4, filters={"doc": "001_07901cef5f83406f.txt"}).invoke("绿色建筑占比")
    assert filtered and all(d.metadata["doc"] == "001_07901cef5f83406f.txt" for d in filtered)


def test_public_api_script_in_a_separate_process(seed_index, settings, tmp_path):
    """tests/public_api_script.py uses only `from rag.retriever import Retriever`, run by the
    venv's python from another directory, and prints the hits as JSON lines."""
    script = REPO / "tests" / "public_api_script.py"
    imports = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            imports.add((node.module, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            imports.update((a.name, ()) for a in node.names)
    project = {(m, n) for m, n in imports if m and m.split(".")[0] in ("rag", "embeddings")}
    assert project == {("rag.retriever", ("Retriever",))}, imports

    env = {**os.environ, "GOVRAG_CACHE_DIR": settings.cache_dir, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, str(script), str(seed_index), "潮海街道一共摸排了多少户居民?", "--k", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 3
    assert {"rank", "id", "doc", "score", "heading_path", "text"} <= set(lines[0])
    assert [x["rank"] for x in lines] == [1, 2, 3]
    assert lines[0]["doc"].startswith(D004) and "61271户" in lines[0]["text"]

    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "no-index"), "问题"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "govrag index" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_search_script_runs(seed_index, settings):
    """scripts/bench_search.py (the warm-search latency benchmark) runs and prints p50/p95;
    the numbers themselves are not asserted."""
    env = {**os.environ, "GOVRAG_CACHE_DIR": settings.cache_dir}
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_search.py"), "--index", str(seed_index),
                          "--rounds", "1", "--limit", "8", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["queries"] > 0 and 0 < result["p50_ms"] <= result["p95_ms"]


def test_years_of_a_section_and_of_a_document():
    """A report of 2021 reviews 2020 in one section and plans 2021 in another: a question about
    2021 events contradicts the review, one about "the 2021 report" does not."""
    from rag.models import Chunk
    from rag.retriever import contradicts, understand

    meta = {"year": 2021, "doc_kind": "work_report", "district": "即墨区"}
    review = Chunk("r:section:0", "r", "section", "全区完成生产总值1000亿元。", ["2021年政府工作报告", "一、2020年工作回顾"], 0, 14, meta)
    plan = Chunk("r:section:1", "r", "section", "生产总值增长8%左右。", ["2021年政府工作报告", "二、2021年工作安排"], 14, 25, meta)
    event = understand("即墨区2021年全年实际完成的地区生产总值是多少?")
    assert event.years == [2021] and event.doc_years == []
    assert contradicts(review, event.years, event.districts, event.doc_years)
    assert not contradicts(plan, event.years, event.districts, event.doc_years)
    for question in ("根据即墨区2021年政府工作报告,生产总值是多少?", "What GDP did Jimo's 2021 government work report give?",
                     "2021年报告说,生产总值是多少?", "By the time of the 2021 report, what was the GDP?"):
        doc = understand(question)
        assert doc.doc_years == [2021], question
        assert not contradicts(review, doc.years, doc.districts, doc.doc_years)
        assert contradicts(Chunk("x", "x", "section", "", [], 0, 0, {**meta, "year": 2022}), doc.years, doc.districts, doc.doc_years)


def test_a_news_article_is_about_every_year_it_names(tmp_path):
    """A headline may name the year it compares with (恢复至2019年九成): the article's later
    paragraphs are still about the year its body names, and the year of a season (2023—2024产季)
    counts too."""
    from rag.chunking import chunk_source
    from rag.documents import load_file
    from rag.retriever import contradicts, understand

    text = ("西安春节假期接待游客1305.6万人次 旅游收入恢复至2019年九成以上\n\n"
            "本报讯 2023年春节假期,西安市共接待游客1305.6万人次,实现旅游收入112.4亿元。\n\n"
            "假期期间,大唐不夜城单日客流峰值达到68万人次,2023—2024产季咖啡出口1.8万吨。\n")
    path = tmp_path / "news.txt"
    path.write_text(text, encoding="utf-8")
    chunks = chunk_source(load_file(path))
    later = next(c for c in chunks if "大唐不夜城" in c.text)
    assert later.meta["year"] == 2019 and later.meta["years"] == [2019, 2023, 2024]
    for question in ("2023年春节西安大唐不夜城单日客流最多多少人?", "2024年咖啡出口多少吨?"):
        q = understand(question)
        assert not contradicts(later, q.years, q.districts, q.doc_years) and later.about_year(q.years), question
    q = understand("2021年春节西安大唐不夜城单日客流最多多少人?")
    assert contradicts(later, q.years, q.districts, q.doc_years) and not later.about_year(q.years)
