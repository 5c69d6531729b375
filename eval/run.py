"""The benchmark: every dataset question through the user's pipeline, quality metrics and latency.

    govrag eval [--dataset FILE] [--out DIR] [--json] [--llm] [--k N] [--compare] [--index DIR]
    python -m eval.run  (same flags, plus --build-seconds S to skip timing an index build)

`--json` prints {"metrics": {...}, "results": [...]} (plus "baselines" with --compare);
`--out DIR` writes report.json (the same), report.md and report.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from rag.models import Answer, Chunk, GovragError, Hit

from eval.metrics import TYPES, aggregate, load_dataset, normalise, score_item


class System(Protocol):
    """What the runner evaluates: a name, the indexed chunks and `ask`."""

    name: str
    chunks: list[Chunk]

    def ask(self, question: str, k: int = 5) -> tuple[Answer, list[Hit]]: ...


class PipelineSystem:
    """Our pipeline exactly as a user gets it (or with one retrieval channel, as a baseline)."""

    def __init__(self, pipeline, use_llm: bool = False, channel: str | None = None, fusion: str | None = None) -> None:
        self.pipeline = pipeline
        self.use_llm = use_llm
        self.channels = (channel,) if channel else ("dense", "bm25")
        self.fusion = fusion
        self.name = f"{channel}-only" if channel else f"hybrid-{fusion}" if fusion else "govrag (ours)"
        self.chunks = pipeline.retriever.index.chunks

    def ask(self, question: str, k: int = 5) -> tuple[Answer, list[Hit]]:
        return self.pipeline.ask_with_hits(question, k=k, use_llm=self.use_llm, channels=self.channels,
                                           fusion=self.fusion)


def run_systems(systems: list[System], items: list[dict[str, Any]], k: int,
                progress: bool = True) -> list[list[dict[str, Any]]]:
    """Result records of every item, per system. Each question goes to every system in turn,
    so load on the machine weighs on all systems alike; one untimed warm-up question first."""
    from tqdm import tqdm

    results: list[list[dict[str, Any]]] = [[] for _ in systems]
    for system in systems:
        try:
            system.ask(items[0]["question"], k=k)
        except GovragError:
            pass
    desc = systems[0].name if len(systems) == 1 else f"{len(systems)} systems"
    for item in tqdm(items, desc=desc, unit="q", file=sys.stderr, disable=not progress):
        for system, out in zip(systems, results):
            try:
                answer, hits = system.ask(item["question"], k=k)
                out.append(score_item(item, answer, hits))
            except GovragError as exc:  # a question the pipeline refuses counts as wrong
                out.append(score_item(item, None, [], error=str(exc)))
    return results


def quote_coverage(items: list[dict[str, Any]], chunks: list[Chunk]) -> float | None:
    """Share of answerable items whose quote lies inside one indexed chunk (the hit@k ceiling)."""
    texts = [normalise(c.text) for c in chunks]
    answerable = [normalise(i["quote"]) for i in items if i["type"] != "unanswerable"]
    return round(sum(any(q in t for t in texts) for q in answerable) / len(answerable), 4) if answerable else None


def evaluate(systems: list[System], items: list[dict[str, Any]], k: int,
             progress: bool = True) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(metrics, result records) of each system."""
    started = time.perf_counter()
    runs = run_systems(systems, items, k, progress)
    seconds = round(time.perf_counter() - started, 2)
    out = []
    for system, results in zip(systems, runs):
        metrics = aggregate(results)
        metrics["quote_coverage"] = quote_coverage(items, system.chunks)
        metrics["eval_seconds"] = seconds
        out.append((metrics, results))
    return out


def time_index_build(settings) -> dict[str, Any]:
    """A fresh build of settings.docs into a temp dir, vectors from the embedding cache."""
    from rag.index import build_index

    with tempfile.TemporaryDirectory() as tmp:  # local files: a temp build leaves nothing in a database
        report = build_index([settings.docs], replace(settings, index_dir=tmp, store="local"), tmp, progress=False)
    return {"seconds": round(report.seconds, 2), "chunks": report.chunks, "embedded": report.embedded,
            "how": f"fresh build of {settings.docs} into a temp dir (local store); embeddings from the cache "
                   f"({report.embedded} chunks embedded now)"}


def machine() -> dict[str, Any]:
    """CPU count and model, Python version, date."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M")}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark as the JSON payload."""
    from rag.config import load_settings
    from rag.pipeline import Pipeline

    settings = load_settings(getattr(args, "config", None), index_dir=args.index)
    items = load_dataset(args.dataset)
    k = args.k or settings.k
    pipeline = Pipeline.load(settings.index_dir, settings)
    systems: list[System] = [PipelineSystem(pipeline, use_llm=args.llm)]
    if args.compare:
        from eval.baselines import LangChainBaseline

        systems += [LangChainBaseline(settings.docs, settings), PipelineSystem(pipeline, args.llm, fusion="rrf"),
                    PipelineSystem(pipeline, args.llm, "bm25"), PipelineSystem(pipeline, args.llm, "dense")]
    (metrics, results), *others = evaluate(systems, items, k)
    seconds = getattr(args, "build_seconds", None)
    build = {"seconds": seconds, "chunks": len(systems[0].chunks), "how": "given with --build-seconds"} \
        if seconds is not None else time_index_build(settings)
    metrics = {"dataset": str(args.dataset), "system": systems[0].name, "mode": "llm" if args.llm else "extractive",
               "k": k, **metrics, "index_build": build, "peak_rss_mb": peak_rss_mb(), "machine": machine()}
    payload: dict[str, Any] = {"metrics": metrics, "results": results}
    if args.compare:
        payload["baselines"] = {}
        for system, (m, _) in zip(systems[1:], others):
            lc_build = getattr(system, "build", None)
            m["index_build"] = {**lc_build, "how": "split + FAISS.from_documents; embeddings from the cache"} \
                if lc_build else {**build, "how": "the same index as ours"}
            payload["baselines"][system.name] = m
    return payload


# ---------------------------------------------------------------- reports

def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(_fmt, r)) + " |" for r in rows])


QUALITY = ["n", "accuracy", "accuracy_strict", "hit@1", "hit@5", "mrr", "citation_precision", "figures_verified",
           "false_abstain"]


def summary_md(payload: dict[str, Any]) -> str:
    """Metric tables (per type, per language, latency, compare) in Markdown."""
    m = payload["metrics"]
    out = [f"# govrag eval: {m['dataset']} ({m['overall']['n']} questions, {m['mode']}, k={m['k']})", "",
           f"{m['machine']['date']} · {m['machine']['cpus']} CPUs ({m['machine']['cpu']}), load average "
           f"{m['machine']['load_avg_1m']} at the end · "
           f"accuracy_strict ignores text inside quotation marks (the quoted evidence)", "",
           "## By type", "", _table(["type", *QUALITY, "all_quotes@5"],
                                      [[t, *(g[c] for c in QUALITY), g["all_quotes@5"]]
                                       for t, g in [("**overall**", m["overall"]), *m["by_type"].items()]]),
           "", "## By language", "",
           _table(["lang", *QUALITY, "abstain_precision", "abstain_recall"],
                  [[lang, *(g[c] for c in QUALITY), g["abstain_precision"], g["abstain_recall"]]
                   for lang, g in [("**overall**", m["overall"]), *m["by_lang"].items()]]),
           "", "## Latency (ms)", "", _table(["stage", "p50", "p95"],
                                             [[s, v["p50"], v["p95"]] for s, v in m["latency_ms"].items()]),
           "", f"Index build: {m['index_build']['seconds']} s for {m['index_build']['chunks']} chunks "
               f"({m['index_build']['how']}). Quotes inside one indexed chunk: {_fmt(m['quote_coverage'])}. "
               f"Peak RSS of the eval process{' (all systems)' if 'baselines' in payload else ''}: "
               f"{m['peak_rss_mb']} MB. Eval: {m['eval_seconds']} s."]
    if "baselines" in payload:
        systems = [(m["system"], m), *payload["baselines"].items()]
        cols = ["accuracy", "accuracy_strict", "hit@1", "hit@5", "mrr", "citation_precision", "abstain_precision",
                "abstain_recall"]
        out += ["", "## Compared with baselines (same run)", "",
                _table(["system", *cols, "quote_coverage", "index build s (chunks)", "p50 ms", "p95 ms"],
                       [[name, *(s["overall"][c] for c in cols), s["quote_coverage"],
                         f"{s['index_build']['seconds']} ({s['index_build']['chunks']})",
                         s["latency_ms"]["total_ms"]["p50"], s["latency_ms"]["total_ms"]["p95"]]
                        for name, s in systems])]
    return "\n".join(out) + "\n"


def failures_md(results: list[dict[str, Any]]) -> str:
    """Each wrong answer with the gold answer, the answer given and the top retrieved chunks."""
    out = ["", f"## Failed questions ({sum(not r['correct'] for r in results)})", ""]
    for r in results:
        if r["correct"]:
            continue
        given = r["error"] or (r["answer"]["answer"] if r["answer"] else "")
        top = ", ".join(f"`{h['id']}`" for h in r["retrieved"][:5])
        out += [f"### {r['id']} ({r['type']}, {r['lang']}) quote rank: {_fmt(r['hit_rank'])}", "",
                f"- question: {r['question']}", f"- gold: {r['gold']}",
                f"- answer: {given[:400]}", f"- retrieved: {top}", ""]
    return "\n".join(out)


def write_chart(payload: dict[str, Any], path: Path) -> None:
    """Accuracy and hit@k per type, latency per stage, and the systems compared."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = payload["metrics"]
    systems = [(m["system"], m), *payload.get("baselines", {}).items()]
    fig, axes = plt.subplots(1, 3 if len(systems) > 1 else 2, figsize=(16 if len(systems) > 1 else 11, 4.5))
    types = [t for t in TYPES if t in m["by_type"]]
    x = np.arange(len(types))
    for i, key in enumerate(["accuracy", "hit@1", "hit@5"]):
        axes[0].bar(x + (i - 1) * 0.27, [m["by_type"][t][key] or 0 for t in types], 0.27, label=key)
    axes[0].set(xticks=x, ylim=(0, 1.05), title="quality per type")
    axes[0].set_xticklabels(types, rotation=20)
    axes[0].legend(fontsize=8)
    stages = list(m["latency_ms"])
    x = np.arange(len(stages))
    for i, p in enumerate(["p50", "p95"]):
        axes[1].bar(x + (i - 0.5) * 0.4, [m["latency_ms"][s][p] or 0 for s in stages], 0.4, label=p)
    axes[1].set(xticks=x, title="latency per stage (ms)")
    axes[1].set_xticklabels([s.removesuffix("_ms") for s in stages], rotation=20)
    axes[1].legend(fontsize=8)
    if len(systems) > 1:
        x = np.arange(len(systems))
        for i, key in enumerate(["accuracy", "accuracy_strict", "hit@5"]):
            axes[2].bar(x + (i - 1) * 0.27, [s["overall"][key] or 0 for _, s in systems], 0.27, label=key)
        axes[2].set(xticks=x, ylim=(0, 1.05), title="systems")
        axes[2].set_xticklabels([n for n, _ in systems], rotation=15, fontsize=8)
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reliability(payload: dict[str, Any], path: Path) -> None:
    """Confidence bins against the share of right best answers (the diagonal is perfect calibration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = [b for b in payload["metrics"]["reliability"] if b["n"]]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label="reader")
    for b in bins:
        ax.annotate(str(b["n"]), (b["confidence"], b["accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence (calibrated probability)", ylabel="share of best answers right",
           title="reliability (n per bin)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability_md(payload: dict[str, Any]) -> str:
    rows = [[b["bin"], b["n"], b["confidence"], b["accuracy"]] for b in payload["metrics"]["reliability"]]
    return "\n## Reliability (best answer right, by confidence)\n\n" + _table(["confidence", "n", "mean", "right"], rows) + "\n"


def main(args: argparse.Namespace) -> int:
    """`govrag eval`: run, print metrics (or the JSON payload), write reports with --out."""
    payload = run(args)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
        (out / "report.md").write_text(summary_md(payload) + reliability_md(payload) + failures_md(payload["results"]),
                                       encoding="utf-8")
        write_chart(payload, out / "report.png")
        write_reliability(payload, out / "reliability.png")
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(summary_md(payload))
        if args.out:
            print(f"reports written to {args.out}/ (report.json, report.md, report.png, reliability.png)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.run", description="govrag benchmark")
    p.add_argument("--dataset", default="eval/dev.jsonl")
    p.add_argument("--out", help="write report.json, report.md and report.png here")
    p.add_argument("--json", action="store_true", help="print the metrics and every result as JSON")
    p.add_argument("--llm", action="store_true", help="answer with the configured LLM endpoint")
    p.add_argument("--k", type=int, help="passages to cite (default: settings.k)")
    p.add_argument("--compare", action="store_true", help="also run the baselines")
    p.add_argument("--index", help="index folder")
    p.add_argument("--config", help="TOML settings file")
    p.add_argument("--build-seconds", type=float, help="report this index build time instead of timing a build")
    return p


if __name__ == "__main__":
    try:
        sys.exit(main(build_parser().parse_args()))
    except GovragError as exc:
        print(f"eval: error: {exc}", file=sys.stderr)
        sys.exit(2)
