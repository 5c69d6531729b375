"""Fit the learned passage ranker and decide where the dense channel pays.

    python -m eval.train_ranker [--index DIR] [--out rag/data/ranker_model.json]

* Questions: the bank's train split and eval/dev.jsonl (answerable ones), and those of
  eval/news/train.jsonl over an index of the news articles they read (eval/news/docs3/, indexed
  beside the main index; English ones translated with the stored senses). For each, the union of
  BM25's and the dense channel's top 30 is gathered exactly as the retriever does; a passage is
  relevant when it holds one of the item's gold quotes.
* Trees: LightGBM LambdaRank (one thread, deterministic), the mean of four forests fitted with
  seeds 0-3 (leaves divided by four), exported as plain JSON.
* Two forests: one over both channels' features, one over BM25's alone (for a lexical-only
  index, whose vectors are still being computed, and for a language the dense channel does not
  pay for). Dense or not is decided per kind of document and language: hit@1 and hit@5 with
  each forest on the seeds' validation questions (the bank's validation split, for the seeds'
  reports and tables) and on news validation questions (eval/news/validation2.jsonl over
  eval/news/docs2/, indexed beside the main index as `<index>-news-validation`, for news
  articles); the dense channel is kept for a kind and language only where it raises hit@1 +
  hit@5 there by at least MIN_QUESTIONS questions (encoding the query costs ~20 ms; one question
  is noise). The seeds' Chinese questions gained nothing from it, the news articles' did. The
  test splits are never read here.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from eval.fit_senses import folds
from eval.fitting import (NEWS_TRAIN, NEWS_VALIDATION, NEWS_VALIDATION_DOCS, command, news_index, training_items,
                          write_model)
from eval.metrics import gold_quotes, load_dataset, normalise

MIN_QUESTIONS = 2  # validation questions (hit@1 + hit@5) the dense channel must win in a language
TRAIN = [Path("eval/bank/train.jsonl"), Path("eval/dev.jsonl")]
VALIDATION = Path("eval/bank/validation.jsonl")
CANDIDATES = 30
PARAMS = dict(objective="lambdarank", learning_rate=0.05, num_leaves=15, min_data_in_leaf=20, feature_fraction=0.8,
              lambda_l2=1.0, lambdarank_truncation_level=10, deterministic=True, num_threads=1, seed=0, verbose=-1)
ROUNDS = 200
SEEDS = (0, 1, 2, 3)  # forests averaged
FITTED_ON = ["progress_table", "task_list", "work_report", "news"]  # the seeds' kinds, and the news articles'


def groups(retriever, items: list[dict[str, Any]], dense: set[str],
           senses: dict[str, Any]) -> list[tuple[dict[str, Any], list[int], np.ndarray, np.ndarray]]:
    """(item, candidate positions, features, relevance) of each answerable item; `dense`: the
    languages whose questions use the dense channel; `senses`: the dictionary sense counts to
    translate each writer's questions with (the stored ones for a writer it lacks)."""
    from tqdm import tqdm

    from rag.english import use_senses

    chunks = retriever.index.chunks
    texts = [normalise(c.text) for c in chunks]
    out = []
    for item in tqdm(items, desc="passages", unit="q", file=sys.stderr):
        if item["type"] in ("unanswerable", "table"):
            continue
        use_senses(senses.get(item["writer"]))
        q = retriever.understand(item["question"])
        channels = ("dense", "bm25") if q.lang in dense else ("bm25",)
        ranks, raw, rrf = retriever.gather(q, CANDIDATES, channels)
        positions = sorted(rrf, key=lambda p: -rrf[p])
        X, _ = retriever.ranking_features(q, positions, ranks, raw, rrf)
        quotes = gold_quotes(item)
        y = np.array([int(any(qt in texts[p] for qt in quotes)) for p in positions], dtype=np.int8)
        out.append((item, positions, X, y))
    use_senses(None)
    return out


def fit(data: list) -> list[dict[str, Any]]:
    """The trees of one forest per seed, each leaf divided by the number of seeds: their sum is
    the forests' mean (one seed's forest moved a few validation questions from refit to refit)."""
    import lightgbm

    from rag.trees import lightgbm_trees

    data = [d for d in data if len(d[1])]
    X = np.vstack([d[2] for d in data])
    y = np.concatenate([d[3] for d in data])
    trees = []
    for seed in SEEDS:
        booster = lightgbm.train({**PARAMS, "seed": seed}, lightgbm.Dataset(X, y, group=[len(d[1]) for d in data]),
                                 num_boost_round=ROUNDS)
        trees += [{**t, "value": [v / len(SEEDS) for v in t["value"]]} for t in lightgbm_trees(booster)]
    return trees


def hits_at(retriever, items: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """hit@1 and hit@5 of the retriever as it searches (k=5): over all questions, per language
    ("zh", "en") and per question type ("figure", "entity", ...)."""
    out: dict[str, list[tuple[bool, bool]]] = {}
    for item in items:
        if item["type"] in ("unanswerable", "table"):
            continue
        quotes = gold_quotes(item)
        hits = retriever.search(item["question"], k=5)
        found = [any(q in normalise(h.chunk.text) for q in quotes[:1]) for h in hits]
        for key in ("all", item["lang"], item["type"]):
            out.setdefault(key, []).append((bool(found[:1] and found[0]), any(found)))
    return {lang: {"hit@1": round(float(np.mean([a for a, _ in v])), 4), "hit@5": round(float(np.mean([b for _, b in v])), 4),
                   "n": len(v)} for lang, v in out.items()}


def _validation_hits(retriever, items: list[dict[str, Any]], dense_trees: list, lexical_trees: list
                     ) -> dict[str, dict[str, dict[str, float]]]:
    """hit@1 and hit@5 of `items` with the dense channel in both languages, without it, and with
    reciprocal-rank fusion."""
    from rag.ranker import RankerModel

    results = {}
    for name, langs in (("dense", {"zh", "en"}), ("no-dense", set())):
        retriever._ranker = RankerModel({"trees": dense_trees, "lexical_trees": lexical_trees, "dense_langs": {}})
        retriever.dense_langs = langs
        results[name] = hits_at(retriever, items)
    retriever._ranker = None
    results["rrf"] = hits_at(retriever, items)
    return results


def dense_pays(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The languages in which the dense channel raises hit@1 + hit@5 by MIN_QUESTIONS questions."""
    def gain(lang: str) -> float:
        return sum(results["dense"][lang][k] - results["no-dense"][lang][k] for k in ("hit@1", "hit@5"))

    return sorted(lang for lang in ("zh", "en")
                  if lang in results["dense"] and gain(lang) * results["dense"][lang]["n"] >= MIN_QUESTIONS - 1e-9)


def train(retriever, out: Path) -> dict[str, Any]:
    """Fit with and without the dense channel, keep it per kind of document and language where
    it pays on that kind's validation questions, write the model."""
    import lightgbm

    from rag.ranker import FEATURES, FORMAT, RankerModel
    from rag.retriever import Retriever

    items = training_items(TRAIN)
    senses = folds(retriever, items)
    news_settings = news_index(retriever.settings)
    news, news_items = Retriever.load(news_settings.index_dir, news_settings), training_items([NEWS_TRAIN])
    dense_trees = fit(groups(retriever, items, {"zh", "en"}, senses) + groups(news, news_items, {"zh", "en"}, {}))
    lexical_trees = fit(groups(retriever, items, set(), senses) + groups(news, news_items, set(), {}))
    checked = news_index(retriever.settings, NEWS_VALIDATION_DOCS, "news-validation")
    results = {"seeds": _validation_hits(retriever, load_dataset(VALIDATION), dense_trees, lexical_trees),
               "news": _validation_hits(Retriever.load(checked.index_dir, checked), load_dataset(NEWS_VALIDATION),
                                        dense_trees, lexical_trees)}
    dense_langs = {kind: dense_pays(results["news" if kind == "news" else "seeds"]) for kind in FITTED_ON}
    data = {"format": FORMAT, "features": list(FEATURES), "trees": dense_trees, "lexical_trees": lexical_trees,
            "dense_langs": dense_langs, "doc_kinds": FITTED_ON,
            "trained": {"train": [str(p) for p in [*TRAIN, NEWS_TRAIN]],
                        "validation": [str(VALIDATION), str(NEWS_VALIDATION)], "params": PARAMS,
                        "rounds": ROUNDS, "seeds": list(SEEDS), "candidates": CANDIDATES, "lightgbm": lightgbm.__version__,
                        "validation_hits": results}}
    retriever._ranker = RankerModel(data)
    retriever.dense_langs = retriever._ranker.dense_langs(retriever.index.chunks)
    data["trained"]["validation_hits"]["seeds"]["final"] = hits_at(retriever, load_dataset(VALIDATION))
    write_model(out, data)
    return data


def main(argv: list[str] | None = None) -> int:
    from rag.ranker import MODEL_PATH
    from rag.retriever import Retriever

    return command("eval.train_ranker", __doc__, MODEL_PATH, train, Retriever.load, argv)


if __name__ == "__main__":
    sys.exit(main())
