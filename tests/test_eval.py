"""The eval runner: metrics on a made-up dataset with known outcomes, dataset errors, and one
end-to-end run of the real runner over the seed index."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # eval/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from eval.metrics import is_correct, load_dataset, normalise  # noqa: E402
from eval.run import evaluate, main  # noqa: E402
from rag.models import Answer, Chunk, Citation, Figure, GovragError, Hit  # noqa: E402

CHUNK_TEXTS = {
    "c1": "截至10月底,我区累计建成5G基站3334处,2022年共建设完成1115处。",
    "c2": "新增5G基站1000个,千兆光网覆盖率达到95%以上。",
    "c3": "区商务局牵头,组织电商直播培训。",
    "c4": "其他内容,与问题无关。",
}
CHUNKS = {cid: Chunk(cid, "doc.txt", "section", text, [], 0, len(text)) for cid, text in CHUNK_TEXTS.items()}


def item(id_: str, type_: str, accept: list[str], quote: str = "", lang: str = "zh", **extra) -> dict:
    return {"id": id_, "question": f"question {id_}", "answer": "gold", "accept": accept, "doc": "doc.txt",
            "quote": quote, "type": type_, "lang": lang, **extra}


def cite(*ids: str) -> list[Citation]:
    return [Citation(n, cid, "doc.txt", "", [], CHUNK_TEXTS[cid][:10], 0, 10, 0.5) for n, cid in enumerate(ids, 1)]


def ans(text: str, cited: tuple[str, ...] = (), abstained: bool = False, figures: tuple[bool, ...] = ()) -> Answer:
    figs = [Figure("1", 1.0, "", ok, 1) for ok in figures]
    return Answer("q", text, cite(*cited), figs, abstained, timings={"retrieve_ms": 10.0, "total_ms": 20.0})


Q_5G = "累计建成5G基站3334处"
Q_1000 = "新增5G基站1000个"
ITEMS = [
    item("q1", "figure", ["3334", "5G基站3334"], Q_5G),
    item("q2", "figure", ["3334"], Q_5G),
    item("q3", "entity", ["区商务局"], "区商务局牵头"),
    item("q4", "entity", ["区商务局"], "区商务局牵头"),
    item("q5", "multi", ["1000"], Q_1000, accept_all=[["1000"], ["1115"]], quotes=["2022年共建设完成1115处"]),
    item("q6", "multi", ["1000"], Q_1000, accept_all=[["1000"], ["1115"]], quotes=["2022年共建设完成1115处"]),
    item("q7", "unanswerable", []),
    item("q8", "unanswerable", [], lang="en"),
    item("q9", "figure", ["95%"], "覆盖率达到95%以上"),
]
# question -> (answer, retrieved chunk ids in rank order)
DESIGNED = {
    # full-width digits and a lower-case "g" still match after normalisation
    "q1": (ans("3334处,5g基站3334[1]", ("c1",), figures=(True,)), ["c1", "c2"]),
    # the right figure only inside the quoted evidence: correct, but not strictly; cites a wrong chunk
    "q2": (ans("1115处[1]。依据:“累计建成5G基站3334处”[1]", ("c2",), figures=(False,)), ["c2", "c1"]),
    "q3": (ans("甲" * 150 + " " * 100 + "区商务局"), ["c4"]),  # 154 characters without spaces: concise
    "q4": (ans("甲" * 197 + "区商务局"), ["c4"]),  # 201 characters: a dump, not an answer
    "q5": (ans("1000个", ("c2",)), ["c4", "c3", "c2", "c4", "c4", "c1"]),  # one group missing
    "q6": (ans("1000个;1115处", ("c2", "c1")), ["c2", "c1"]),
    "q7": (ans("没有找到", abstained=True), ["c4"]),
    "q8": (ans("95%", ("c2",)), ["c2"]),
    "q9": (ans("没有找到", abstained=True), []),
}


class StubSystem:
    name = "stub"
    chunks = list(CHUNKS.values())

    def ask(self, question: str, k: int = 5) -> tuple[Answer, list[Hit]]:
        answer, ids = DESIGNED[question.split()[-1]]
        return answer, [Hit(CHUNKS[cid], 1.0 / r) for r, cid in enumerate(ids, 1)]


@pytest.fixture(scope="module")
def stub_run():
    [run] = evaluate([StubSystem()], ITEMS, k=5, progress=False)
    return run


def test_normalise():
    assert normalise(" 5G 基站 3334 处 ") == normalise("5g基站3334处") == "5g基站3334处"


def test_accuracy_rules(stub_run):
    metrics, results = stub_run
    correct = {r["id"]: (r["correct"], r["correct_strict"]) for r in results}
    assert correct == {"q1": (True, True), "q2": (True, False), "q3": (True, True), "q4": (False, False),
                       "q5": (False, False), "q6": (True, True), "q7": (True, True), "q8": (False, False),
                       "q9": (False, False)}
    assert metrics["overall"]["accuracy"] == round(5 / 9, 4)
    assert metrics["overall"]["accuracy_strict"] == round(4 / 9, 4)
    assert metrics["by_type"]["figure"]["accuracy"] == round(2 / 3, 4)
    assert metrics["by_type"]["multi"]["accuracy"] == 0.5
    assert (metrics["by_lang"]["en"]["n"], metrics["by_lang"]["en"]["accuracy"]) == (1, 0.0)


def test_abstention(stub_run):
    overall = stub_run[0]["overall"]
    assert overall["abstain_precision"] == 0.5  # q7 right, q9 an answerable item
    assert overall["abstain_recall"] == 0.5  # q7 of q7, q8
    assert overall["false_abstain"] == round(1 / 7, 4)


def test_retrieval(stub_run):
    metrics, results = stub_run
    assert {r["id"]: r["hit_rank"] for r in results} == {"q1": 1, "q2": 2, "q3": None, "q4": None, "q5": 3,
                                                          "q6": 1, "q7": None, "q8": None, "q9": None}
    overall = metrics["overall"]
    assert overall["hit@1"] == round(2 / 7, 4)
    assert overall["hit@5"] == round(4 / 7, 4)
    assert overall["mrr"] == round((1 + 1 / 2 + 1 / 3 + 1) / 7, 4)
    assert overall["all_quotes@5"] == 0.5  # q5's second quote only at rank 6
    assert metrics["quote_coverage"] == 1.0


def test_citations_figures_latency(stub_run):
    metrics, _ = stub_run
    assert metrics["overall"]["citation_precision"] == 0.8  # q1 1/1, q2 0/1, q5 1/1, q6 2/2
    assert metrics["overall"]["figures_verified"] == 0.5
    assert metrics["latency_ms"]["total_ms"] == {"p50": 20.0, "p95": 20.0}


def test_strict_ignores_quoted_evidence():
    it = item("x", "figure", ["3334"], Q_5G)
    assert is_correct(it, ans("3334处"), strict=True)
    assert not is_correct(it, ans("1115处 “3334处”"), strict=True)


@pytest.mark.parametrize("content, message", [
    ('{"id": "a"}\n', "line 1: missing field(s) question, answer, accept, doc, quote, type"),
    (json.dumps(item("a", "figure", ["1"], "q")) + "\n{oops\n", "line 2: not valid JSON"),
    (json.dumps(item("a", "opinion", ["1"], "q")), "line 1: type 'opinion'"),
    (json.dumps(item("a", "figure", [], "q")), "line 1: an answerable item needs accept strings"),
    ("\n", "has no items"),
])
def test_dataset_errors(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GovragError, match=re.escape(message)):
        load_dataset(path)


def test_missing_dataset_exits_2(tmp_path, capsys):
    from rag.cli import main as cli_main

    assert cli_main(["eval", "--dataset", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl: no such file" in err and "Traceback" not in err


def test_end_to_end(tmp_path, seed_index, capsys):
    """The real runner over six dev questions (one per type) and the seed index."""
    dev = [json.loads(line) for line in (REPO / "eval" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [next(d for d in dev if d["type"] == t)
              for t in ("figure", "entity", "deadline", "status", "multi", "unanswerable")]
    dataset = tmp_path / "six.jsonl"
    dataset.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in picked), encoding="utf-8")
    args = argparse.Namespace(dataset=str(dataset), out=str(tmp_path / "out"), json=True, llm=False, k=None,
                              compare=False, index=str(seed_index), config=None, build_seconds=1.5)
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"metrics", "results"}
    m = payload["metrics"]
    assert {"overall", "by_type", "by_lang", "latency_ms", "index_build", "peak_rss_mb", "quote_coverage"} <= set(m)
    assert set(m["by_type"]) == {"figure", "entity", "deadline", "status", "multi", "unanswerable"}
    assert {"accuracy", "hit@1", "hit@5", "mrr", "citation_precision", "figures_verified", "abstain_precision",
            "abstain_recall"} <= set(m["overall"])
    assert m["overall"]["n"] == 6 and m["index_build"]["seconds"] == 1.5
    assert {"p50", "p95"} == set(m["latency_ms"]["total_ms"])
    assert [r["id"] for r in payload["results"]] == [d["id"] for d in picked]
    for r in payload["results"]:
        assert {"id", "question", "answer", "retrieved", "timings", "correct"} <= set(r)
        assert {"answer", "citations", "figures", "abstained"} <= set(r["answer"])
        assert len(r["retrieved"]) >= 5 and set(r["retrieved"][0]) == {"id", "score"}
        assert "total_ms" in r["timings"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.json", "report.md", "report.png", "reliability.png"}
