"""S3 over real HTTP for tests: moto's server in-process, and a fault-injecting proxy before it.

Plain context managers and functions; test files build their fixtures on them.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from reingest_assets.resources.s3_store import S3ObjectStore, client_config

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """moto's S3 in server mode on a free 127.0.0.1 port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_session() -> boto3.Session:
    """A boto3 session with dummy credentials (moto accepts any)."""
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def s3_client(endpoint_url: str, *, max_in_flight: int = 64) -> Any:
    """A boto3 S3 client for ``endpoint_url`` with dummy credentials, configured as the store
    expects (no botocore retries, so a test counts exactly the attempts the store makes)."""
    config = client_config(max_in_flight).merge(Config(s3={"addressing_style": "path"}))
    return s3_session().client("s3", endpoint_url=endpoint_url, config=config)


def s3_store(endpoint_url: str, bucket: str, **options: Any) -> S3ObjectStore:
    """The store over ``endpoint_url``: boto3 client and obstore GETs, the dummy credentials."""
    return S3ObjectStore(s3_client(endpoint_url), bucket, session=s3_session(), **options)


FaultKind = Literal["error", "reset", "truncate", "latency"]


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of (or, for latency, before) forwarding a request.

    Applies to requests whose URL path equals ``path`` (any path when None) and whose method is
    ``method`` (any when None); ``times`` bounds how many it applies to (None: all).
    """

    kind: FaultKind
    path: str | None = None
    method: str | None = "GET"
    times: int | None = None
    status: int = 503
    code: str = "SlowDown"
    seconds: float = 0.0


def slow_down(path: str | None, times: int | None = None) -> Fault:
    return Fault("error", path, times=times, status=503, code="SlowDown")


def internal_error(path: str | None, times: int | None = None) -> Fault:
    return Fault("error", path, times=times, status=500, code="InternalError")


def connection_reset(path: str | None, times: int | None = None) -> Fault:
    """Reset the connection (TCP RST) without answering."""
    return Fault("reset", path, times=times)


def truncated_body(path: str | None, times: int | None = None) -> Fault:
    """Send the headers and half the body, then reset the connection."""
    return Fault("truncate", path, times=times)


def latency(seconds: float, path: str | None = None) -> Fault:
    """Delay matching requests, then forward them (applies on top of other faults)."""
    return Fault("latency", path, method=None, seconds=seconds)


class FaultProxy:
    """Handle on a running proxy: its URL, and what it has seen."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.url = ""
        self.max_concurrent = 0
        self._faults = list(faults)
        self._applied = [0] * len(self._faults)
        self._requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []  # of each request, in arrival order
        self._in_flight = 0
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests with this method and URL path arrived (None: any)."""
        with self._lock:
            return sum(
                (method is None or m == method) and (path is None or p == path)
                for m, p in self._requests
            )

    def _arrived(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[float, Fault | None]:
        """Record a request; the latency to add and the fault to inject, if any."""
        with self._lock:
            self._requests.append((method, path))
            self.headers.append(headers)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            delay, chosen = 0.0, None
            for i, fault in enumerate(self._faults):
                if (fault.path is not None and fault.path != path) or (
                    fault.method is not None and fault.method != method
                ):
                    continue
                if fault.kind == "latency":
                    delay += fault.seconds
                elif chosen is None and (fault.times is None or self._applied[i] < fault.times):
                    self._applied[i] += 1
                    chosen = fault
            return delay, chosen

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once; a short backlog drops SYNs

    def __init__(self, proxy: FaultProxy, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.proxy = proxy
        self.upstream = upstream


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    server: _ProxyServer
    _in_flight = False  # this handler's request is counted in the proxy's in-flight requests

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm the body would
        # wait for the client's delayed ACK (~40 ms) on every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.proxy._lock:
            self.server.proxy._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.proxy._lock:
            self.server.proxy._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _handle(self) -> None:
        body = self._read_body()
        path = urlsplit(self.path).path
        proxy = self.server.proxy
        delay, fault = proxy._arrived(self.command, path, dict(self.headers.items()))
        self._in_flight = True
        try:
            time.sleep(delay)
            if fault is not None and fault.kind == "reset":
                self._reset()
            elif fault is not None and fault.kind == "error":
                self._answer_error(fault)
            else:
                status, reason, headers, data = self._forward(body)
                if fault is not None and fault.kind == "truncate":
                    self._send_head(status, reason, headers, len(data))
                    self.wfile.write(data[: len(data) // 2])
                    self._reset()
                else:
                    self._send_head(status, reason, headers, len(data))
                    if self.command != "HEAD":
                        self.wfile.write(data)
        finally:
            self._answering()

    def _answering(self) -> None:
        """The request stops counting as in flight as its answer goes out, not after: a client
        that has read the answer may send its next request before this thread gets further."""
        if self._in_flight:
            self._in_flight = False
            self.server.proxy._done()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            if self.command == "HEAD":  # no body, but the client wants the object's length
                kept.append(("Content-Length", response.getheader("Content-Length", "0")))
            return response.status, response.reason, kept, data
        finally:
            upstream.close()

    def _send_head(
        self, status: int, reason: str, headers: list[tuple[str, str]], length: int
    ) -> None:
        self._answering()
        self.send_response_only(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer_error(self, fault: Fault) -> None:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fault.code}</Code><Message>injected by the fault proxy</Message>"
            "<RequestId>fault-proxy</RequestId></Error>"
        ).encode()
        self._answering()
        self.send_response_only(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)

    def _reset(self) -> None:
        self._answering()
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


@contextmanager
def fault_proxy(upstream_url: str, faults: Sequence[Fault] = ()) -> Iterator[FaultProxy]:
    """A threaded HTTP reverse proxy on 127.0.0.1 forwarding to ``upstream_url`` and injecting
    ``faults``; stops (closing its client connections) when the context exits."""
    upstream = urlsplit(upstream_url)
    assert upstream.hostname is not None and upstream.port is not None
    proxy = FaultProxy(faults)
    server = _ProxyServer(proxy, (upstream.hostname, upstream.port))
    # A short poll interval: shutdown() waits for the serving loop to notice.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="fault-proxy", daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        proxy.url = f"http://{host!s}:{port}"
        yield proxy
    finally:
        server.shutdown()
        with proxy._lock:
            connections = list(proxy._connections)
        for connection in connections:
            # Wake handlers parked on keep-alive reads; a connection may be gone already.
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join()
