"""An on-disk embedding cache keyed by content hash, one folder per embedder id.

Stored as plain files (keys.json + vectors.npy), never pickled; written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from . import BATCH, Embedder, _progress

SAVE_EVERY = 48  # texts encoded between two saves (about 5-10 s of work on 2 cores)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Vectors by content hash for one embedder; `embed` encodes only what is missing."""

    def __init__(self, cache_dir: str | Path, embedder: Embedder) -> None:
        self.embedder = embedder
        self.dir = Path(cache_dir) / re.sub(r"[^\w.@-]+", "_", embedder.id)
        self.vectors: dict[str, np.ndarray] = {}
        try:
            keys = json.loads((self.dir / "keys.json").read_text(encoding="utf-8"))
            matrix = np.load(self.dir / "vectors.npy", allow_pickle=False)
            if isinstance(keys, list) and matrix.shape == (len(keys), embedder.dim):
                self.vectors = dict(zip(keys, matrix.astype(np.float32, copy=False)))
        except (OSError, ValueError, EOFError):  # EOFError: an empty or cut-off vectors.npy
            self.vectors = {}  # a missing or damaged cache only costs time

    def embed(self, texts: list[str], progress: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
        """(vectors for texts, how many had to be encoded now). What is encoded is saved every
        SAVE_EVERY texts, so an interrupted run loses at most that much work.
        `on_progress(done, total)` follows the texts to encode."""
        hashes = [content_hash(t) for t in texts]
        missing = list(dict.fromkeys(h for h in hashes if h not in self.vectors))
        by_hash = dict(zip(hashes, texts))
        unsaved = 0
        with _progress(len(missing), progress, "embedding") as bar:
            for i in range(0, len(missing), BATCH):
                part = missing[i:i + BATCH]
                self.vectors.update(zip(part, self.embedder.encode([by_hash[h] for h in part])))
                unsaved += len(part)
                if unsaved >= SAVE_EVERY or i + BATCH >= len(missing):
                    self._save()
                    unsaved = 0
                bar.update(len(part))
                if on_progress is not None:
                    on_progress(i + len(part), len(missing))
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = self.vectors[h]
        return out, len(missing)

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=".tmp-"))
        np.save(tmp / "vectors.npy", np.stack([self.vectors[k] for k in keys]), allow_pickle=False)
        (tmp / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        os.replace(tmp / "vectors.npy", self.dir / "vectors.npy")  # vectors first: a crash
        os.replace(tmp / "keys.json", self.dir / "keys.json")  # between leaves a shape mismatch,
        tmp.rmdir()  # which loading treats as an empty cache
