"""Integrity checks for the evaluation set eval/dev.jsonl (standard library + pytest only)."""
import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DEV = ROOT / "eval" / "dev.jsonl"
SEEDS = ROOT / "seeds"

REQUIRED = ("id", "question", "answer", "accept", "doc", "quote", "type", "lang")
TYPES = {"figure", "entity", "deadline", "status", "multi", "unanswerable"}
LANGS = {"zh", "en"}


def normalise(s: str) -> str:
    """Spaces removed, full-width ASCII variants mapped to half-width (as in DESIGN.md)."""
    out = []
    for ch in s:
        o = ord(ch)
        if 0xFF01 <= o <= 0xFF5E:
            ch = chr(o - 0xFEE0)
        elif o == 0x3000:
            ch = " "
        out.append(ch)
    return "".join("".join(out).split())


def _load():
    items = []
    for n, line in enumerate(DEV.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as e:  # pragma: no cover - reported by test_lines_parse
            items.append({"_error": f"line {n}: {e}"})
    return items


ITEMS = _load()
_DOC_CACHE: dict[str, str] = {}


def doc_text(name: str) -> str:
    if name not in _DOC_CACHE:
        _DOC_CACHE[name] = (SEEDS / name).read_text(encoding="utf-8")
    return _DOC_CACHE[name]


def _ids(items):
    return [it.get("id", f"#{i}") for i, it in enumerate(items)]


def test_file_exists():
    assert DEV.is_file(), f"missing {DEV}"


def test_lines_parse():
    errors = [it["_error"] for it in ITEMS if "_error" in it]
    assert not errors, errors
    assert all(isinstance(it, dict) for it in ITEMS)


@pytest.mark.parametrize("item", ITEMS, ids=_ids(ITEMS))
def test_item_schema(item):
    for f in REQUIRED:
        assert f in item, f"missing field {f}"
    assert isinstance(item["question"], str) and item["question"].strip()
    assert isinstance(item["answer"], str) and item["answer"].strip()
    assert isinstance(item["accept"], list) and all(isinstance(a, str) and a.strip() for a in item["accept"])
    assert item["type"] in TYPES, item["type"]
    assert item["lang"] in LANGS, item["lang"]
    assert (SEEDS / item["doc"]).is_file(), f"doc not in seeds/: {item['doc']}"
    assert isinstance(item["quote"], str)
    if "accept_all" in item:
        groups = item["accept_all"]
        assert isinstance(groups, list) and groups
        for g in groups:
            assert isinstance(g, list) and g and all(isinstance(a, str) and a.strip() for a in g)
    if "quotes" in item:
        assert isinstance(item["quotes"], list) and item["quotes"]
        assert all(isinstance(q, str) and q for q in item["quotes"])
    if "docs" in item:
        assert "quotes" in item, "docs given without quotes"
        assert len(item["docs"]) == len(item["quotes"]), "docs must be parallel to quotes"
        for d in item["docs"]:
            assert (SEEDS / d).is_file(), f"doc not in seeds/: {d}"


@pytest.mark.parametrize("item", ITEMS, ids=_ids(ITEMS))
def test_language_matches_question(item):
    q = item["question"]
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in q)
    ascii_letters = sum(ch.isascii() and ch.isalpha() for ch in q)
    if item["lang"] == "zh":
        assert has_cjk, "zh question without Chinese characters"
    else:
        assert ascii_letters >= 10, "en question should be written in English"


def test_unique_ids():
    ids = [it["id"] for it in ITEMS]
    dup = [k for k, v in Counter(ids).items() if v > 1]
    assert not dup, f"duplicate ids: {dup}"


def test_unique_questions():
    qs = [normalise(it["question"]) for it in ITEMS]
    dup = [k for k, v in Counter(qs).items() if v > 1]
    assert not dup, f"duplicate questions: {dup}"


@pytest.mark.parametrize("item", ITEMS, ids=_ids(ITEMS))
def test_quotes_are_verbatim(item):
    text = doc_text(item["doc"])
    if item["type"] == "unanswerable":
        assert item["quote"] == "", "unanswerable items must have an empty quote"
        assert "quotes" not in item or not item["quotes"]
        return
    quote = item["quote"]
    assert quote, "answerable items need a quote"
    assert item["accept"], "answerable items need accept strings"
    assert "\n" not in quote, "quote must not span lines"
    assert 10 <= len(quote) <= 80, f"quote length {len(quote)} outside 10-80"
    assert quote in text, f"quote not found verbatim in {item['doc']}: {quote!r}"
    docs = item.get("docs") or [item["doc"]] * len(item.get("quotes", []))
    for q, d in zip(item.get("quotes", []), docs):
        assert "\n" not in q
        assert 10 <= len(q) <= 80, f"quote length {len(q)} outside 10-80"
        assert q in doc_text(d), f"quote not found verbatim in {d}: {q!r}"


@pytest.mark.parametrize(
    "item", [it for it in ITEMS if it.get("type") == "figure"], ids=_ids([it for it in ITEMS if it.get("type") == "figure"])
)
def test_figure_answer_in_quote(item):
    nq = normalise(item["quote"])
    candidates = [item["answer"], *item["accept"]]
    assert any(normalise(c) in nq for c in candidates), (
        f"neither gold answer nor any accept string occurs in the quote: {item['accept']} / {item['quote']!r}"
    )


@pytest.mark.parametrize(
    "item",
    [it for it in ITEMS if it.get("accept_all")],
    ids=_ids([it for it in ITEMS if it.get("accept_all")]),
)
def test_accept_all_groups_supported_by_quotes(item):
    supporting = normalise(item["quote"] + "".join(item.get("quotes", [])))
    for group in item["accept_all"]:
        assert any(normalise(a) in supporting for a in group), f"group {group} not found in any quote"


def test_multi_items_have_two_facts():
    for it in ITEMS:
        if it["type"] == "multi":
            assert it.get("quotes"), f"{it['id']}: multi item needs further quotes"
            assert len(it.get("accept_all", [])) >= 2, f"{it['id']}: multi item needs >= 2 accept_all groups"


def test_counts_and_coverage():
    assert len(ITEMS) >= 150, len(ITEMS)
    langs = Counter(it["lang"] for it in ITEMS)
    assert langs["en"] >= 40, langs
    types = Counter(it["type"] for it in ITEMS)
    assert set(types) == TYPES, types
    seed_docs = {p.name for p in SEEDS.glob("*.txt")}
    used = {it["doc"] for it in ITEMS}
    assert seed_docs <= used, f"docs without questions: {sorted(seed_docs - used)}"
    # unanswerable and English items cover every document
    for lang_or_type, key in (("en", "lang"), ("unanswerable", "type")):
        covered = {it["doc"] for it in ITEMS if it[key] == lang_or_type}
        assert seed_docs <= covered, f"no {lang_or_type} items for {sorted(seed_docs - covered)}"


HOLDOUT = ROOT / "eval" / "holdout.jsonl"
HOLD_ITEMS = [json.loads(line) for line in HOLDOUT.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("item", HOLD_ITEMS, ids=_ids(HOLD_ITEMS))
def test_holdout_items_are_verifiable(item):
    """eval/holdout.jsonl (written apart from the system, never tuned on): every answerable
    quote is in its document and holds every accepted answer; no question repeats dev.jsonl."""
    assert item["type"] in TYPES and item["lang"] in LANGS
    assert normalise(item["question"]) not in {normalise(it["question"]) for it in ITEMS}
    if item["type"] == "unanswerable":
        assert item["quote"] == "" and item["accept"] == []
        return
    quotes = [(item["quote"], item["doc"])] + list(zip(item.get("quotes", []), item.get("docs", [])))
    for quote, doc in quotes:
        assert normalise(quote) in normalise(doc_text(doc)), quote
    supporting = normalise("".join(q for q, _ in quotes))
    for group in item.get("accept_all") or [item["accept"]]:
        assert any(normalise(a) in supporting for a in group), group


def test_holdout_ids_unique_and_mix_like_the_hidden_set():
    assert len({it["id"] for it in HOLD_ITEMS}) == len(HOLD_ITEMS) >= 50
    langs = Counter(it["lang"] for it in HOLD_ITEMS)
    assert 0.1 <= langs["en"] / len(HOLD_ITEMS) <= 0.3, langs
    assert {it["type"] for it in HOLD_ITEMS} == TYPES
