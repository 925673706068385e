"""A stand-in for OpenAI's embeddings endpoint (``POST /v1/embeddings``) on loopback, which the
fake Weaviate's ``text2vec-openai`` calls as the real module calls api.openai.com.

It answers as OpenAI does: 401 with ``invalid_api_key`` for a key it does not know, 429 with
``rate_limit_exceeded`` while throttling, otherwise one deterministic unit vector per input
(``dimensions`` from the request, else the model's default).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


@dataclass
class OpenAIBehaviour:
    valid_keys: set[str] | None = None  # None: any non-empty key is accepted
    throttle: int = 0  # answer this many requests with 429 first
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies received, in order
    keys: list[str] = field(default_factory=list)  # bearer keys received, in order


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [
        struct.unpack("<I", hashlib.sha256(seed + i.to_bytes(4, "little")).digest()[:4])[0]
        for i in range(dimensions)
    ]
    values = [v / 2**31 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class _Handler(BaseHTTPRequestHandler):
    server: _OpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_standin")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        behaviour = self.server.behaviour
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self.server.lock:
            behaviour.requests.append(body)
            behaviour.keys.append(key)
            throttled = behaviour.throttle > 0
            if throttled:
                behaviour.throttle -= 1
        if self.path.rstrip("/") != "/v1/embeddings":
            self._send(404, {"error": {"message": f"Invalid URL (POST {self.path})"}})
            return
        if not key or (behaviour.valid_keys is not None and key not in behaviour.valid_keys):
            masked = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
            self._send(
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {masked}. You can find your "
                        "API key at https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
            return
        model = body.get("model", "text-embedding-3-small")
        if throttled:
            self._send(
                429,
                {
                    "error": {
                        "message": f"Rate limit reached for {model} on requests per min (RPM): "
                        "Limit 3000, Used 3000, Requested 1. Please try again in 20ms.",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
            )
            return
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = int(body.get("dimensions") or MODEL_DIMENSIONS.get(model, 1536))
        self._send(
            200,
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": embedding(t, dimensions)}
                    for i, t in enumerate(texts)
                ],
                "model": model,
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            },
        )


class _OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = OpenAIBehaviour()
        self.lock = threading.Lock()


class StandInOpenAI:
    def __init__(self) -> None:
        self._server = _OpenAIServer()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def behaviour(self) -> OpenAIBehaviour:
        return self._server.behaviour

    @behaviour.setter
    def behaviour(self, value: OpenAIBehaviour) -> None:
        self._server.behaviour = value

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
