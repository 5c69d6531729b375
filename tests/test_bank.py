"""The question bank in eval/bank/: well-formed items, gold quotes that are in their documents,
and splits that share no writer (the test split is only reported)."""
from __future__ import annotations

from pathlib import Path

import pytest

from eval.metrics import gold_quotes, load_dataset, normalise

REPO = Path(__file__).resolve().parents[1]
BANK = REPO / "eval" / "bank"
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {name: load_dataset(BANK / f"{name}.jsonl") for name in SPLITS}  # raises on a malformed item


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    return {p.name: normalise(p.read_text(encoding="utf-8")) for p in (REPO / "seeds").glob("*.txt")}


def test_splits_share_no_writer_and_every_item_names_its_writer(splits):
    writers = {name: {item.get("writer") for item in items} for name, items in splits.items()}
    assert all(None not in w and "" not in w for w in writers.values())
    assert not writers["train"] & writers["validation"]
    assert not (writers["train"] | writers["validation"]) & writers["test"]
    assert (BANK / "test.jsonl").read_text(encoding="utf-8").startswith("# TEST split")
    assert "only to report" in (BANK / "test.jsonl").read_text(encoding="utf-8").splitlines()[0]


def check_quotes(items: list[dict], documents: dict[str, str]) -> None:
    """Every answerable item's quotes are in its document and hold an accepted answer of each
    group; an unanswerable item quotes nothing."""
    for item in items:
        quotes = gold_quotes(item)
        if item["type"] == "unanswerable":
            assert not quotes, item["id"]
            continue
        assert item["doc"] in documents and quotes, item["id"]
        assert all(q in documents[item["doc"]] for q in quotes), item["id"]
        held = "".join(quotes)
        for group in item.get("accept_all") or [item["accept"]]:
            assert any(normalise(a) in held for a in group), (item["id"], group)


@pytest.mark.parametrize("name", SPLITS)
def test_gold_quotes_are_in_their_documents_and_hold_an_accepted_answer(splits, documents, name):
    check_quotes(splits[name], documents)


NEWS = REPO / "eval" / "news"
NEWS_SPLITS = {"train": "docs3", "validation2": "docs2", "validation4": "docs4", "validation": "docs",
               "test": "docs"}  # split -> articles


@pytest.mark.parametrize("name", NEWS_SPLITS)
def test_news_questions_quote_their_own_articles(name):
    """The news questions quote their articles; train, validation2, validation4 and validation / test read
    different articles, and no writer is in two splits."""
    docs = {p.name: normalise(p.read_text(encoding="utf-8")) for p in (NEWS / NEWS_SPLITS[name]).glob("*.txt")}
    items = load_dataset(NEWS / f"{name}.jsonl")
    assert items and all(item.get("writer") for item in items)
    check_quotes(items, docs)
    others = [load_dataset(NEWS / f"{n}.jsonl") for n in NEWS_SPLITS if n != name]
    assert not {i["writer"] for i in items} & {i["writer"] for o in others for i in o}
    names = [{p.name for p in (NEWS / d).glob("*.txt")} for d in ("docs", "docs2", "docs3", "docs4")]
    assert all(names) and sum(map(len, names)) == len(set().union(*names))
    assert "only to report" in (NEWS / "test.jsonl").read_text(encoding="utf-8").splitlines()[0]
