"""Fit the reader model: gradient-boosted trees over the candidates' features, two forests that
read the best candidate (P(right), P(no answer in the documents)), and the abstention threshold.

    python -m eval.train_reader [--index DIR] [--out rag/data/reader_model.json]

* Every question of the bank's train split and of eval/dev.jsonl goes through the pipeline's own
  retrieval, and every question of eval/news/train.jsonl through an index of the news articles
  it reads (eval/news/docs3/, indexed beside the main index; its English questions are translated
  with the stored senses, which count no news writer's question); each
  candidate of the retrieved passages is labelled right when what it puts first holds an
  accepted answer and its sentence overlaps the gold quote (no candidate of an unanswerable
  question is right).
* The trees are fitted on the train split with LightGBM's LambdaRank objective (the candidates
  of one question half are ranked against each other); one thread, deterministic mode, fixed
  seed: the same data gives the same trees, bit for bit.
* Two small binary forests read the best candidate (its score, its margins and its features):
  "is it right?" (the calibration, P(right)) and "does the question have no answer in the
  documents?" (P(no answer)). Both are fitted on out-of-fold best candidates: the training
  questions are cut into FOLDS groups of whole writers, each group's questions ranked by trees
  fitted on the other groups' (one fit per writer grew with the square of the bank: 52 fits
  for the nineteenth round's 52 writers, still running after 40 minutes; ten folds: 15).
  An unanswerable question's best candidate is never right, so this is where abstention is
  learned. Their size (15 leaves, 300 rounds) is what the nested out-of-fold
  count of right halves settled at (7 leaves and 150 rounds: 0.885; 15 x 300: 0.892; more:
  no better), with the 26 writers' 3,151 halves (31 writers and 3,708 halves since the eleventh
  round; not re-swept).
* A half is answered when P(right) - P(no answer) reaches the threshold: an uncertain answer to
  a question the documents seem to answer is still worth giving, a likelier one to a question
  they seem not to answer is not (out of fold 0.862 of the halves right against 0.851 with a
  threshold on P(right) alone). The threshold is the one that makes the most questions right
  (answered right, or unanswerable and declined) on average over the thresholds within 0.05
  of it (the lowest of equals), counted over the validation split and the training halves out
  of fold (their margins from forests fitted without their writer): 102 validation questions
  alone moved a threshold between 0.24 and 0.43 from one refit to the next, and the best
  single threshold of two refits on the same data lay 0.03 apart. The precision of the
  validation answers it gives is reported with it. The test split is never read here.
* Besides that pooled threshold, a kind of document (the seeds' progress tables, task lists and
  work reports, a user's news articles) gets its own, chosen the same way over the questions
  whose best candidate comes from it, when it has at least MIN_KIND_QUESTIONS of them and its
  own makes at least MIN_KIND_GAIN of them more right: one margin was a compromise between the
  seeds' questions and the news questions (the seventeenth round's fit: 0.09 pooled, -0.09 for
  news; the eighteenth's: -0.07 pooled, 0.34 for task lists; the nineteenth's: -0.01 pooled
  and no kind its own). An answer must reach the margin of the kind of document it comes from.
The model is written as plain JSON (trees as node lists, numbers as Python writes floats).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.tables.names import common_length

from eval.fit_senses import folds
from eval.fitting import NEWS_TRAIN, command, news_index, training_items, write_model
from eval.metrics import gold_quotes, load_dataset, normalise

TRAIN = [Path("eval/bank/train.jsonl"), Path("eval/dev.jsonl")]  # dev.jsonl: the earlier sessions' questions
VALIDATION = Path("eval/bank/validation.jsonl")
PARAMS = dict(objective="lambdarank", learning_rate=0.05, num_leaves=15, min_data_in_leaf=50, feature_fraction=0.8,
              lambda_l2=1.0, lambdarank_truncation_level=10, label_gain=[0, 1, 3], deterministic=True, num_threads=1,
              seed=0, verbose=-1)
ROUNDS = 300
SENTENCE_ENDS = "。;,、:!?"  # after NFKC: what may end a sentence in the gold quote
CALIBRATION = dict(objective="binary", learning_rate=0.05, num_leaves=15, min_data_in_leaf=20, feature_fraction=0.8,
                   lambda_l2=5.0, deterministic=True, num_threads=1, seed=0, verbose=-1)
CALIBRATION_ROUNDS = 300
FOLDS = 10  # groups of whole writers for the out-of-fold ranking the calibration reads
# The threshold's score is averaged over the thresholds within this many hundredths: two refits
# on one data set found their best single thresholds 0.03 apart (0.04, 0.07), and 0.7 points of
# test accuracy went with it; the middle of a broad optimum is what a refit finds again.
SMOOTHING = 5
# A kind of document gets its own margin when at least this many questions (validation questions
# and training halves out of fold) have their best candidate in it, and its own margin makes at
# least this share of them more right than the pooled margin does (averaged as the choice is);
# the rest take the pooled one. In the fourteenth round's two fits the news articles' own margin
# gained 1.1% and 1.5% of their 467 questions; the seeds' three kinds gained 0.03-0.09% of
# theirs, under one question in a thousand, which a refit moves either way.
MIN_KIND_QUESTIONS = 200
MIN_KIND_GAIN = 0.005


@dataclass
class Sample:
    """One half of one question: its candidates' features, labels and what is needed to answer."""

    item: dict[str, Any]
    q: Any
    hits: list
    cands: list
    asked: str
    X: np.ndarray
    y: np.ndarray


def _accepts(item: dict[str, Any]) -> list[str]:
    return [normalise(a) for group in (item.get("accept_all") or [item["accept"]]) for a in group]


def _holds(lead: str, accept: str) -> bool:
    """The accepted string is in the lead (a bare number not inside a longer number)."""
    if accept.isdigit():
        return bool(re.search(rf"(?<!\d){accept}(?!\d)", lead))
    return accept in lead


def label(item: dict[str, Any], cand, hits: list, lang: str) -> int:
    """How right this candidate is: 0 wrong; 1 it holds an accepted answer in the sentence of
    the gold quote; 2 it also puts little else first (a figure, a name, a cell, or a phrase not
    much longer than the accepted answer)."""
    from rag.reader.render import lead_text

    if item["type"] == "unanswerable":
        return 0
    lead = normalise(lead_text(cand, lang))
    held = [a for a in _accepts(item) if _holds(lead, a)]
    if not held:
        return 0
    text = hits[cand.hit].chunk.text
    sent = normalise(text[cand.sent[0]:cand.sent[1]]).rstrip(SENTENCE_ENDS)  # "张元升;" is all in "区长;张元升"
    if not any(common_length(sent, q) >= min(8, len(q), len(sent)) for q in gold_quotes(item)):
        return 0
    concise = cand.kind not in ("clause", "definition") or len(cand.lead) <= max(map(len, held)) + 6
    return 2 if concise else 1


def collect(pipeline, items: list[dict[str, Any]], senses: dict[str, Any] | None = None) -> list[Sample]:
    """The candidates of every item's halves, through the pipeline's own retrieval; `senses`:
    the dictionary sense counts to translate each writer's questions with (default: the file's)."""
    from tqdm import tqdm

    from rag.english import use_senses

    samples = []
    for item in tqdm(items, desc="candidates", unit="q", file=sys.stderr):
        if senses is not None:
            use_senses(senses[item["writer"]])
        q = pipeline.retriever.understand(item["question"])
        hits, k = pipeline.retrieve(q, pipeline.settings.k)
        hits = hits[:k]
        for half in pipeline.reader.halves(q, hits):
            y = np.array([label(item, c, hits, q.lang) for c in half.cands], dtype=np.int8)
            samples.append(Sample(item, q, hits, half.cands, half.ask.asked, half.X, y))
    use_senses(None)
    return samples


def fit_trees(samples: list[Sample]):
    """LambdaRank trees over the samples' candidates, each half of a question one group."""
    import lightgbm

    groups = [s for s in samples if len(s.cands)]
    X = np.vstack([s.X for s in groups])
    y = np.concatenate([s.y for s in groups])
    data = lightgbm.Dataset(X, y, group=[len(s.cands) for s in groups], free_raw_data=False)
    return lightgbm.train(PARAMS, data, num_boost_round=ROUNDS)


def trees_json(booster) -> tuple[list[dict[str, list]], float]:
    """The fitted trees as flat node lists, and the baseline score (0 for LambdaRank)."""
    from rag.trees import lightgbm_trees

    return lightgbm_trees(booster), 0.0


def _best(model, s: Sample) -> tuple[int, np.ndarray, float | None]:
    """(index of the best candidate, all scores, the best different answer's score)."""
    from rag.reader import rival

    scores = model.scores(s.X)
    i = int(np.argmax(scores))
    return i, scores, rival(s.cands, scores, i)


@dataclass
class OutOfFold:
    """The calibration's inputs for every training half's best candidate, each ranked by trees
    fitted without the questions of its writer's fold, and whether that candidate is right."""

    rows: np.ndarray
    right: np.ndarray
    unanswerable: np.ndarray
    writers: np.ndarray
    kinds: np.ndarray  # the kind of document of the best candidate's passage


def writer_folds(writers: set[str]) -> dict[str, int]:
    """Each writer's fold: the writers in sorted order dealt round to FOLDS folds."""
    return {w: i % FOLDS for i, w in enumerate(sorted(writers))}


def out_of_fold(samples: list[Sample]) -> OutOfFold:
    """Best candidates out of fold (folds of whole writers)."""
    from rag.reader import doc_kind
    from rag.reader.model import ReaderModel, calibration_row

    fold = writer_folds({s.item.get("writer", "") for s in samples})
    rows, right, unanswerable, writers, kinds = [], [], [], [], []
    for k in sorted(set(fold.values())):
        trees, baseline = trees_json(fit_trees([s for s in samples if fold[s.item.get("writer", "")] != k]))
        model = ReaderModel({"trees": trees, "baseline": baseline, "calibration": {"trees": []}, "thresholds": {}})
        for s in samples:
            if fold[s.item.get("writer", "")] == k and len(s.cands):
                i, scores, rival = _best(model, s)
                rows.append(calibration_row(scores, s.X, i, rival))
                right.append(int(s.y[i] > 0))
                unanswerable.append(s.item["type"] == "unanswerable")
                writers.append(s.item.get("writer", ""))
                kinds.append(doc_kind(s.cands[i], s.hits))
    return OutOfFold(np.array(rows), np.array(right), np.array(unanswerable), np.array(writers), np.array(kinds))


def _calibration_booster(rows: np.ndarray, right: np.ndarray):
    import lightgbm

    return lightgbm.train(CALIBRATION, lightgbm.Dataset(rows, right), num_boost_round=CALIBRATION_ROUNDS)


def calibrate(oof: OutOfFold, target: np.ndarray) -> dict[str, Any]:
    """A forest fitted on the out-of-fold best candidates: P(right) with `target` oof.right,
    P(no answer in the documents) with oof.unanswerable."""
    from rag.reader.features import FEATURES
    from rag.trees import lightgbm_trees

    return {"inputs": ["score", "margin", "gap5", *FEATURES],
            "trees": lightgbm_trees(_calibration_booster(oof.rows, target.astype(int)))}


def nested_margin(oof: OutOfFold) -> np.ndarray:
    """Each out-of-fold best candidate's P(right) - P(no answer), both from forests fitted
    without its writer: what the threshold is chosen on besides the validation split."""
    margin = np.zeros(len(oof.rows))
    for w in sorted(set(oof.writers)):
        mine = oof.writers == w
        right = _calibration_booster(oof.rows[~mine], oof.right[~mine]).predict(oof.rows[mine])
        absent = _calibration_booster(oof.rows[~mine], oof.unanswerable[~mine].astype(int)).predict(oof.rows[mine])
        margin[mine] = right - absent
    return margin


def choose_thresholds(model, samples: list[Sample], oof: OutOfFold,
                      conf: np.ndarray) -> tuple[dict[str, float], dict[str, Any]]:
    """The margins (P(right) - P(no answer)) a half must reach to be answered: one over every
    question (ALL_KINDS), and one for each kind of document with at least MIN_KIND_QUESTIONS
    questions whose best candidate comes from it, where its own margin gains at least
    MIN_KIND_GAIN of them over the pooled one (the kinds' questions may want different margins).
    Each is the one that makes the most of its questions right (see `_choose`); the report
    names every kind's own margin and its gain, kept or not."""
    from rag.reader import doc_kind
    from rag.reader.model import ALL_KINDS

    items = {s.item["id"]: s.item for s in samples}
    margins = _validation_margins(model, samples)
    pooled = _choose(items, margins, oof, conf, np.ones(len(conf), bool))
    thresholds, report = {ALL_KINDS: pooled[0]}, {ALL_KINDS: pooled[1]}
    kinds = {item_id: doc_kind(s.cands[i], s.hits) for item_id, halves in margins.items() for s, i, _ in halves[:1]}
    for kind in sorted(set(oof.kinds) | set(kinds.values())):
        mine = {item_id: halves for item_id, halves in margins.items() if kinds.get(item_id) == kind}
        rows = oof.kinds == kind
        questions = len(mine) + int(rows.sum())
        if questions >= MIN_KIND_QUESTIONS:
            own, report[kind] = _choose(items, mine, oof, conf, rows, pooled[0])
            if report[kind]["gain_over_pooled"] >= MIN_KIND_GAIN * questions:
                thresholds[kind] = own
    return thresholds, report


def _validation_margins(model, samples: list[Sample]) -> dict[str, list[tuple[Sample, int, float]]]:
    """Each validation question's halves: (half, its best candidate, that candidate's margin)."""
    by_item: dict[str, list[tuple[Sample, int, float]]] = {}
    for s in samples:
        by_item.setdefault(s.item["id"], [])
        if len(s.cands):
            i, scores, rival = _best(model, s)
            margin = model.confidence(scores, s.X, i, rival) - model.no_answer(scores, s.X, i, rival)
            by_item[s.item["id"]].append((s, i, margin))
    return by_item


def _choose(items: dict[str, dict], by_item: dict[str, list[tuple[Sample, int, float]]], oof: OutOfFold,
            conf: np.ndarray, rows_in: np.ndarray, pooled: float | None = None) -> tuple[float, dict[str, Any]]:
    """The margin that makes the most questions right (answered right, or unanswerable and
    declined; the lowest of equals), counted over the validation questions `by_item` and the
    training halves out of fold selected by `rows_in` (`conf`: their margins; a hundred questions
    alone move it by tenths), averaged over the thresholds within SMOOTHING hundredths of it;
    the precision of the validation answers it gives is reported with it, and with `pooled` how
    many more of these questions it makes right than that margin does (gain_over_pooled)."""
    from eval.metrics import is_correct
    from rag.reader import render

    conf, right_oof, unanswerable = conf[rows_in], oof.right[rows_in], oof.unanswerable[rows_in]
    grid = [round(t, 2) for t in np.arange(-1.0, 1.02, 0.01)]
    rows = []
    for t in grid:
        answered = right = correct = 0
        for item_id, halves in by_item.items():
            kept = [(s.cands[i], s.asked) for s, i, p in halves if p >= t]
            if kept:
                s0 = halves[0][0]
                ok = is_correct(items[item_id], render.compose(s0.q, s0.hits, kept, 1.0), strict=True)
                answered += 1
                right += ok
                correct += ok
            else:
                correct += items[item_id]["type"] == "unanswerable"
        oof_correct = int((((conf >= t) & (right_oof == 1)) | ((conf < t) & unanswerable)).sum())
        rows.append({"threshold": t, "answered_precision": round(right / answered if answered else 1.0, 4),
                     "accuracy_strict": round(correct / len(by_item), 4) if by_item else None,
                     "answered": answered, "questions": len(by_item),
                     "out_of_fold_accuracy": round(oof_correct / len(conf), 4) if len(conf) else None,
                     "out_of_fold_halves": len(conf), "right": correct + oof_correct})
    smoothed = window_mean(np.array([r["right"] for r in rows], dtype=float), SMOOTHING)
    best = int(np.argmax(smoothed))  # the first, lowest, of equals
    report = {**rows[best], "right_in_window": round(float(smoothed[best]), 1)}
    if pooled is not None:
        report["gain_over_pooled"] = round(float(smoothed[best] - smoothed[grid.index(pooled)]), 1)
    return grid[best], report


def window_mean(values: np.ndarray, half: int) -> np.ndarray:
    """Each value averaged with the `half` values either side of it (the ends repeated)."""
    return np.convolve(np.pad(values, half, mode="edge"), np.ones(2 * half + 1) / (2 * half + 1), "valid")


def train(pipeline, out: Path) -> dict[str, Any]:
    """Fit, calibrate, choose the threshold, write the model file; returns its data."""
    import lightgbm

    from rag.pipeline import Pipeline
    from rag.reader.features import FEATURES
    from rag.reader.model import ALL_KINDS, FORMAT, ReaderModel

    items = training_items(TRAIN)
    train_samples = collect(pipeline, items, folds(pipeline.retriever, items))
    news = news_index(pipeline.settings)
    train_samples += collect(Pipeline.load(news.index_dir, news), training_items([NEWS_TRAIN]))  # senses: the file's
    clf = fit_trees(train_samples)
    trees, baseline = trees_json(clf)
    oof = out_of_fold(train_samples)
    data = {"format": FORMAT, "features": list(FEATURES), "trees": trees, "baseline": baseline,
            "calibration": calibrate(oof, oof.right), "no_answer": calibrate(oof, oof.unanswerable),
            "thresholds": {ALL_KINDS: 0.0}}
    model = ReaderModel(data)
    data["thresholds"], report = choose_thresholds(model, collect(pipeline, load_dataset(VALIDATION)), oof,
                                                   nested_margin(oof))
    data["trained"] = {"train": [str(p) for p in [*TRAIN, NEWS_TRAIN]], "validation": str(VALIDATION),
                       "train_halves": len(train_samples),
                       "train_candidates": int(sum(len(s.cands) for s in train_samples)),
                       "train_positives": int(sum(int(s.y.sum()) for s in train_samples)),
                       "params": PARAMS, "rounds": ROUNDS, "lightgbm": lightgbm.__version__,
                       # out of fold: how often the best candidate of an answerable half is right
                       "out_of_fold_top1": round(float(oof.right[~oof.unanswerable].mean()), 4),
                       "threshold_chosen": report}
    write_model(out, data)
    return data


def main(argv: list[str] | None = None) -> int:
    from rag.pipeline import Pipeline
    from rag.reader.model import MODEL_PATH

    return command("eval.train_reader", __doc__, MODEL_PATH, train, Pipeline.load, argv)


if __name__ == "__main__":
    sys.exit(main())
