"""Dictionary senses fitted on questions (rag.english.Senses, eval.fit_senses): which of
CC-CEDICT's translations of an English word questions over these documents mean."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rag import english
from rag.english import Senses, Vocabulary, dictionary_senses, expand_query, use_senses
from rag.models import Chunk

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # eval/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from eval.fit_senses import count, folds, gold_words  # noqa: E402
from helpers import refit  # noqa: E402
CORPUS = Vocabulary(["培训", "列车", "罚款", "优良", "精细", "美好", "报告", "人才", "农民"])


@pytest.fixture
def no_senses():
    use_senses(Senses())
    yield
    use_senses(None)


def test_counted_senses_reorder_a_words_translations(no_senses):
    heads = dict(dictionary_senses("How many farmers will they train?", CORPUS))["train"]
    assert heads.index("列车") < heads.index("培训")  # the dictionary's own order: railways first
    before = dict(expand_query("How many farmers will they train?", CORPUS))
    use_senses(Senses({"train": {"列车": (6, 0), "培训": (6, 5)}}))
    after = dict(expand_query("How many farmers will they train?", CORPUS))
    assert after["培训"] > after.get("列车", 0.0)
    assert before.get("列车", 0.0) > before.get("培训", 0.0)


def test_a_sense_never_seen_keeps_the_dictionary_order():
    table = Senses({"fine": {"罚款": (3, 3)}})
    assert table.order("fine", ["优良", "精细", "罚款"]) == ["罚款", "优良", "精细"]
    assert table.order("fine", ["优良", "精细"]) == ["优良", "精细"]
    assert table.order("report", ["报道", "报告"]) == ["报道", "报告"]
    assert table.score("fine", "罚款") > table.score("fine", "优良") > Senses({"fine": {"优良": (4, 0)}}).score("fine", "优良")


def test_counts_come_from_the_passages_that_hold_the_gold_quote():
    chunks = [Chunk("a", "d", "section", "今年培训高素质农民550人。", ["农业"], 0, 10, {"title": "工作报告"}),
              Chunk("b", "d", "section", "开通列车线路2条。", ["交通"], 0, 10, {"title": "工作报告"})]
    items = [{"question": "How many farmers will they train?", "quote": "培训高素质农民550人", "lang": "en",
              "type": "figure", "writer": "w1"},
             {"question": "How many people did they train?", "quote": "培训高素质农民", "lang": "en",
              "type": "figure", "writer": "w2"}]
    golds = gold_words(chunks, items)
    assert "培训" in golds[0] and "列车" not in golds[0] and "报告" in golds[0]  # the title counts
    table = count(items, golds, CORPUS)
    assert table["train"]["培训"] == (2, 2) and table["train"]["列车"] == (2, 0)


def test_each_writer_is_translated_with_counts_fitted_without_them(seed_index):
    from rag.retriever import Retriever

    retriever = Retriever.load(seed_index)
    chunk = next(c for c in retriever.index.chunks if "培训" in c.text)
    sentence = next(s for s in chunk.text.split("。") if "培训" in s)
    items = [{"question": "What do they train?", "quote": sentence, "lang": "en", "type": "entity", "writer": w}
             for w in ("w1", "w2")]
    by_writer = folds(retriever, items)
    assert by_writer["w1"].counts["train"]["培训"] == (1, 1) == by_writer["w2"].counts["train"]["培训"]
    alone = folds(retriever, items[:1])
    assert alone["w1"].counts == {}


@pytest.mark.slow
def test_fitting_reproduces_the_stored_counts(seed_index, tmp_path):
    out = tmp_path / "senses.tsv"
    refit("eval.fit_senses", seed_index, out)
    assert out.read_text(encoding="utf-8") == english.SENSES_PATH.read_text(encoding="utf-8")
