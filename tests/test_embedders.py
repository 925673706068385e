"""Embedders: the OpenAI-compatible client against a tiny local HTTP server, and the local
sentence-transformers model when its optional extra is installed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reingest_assets.resources.embedders import (
    EmbeddingError,
    OpenAICompatibleEmbedder,
)


class _EmbeddingsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.failures: list[int] = []  # statuses answered, one per request, before succeeding
        self.dimensions = 4


class _Handler(BaseHTTPRequestHandler):
    server: _EmbeddingsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.auth.append(self.headers.get("Authorization"))
        if self.server.failures:
            status = self.server.failures.pop(0)
            payload = b'{"error": {"message": "slow down"}}'
            self.send_response(status)
            self.send_header("Retry-After", "0")
        else:
            # index-dependent vectors, listed in reverse to check the client orders by index
            data = [
                {
                    "index": i,
                    "embedding": [float(i), float(len(text))]
                    + [0.5] * (self.server.dimensions - 2),
                }
                for i, text in enumerate(body["input"])
            ][::-1]
            payload = json.dumps({"data": data, "model": body["model"]}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[_EmbeddingsServer]:
    srv = _EmbeddingsServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _embedder(server: _EmbeddingsServer, **kwargs: Any) -> OpenAICompatibleEmbedder:
    host, port = server.server_address[:2]
    kwargs.setdefault("retry_base_delay", 0.001)
    return OpenAICompatibleEmbedder(
        f"http://{host!s}:{port}/v1", "text-embedding-3-small", "sk-test", 4, **kwargs
    )


def test_embeds_in_batches_in_input_order(server: _EmbeddingsServer) -> None:
    embedder = _embedder(server, max_batch=2)
    vectors = embedder.embed(["a", "bb", "ccc"])
    assert vectors == [[0.0, 1.0, 0.5, 0.5], [1.0, 2.0, 0.5, 0.5], [0.0, 3.0, 0.5, 0.5]]
    assert [r["input"] for r in server.requests] == [["a", "bb"], ["ccc"]]
    assert server.requests[0]["dimensions"] == 4
    assert server.auth == ["Bearer sk-test", "Bearer sk-test"]
    assert embedder.id == "openai:text-embedding-3-small:4"
    assert "sk-test" not in repr(embedder)


def test_throttling_and_server_errors_are_retried(server: _EmbeddingsServer) -> None:
    server.failures = [429, 503]
    assert len(_embedder(server).embed(["a"])) == 1
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: _EmbeddingsServer) -> None:
    server.failures = [400]
    with pytest.raises(EmbeddingError, match="400"):
        _embedder(server).embed(["a"])
    assert len(server.requests) == 1


def test_persistent_throttling_gives_up_after_the_attempts(server: _EmbeddingsServer) -> None:
    server.failures = [429] * 10
    with pytest.raises(EmbeddingError, match="429"):
        _embedder(server, attempts=3).embed(["a"])
    assert len(server.requests) == 3


def test_wrong_dimensions_are_an_error(server: _EmbeddingsServer) -> None:
    server.dimensions = 3
    with pytest.raises(EmbeddingError, match="3 dimensions, expected 4"):
        _embedder(server).embed(["a"])


def test_requests_are_spaced_by_the_rate_limit(server: _EmbeddingsServer) -> None:
    waits: list[float] = []
    embedder = _embedder(server, max_batch=1, requests_per_minute=60, sleep=waits.append)
    embedder.embed(["a", "b", "c"])
    # the first request goes at once; the next ones wait for their slots one second apart
    # (the recorded sleeps do not pass time, so the third waits for two seconds)
    assert waits == pytest.approx([1.0, 2.0], abs=0.2)


def test_sentence_transformer_embedder() -> None:
    pytest.importorskip("sentence_transformers", reason="the 'embeddings' extra is not installed")
    from reingest_assets.resources.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    vectors = embedder.embed(["heart attack", "myocardial infarction", "tax law"])
    assert embedder.id == "sentence-transformers:all-MiniLM-L6-v2:384"
    assert all(len(v) == 384 for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
