"""Fetch benchmark: ``S3ObjectStore.get_many`` against a stand-in S3 GET server.

The server runs in a subprocess (its CPU is not this process's), speaks HTTP/1.1 with
keep-alive, answers every ``GET /bucket/key`` with ``size`` bytes after a fixed ``latency``
(a timer, not a sleeping thread: thousands can wait at once) and costs a few tens of µs per
request, so at ~2,000 GETs/s it is not the bottleneck on two cores. The driver fetches ``gets``
keys through the store with ``in_flight`` GETs in flight and reports GETs per second, CPU µs per
GET of this process (``time.process_time``: all its threads) and the equivalent documents per
minute (one GET per document).

``reingest bench-fetch`` runs it for the store's path (obstore) and for boto3's ``get_object``
through the same fetch window::

    .venv/bin/reingest bench-fetch --gets 20000 --latency-ms 20 --in-flight 64 --size 3000
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

BUCKET = "bench"


# -- the stand-in server ------------------------------------------------------------------------


class _GetServer(asyncio.Protocol):
    def __init__(self, latency: float, body: bytes) -> None:
        self.latency = latency
        self.body = body
        self.head = (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b'ETag: "bench"\r\n'
            b"Last-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n"
            b"Accept-Ranges: bytes\r\n"
            b"x-amz-request-id: bench\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            # GETs carry no body; anything else is not what this server is for.
            if not request.startswith(b"GET "):
                self._answer(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            elif self.latency > 0:
                asyncio.get_running_loop().call_later(self.latency, self._answer, None)
            else:
                self._answer(None)

    def _answer(self, response: bytes | None) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response if response is not None else self.head + self.body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve(latency: float, size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _GetServer(latency, body), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Runs until the parent closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


@dataclass
class GetServer:
    process: subprocess.Popen[str]
    endpoint: str

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(latency: float, size: int) -> GetServer:
    """Start the stand-in server in a subprocess; stop it with ``.stop()``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reingest_assets.fetch_bench",
            "--latency",
            str(latency),
            "--size",
            str(size),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError(f"fetch bench server did not start (said {line!r})")
    return GetServer(process, f"http://127.0.0.1:{int(line)}")


# -- the driver ---------------------------------------------------------------------------------


@dataclass
class FetchResult:
    path: str  # "obstore" (the store's GETs) or "boto3" (get_object)
    gets: int
    in_flight: int
    latency_ms: float
    size: int
    seconds: float
    gets_per_second: float
    cpu_us_per_get: float
    docs_per_minute: float


def bench_session() -> Any:
    import boto3

    return boto3.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )


def bench_client(endpoint: str, in_flight: int) -> Any:
    from botocore.config import Config

    from reingest_assets.resources.s3_store import client_config

    return bench_session().client(
        "s3",
        endpoint_url=endpoint,
        config=client_config(in_flight).merge(Config(s3={"addressing_style": "path"})),
    )


def run_fetch(
    endpoint: str,
    *,
    gets: int,
    in_flight: int,
    path: str,
    latency_ms: float = 0.0,
    size: int = 0,
) -> FetchResult:
    """Fetch ``gets`` keys with ``in_flight`` in flight (``S3ObjectStore.get_many`` for
    "obstore", boto3's ``get_object`` in the same fetch window for "boto3"); warm up first."""
    from reingest_assets.resources.fetch_window import fetch_in_order
    from reingest_assets.resources.s3_store import S3ObjectStore

    client = bench_client(endpoint, in_flight)
    store = S3ObjectStore(client, BUCKET, session=bench_session(), max_in_flight=in_flight)

    def get_object(key: str) -> bytes:
        with client.get_object(Bucket=BUCKET, Key=key)["Body"] as body:
            data: bytes = body.read()
            return data

    def get_many(keys: Any) -> Any:
        if path == "obstore":
            return store.get_many(keys)
        if path == "boto3":
            return fetch_in_order(get_object, keys, max_in_flight=in_flight)
        raise ValueError(f"fetch path must be 'obstore' or 'boto3', not {path!r}")

    try:
        warm = [f"warm/{i}" for i in range(in_flight * 2)]
        _drain(get_many(warm))
        keys = (f"raw/pubmed/{i}.json" for i in range(gets))
        cpu, wall = time.process_time(), time.perf_counter()
        received = _drain(get_many(keys))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        store.close()
    if received != gets:
        raise RuntimeError(f"{gets - received} of {gets} GETs failed")
    rate = gets / wall
    return FetchResult(
        path=path,
        gets=gets,
        in_flight=in_flight,
        latency_ms=latency_ms,
        size=size,
        seconds=round(wall, 3),
        gets_per_second=round(rate, 1),
        cpu_us_per_get=round(cpu / gets * 1e6, 1),
        docs_per_minute=round(rate * 60),
    )


def _drain(results: Any) -> int:
    ok = 0
    for _, data in results:
        if isinstance(data, BaseException):
            raise data
        ok += 1
    return ok


def run_fetch_bench(
    *,
    gets: int = 20_000,
    latency_ms: float = 20.0,
    in_flight: int = 64,
    size: int = 3000,
    paths: tuple[str, ...] = ("boto3", "obstore"),
) -> list[FetchResult]:
    """Start the server, run each path over the same settings, stop the server."""
    server = start_server(latency_ms / 1000, size)
    try:
        return [
            run_fetch(
                server.endpoint,
                gets=gets,
                in_flight=in_flight,
                path=path,
                latency_ms=latency_ms,
                size=size,
            )
            for path in paths
        ]
    finally:
        server.stop()


def as_dicts(results: list[FetchResult]) -> list[dict[str, Any]]:
    return [asdict(result) for result in results]


def _main() -> None:  # the server subprocess
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--size", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(_serve(args.latency, args.size))


if __name__ == "__main__":
    _main()
