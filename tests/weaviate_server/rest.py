"""The REST half of the fake Weaviate (``/v1/...``), over a threaded ``http.server``."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .state import WeaviateError, upper_first

if TYPE_CHECKING:
    from . import FakeWeaviate


def _error(message: str) -> dict[str, Any]:
    return {"error": [{"message": message}]}


class _Handler(BaseHTTPRequestHandler):
    server: _RestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _route(self, method: str) -> None:
        fake = self.server.fake
        fake.requests.append((method, self.path))
        key = fake.faults.api_key
        if (
            key is not None
            and not self.path.startswith("/pypi/")
            and self.headers.get("Authorization") != f"Bearer {key}"
        ):
            self._send(401, {"code": 401, "message": "anonymous access not enabled"})
            return
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        injected = fake.rest_fault(method, path)
        if injected is not None:
            self._send(injected, _error(f"injected fault: status {injected}"))
            return
        try:
            status, body = self._dispatch(method, path, query)
        except WeaviateError as exc:
            status, body = 422, _error(str(exc))
        self._send(status, body)

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        fake = self.server.fake
        state = fake.state
        if path == "/pypi/weaviate-client/json":  # the client's "newer version?" probe
            return 200, {"info": {"version": fake.client_version}}
        if path == "/v1/meta" and method == "GET":
            return 200, {
                "hostname": "http://[::]:8080",
                "version": fake.faults.server_version,
                "modules": {"text2vec-openai": {}, "text2vec-transformers": {}},
                "grpcMaxMessageSize": 104_858_000,
            }
        if path in {"/v1/.well-known/ready", "/v1/.well-known/live"}:
            return (503 if fake.faults.not_ready else 200), None
        if path == "/v1/.well-known/openid-configuration":
            return 404, None
        if path == "/v1/nodes":
            return 200, {"nodes": [{"name": "fake-node", "status": "HEALTHY", "shards": []}]}
        if path == "/v1/schema":
            if method == "GET":
                with state.lock:
                    return 200, {"classes": [c.schema for c in state.collections.values()]}
            if method == "POST":
                return 200, state.create_class(self._body())
        if match := re.fullmatch(r"/v1/schema/([^/]+)", path):
            name = match.group(1)
            with state.lock:
                if method == "GET":
                    # usecases/schema/class.go: a class name that is an alias answers with the
                    # schema of the collection it points at.
                    coll = state.collections.get(state.resolve(name))
                    return (200, coll.schema) if coll else (404, None)
                if method == "DELETE":
                    state.collections.pop(upper_first(name), None)
                    return 200, None
        if path == "/v1/aliases":
            if method == "GET":
                wanted = query.get("class", [None])[0]
                with state.lock:
                    aliases = [
                        {"alias": a, "class": c}
                        for a, c in state.aliases.items()
                        if wanted is None or c == upper_first(wanted)
                    ]
                return 200, {"aliases": aliases}
            if method == "POST":
                body = self._body()
                alias = state.create_alias(body["alias"], body["class"])
                return 200, {"alias": alias, "class": upper_first(body["class"])}
        if match := re.fullmatch(r"/v1/aliases/([^/]+)", path):
            with state.lock:
                # usecases/schema/alias.go: alias names compare case-insensitively.
                alias = state.alias(match.group(1))
                if alias is None:
                    return 404, None
                if method == "GET":
                    return 200, {"alias": alias, "class": state.aliases[alias]}
                if method == "PUT":
                    target = upper_first(self._body()["class"])
                    if target not in state.collections:
                        raise WeaviateError(f"replace alias: class {target} does not exist")
                    state.aliases[alias] = target
                    return 200, {"alias": alias, "class": target}
                if method == "DELETE":
                    del state.aliases[alias]
                    return 204, None
        return 404, _error(f"fake Weaviate has no {method} {path}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeWeaviate) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


def make_rest_server(fake: FakeWeaviate) -> ThreadingHTTPServer:
    return _RestServer(fake)
