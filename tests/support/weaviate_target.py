"""Where the Weaviate tests run: the in-process fake server by default, a live server when
``WEAVIATE_URL`` is set (``WEAVIATE_GRPC_PORT``, ``WEAVIATE_API_KEY`` optional)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import uuid4

import weaviate.connect.v4 as weaviate_connection_module
from weaviate import WeaviateClient

from reingest_assets.resources.weaviate_connection import WeaviateSettings, connect
from weaviate_server import FakeWeaviate

LIVE_URL = os.environ.get("WEAVIATE_URL")


@dataclass
class WeaviateTarget:
    settings: WeaviateSettings
    fake: FakeWeaviate | None  # None: a live server

    def connect(self) -> WeaviateClient:
        return connect(self.settings)

    @staticmethod
    def unique_name(prefix: str = "DocumentChunk_v2_test") -> str:
        return f"{prefix}_{uuid4().hex[:12]}"


def live_settings(url: str) -> WeaviateSettings:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return WeaviateSettings(
        http_host=parts.hostname or "localhost",
        http_port=parts.port or (443 if secure else 8080),
        http_secure=secure,
        grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT", "50051")),
        grpc_secure=secure,
        api_key=os.environ.get("WEAVIATE_API_KEY") or None,
    )


def fake_settings(fake: FakeWeaviate, **overrides: object) -> WeaviateSettings:
    values: dict[str, object] = {
        "http_host": "127.0.0.1",
        "http_port": fake.http_port,
        "grpc_port": fake.grpc_port,
        "init_timeout": 5.0,
    }
    values.update(overrides)
    return WeaviateSettings(**values)  # type: ignore[arg-type]


@contextmanager
def weaviate_target() -> Iterator[WeaviateTarget]:
    if LIVE_URL:
        yield WeaviateTarget(live_settings(LIVE_URL), None)
        return
    with FakeWeaviate() as fake:
        # The client asks PyPI whether it is outdated on connect; tests stay off the network.
        saved = weaviate_connection_module.PYPI_PACKAGE_URL
        weaviate_connection_module.PYPI_PACKAGE_URL = f"{fake.url}/pypi/weaviate-client/json"
        try:
            yield WeaviateTarget(fake_settings(fake), fake)
        finally:
            weaviate_connection_module.PYPI_PACKAGE_URL = saved
