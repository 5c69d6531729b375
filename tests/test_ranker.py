"""The learned passage ranker: its features on made-up passages, the stored model file, and the
training command reproducing it."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from rag.english import Vocabulary
from rag.index import tokenize
from rag.models import Chunk, GovragError
from rag.ranker import FEATURES, MODEL_PATH, Channels, RankerModel, features, load_ranker
from rag.retriever import understand

from helpers import refit

# Two made-up reports: both build parks, only the first names its plan period.
DOCS = {
    "a.txt": ["甲区“十五五”规划开局之年工作报告", "全年新建口袋公园12个。", "改造老旧小区40个。"],
    "b.txt": ["乙区工作报告", "全年新建口袋公园9个。", "新建学校3所。"],
}


def _index() -> SimpleNamespace:
    chunks = [Chunk(f"{doc}:section:{i}", doc, "section", text, [doc], 0, len(text),
                    {"title": texts[0], "doc_kind": "work_report"})
              for doc, texts in DOCS.items() for i, text in enumerate(texts)]
    return SimpleNamespace(chunks=chunks, idf=lambda token: 1.0,
                           doc_texts={doc: "\n".join(texts).lower() for doc, texts in DOCS.items()})


def _features(question: str, index: SimpleNamespace, dense: dict[int, tuple[int, float]] | None = None):
    vocabulary = Vocabulary(tokenize(" ".join(c.text for c in index.chunks)))
    q = understand(question, vocabulary=vocabulary)
    positions = list(range(len(index.chunks)))
    ch = Channels({p: (p + 1, 10.0 - p) for p in positions}, dense)
    X = features(q, positions, ch, index, "count", "个", lambda c: False, {p: 1.0 / (61 + p) for p in positions})
    return {index.chunks[p].id: dict(zip(FEATURES, row.tolist())) for p, row in zip(positions, X)}


def test_a_passage_of_the_document_the_question_describes_scores_its_whole_document():
    index = _index()
    rows = _features("提到十五五规划的那份报告里新建了多少个口袋公园?", index)
    a, b = rows["a.txt:section:1"], rows["b.txt:section:1"]
    assert a["cov_text"] == pytest.approx(b["cov_text"])  # the two park sentences alone are alike
    assert a["cov_doc"] > b["cov_doc"]
    assert a["cov_doc_gap"] == 0.0 and b["cov_doc_gap"] < 0.0
    assert rows["a.txt:section:2"]["cov_doc"] == a["cov_doc"]  # a document-level feature


def test_channel_features_say_which_channel_found_the_passage():
    index = _index()
    lexical = _features("新建了多少个口袋公园?", index)
    assert all(math.isnan(r["dense"]) and r["both"] == 0.0 for r in lexical.values())
    hybrid = _features("新建了多少个口袋公园?", index, dense={1: (1, 0.9), 4: (2, 0.8)})
    found, missed = hybrid["a.txt:section:1"], hybrid["a.txt:section:2"]
    assert found["both"] == 1.0 and found["dense_gap"] == 0.0 and found["dense_rank"] == 0.0
    assert missed["both"] == 0.0 and math.isnan(missed["dense_gap"])
    assert hybrid["b.txt:section:1"]["dense_gap"] == pytest.approx(-0.1)


def test_asked_unit_and_figure_features():
    rows = _features("新建了多少个口袋公园?", _index())
    assert rows["a.txt:section:1"]["unit_figure"] == 1.0 and rows["b.txt:section:2"]["unit_figure"] == 0.0
    assert all(r["asked_count"] == 1.0 for r in rows.values())


def test_the_model_file_matches_the_features(tmp_path):
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert data["features"] == list(FEATURES)
    assert set(data["dense_langs"]) == set(data["doc_kinds"])
    assert all(set(langs) <= {"zh", "en"} for langs in data["dense_langs"].values())
    stale = tmp_path / "ranker_model.json"
    stale.write_text(json.dumps({**data, "features": data["features"][:-1]}), encoding="utf-8")
    with pytest.raises(GovragError, match="train_ranker"):
        load_ranker(stale)
    assert load_ranker(tmp_path / "absent.json") is None  # reciprocal-rank fusion then


def test_the_dense_channel_runs_for_the_languages_of_the_index_s_kinds_of_documents():
    dense = {"work_report": ["en"], "news": ["en", "zh"]}
    model = RankerModel({"trees": [], "lexical_trees": [], "dense_langs": dense})
    report = _index().chunks
    news = [Chunk("n.txt:section:1", "n.txt", "section", "新闻", ["n"], 0, 2, {"doc_kind": "news"})]
    assert model.dense_langs(report) == {"en"}
    assert model.dense_langs(report + news) == {"en"}  # one article among six report passages
    assert model.dense_langs(report + news * 6) == {"en", "zh"}  # mostly articles
    assert model.dense_langs([Chunk("x", "x", "section", "x", [], 0, 1, {"doc_kind": "other"})]) == set()


@pytest.mark.slow
def test_training_reproduces_the_stored_ranker_bit_for_bit(seed_index, tmp_path):
    out = tmp_path / "ranker_model.json"
    refit("eval.train_ranker", seed_index, out)
    fresh, stored = json.loads(out.read_text(encoding="utf-8")), json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    for key in ("features", "trees", "lexical_trees", "dense_langs"):
        assert fresh[key] == stored[key], key
