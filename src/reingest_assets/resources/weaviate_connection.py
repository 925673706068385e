"""Connecting to Weaviate: self-hosted (separate HTTP and gRPC endpoints) or Weaviate Cloud.

Secrets (the API key, vectorizer keys in headers) stay out of ``repr`` and of every error this
module raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import reingest_assets.resources.weaviate_import  # noqa: F401  (first: see there)

# isort: split
import weaviate
from weaviate import WeaviateClient
from weaviate.classes.init import AdditionalConfig, Auth, Timeout


class WeaviateUnavailableError(ConnectionError):
    """Weaviate could not be reached or is not ready (transient: a ``ConnectionError``)."""


@dataclass(frozen=True)
class WeaviateSettings:
    http_host: str = "localhost"
    http_port: int = 8080
    http_secure: bool = False
    grpc_host: str | None = None  # None: the HTTP host
    grpc_port: int = 50051
    grpc_secure: bool = False
    cloud_url: str | None = None  # set: connect to Weaviate Cloud, the hosts above are unused
    api_key: str | None = field(default=None, repr=False)
    # e.g. {"X-OpenAI-Api-Key": ...} for a server-side vectorizer; values are secrets.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    init_timeout: float = 30.0
    query_timeout: float = 60.0
    insert_timeout: float = 120.0
    skip_init_checks: bool = False

    def describe(self) -> str:
        """Where the client goes, without secrets: for logs and error messages."""
        if self.cloud_url:
            return f"Weaviate Cloud {self.cloud_url}"
        http = f"{'https' if self.http_secure else 'http'}://{self.http_host}:{self.http_port}"
        grpc = f"{self.grpc_host or self.http_host}:{self.grpc_port}"
        return f"{http} (gRPC {grpc}{', TLS' if self.grpc_secure else ''})"

    def secrets(self) -> list[str]:
        return [s for s in (self.api_key, *self.headers.values()) if s]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def connect(settings: WeaviateSettings) -> WeaviateClient:
    """A connected client that answered ready; raises :class:`WeaviateUnavailableError`
    naming the endpoint when it is unreachable."""
    auth = Auth.api_key(settings.api_key) if settings.api_key else None
    additional = AdditionalConfig(
        timeout=Timeout(
            init=settings.init_timeout,
            query=settings.query_timeout,
            insert=settings.insert_timeout,
        )
    )
    headers = dict(settings.headers)
    try:
        if settings.cloud_url:
            if auth is None:
                raise ValueError("Weaviate Cloud needs an API key")
            client = weaviate.connect_to_weaviate_cloud(
                settings.cloud_url,
                auth_credentials=auth,
                headers=headers,
                additional_config=additional,
                skip_init_checks=settings.skip_init_checks,
            )
        else:
            client = weaviate.connect_to_custom(
                http_host=settings.http_host,
                http_port=settings.http_port,
                http_secure=settings.http_secure,
                grpc_host=settings.grpc_host or settings.http_host,
                grpc_port=settings.grpc_port,
                grpc_secure=settings.grpc_secure,
                headers=headers,
                additional_config=additional,
                auth_credentials=auth,
                skip_init_checks=settings.skip_init_checks,
            )
    except ValueError:
        raise
    except Exception as exc:
        # `from None`: the chained exception could carry request headers into a traceback.
        reason = _redact(f"{type(exc).__name__}: {exc}", settings.secrets())
        raise WeaviateUnavailableError(
            f"cannot connect to Weaviate at {settings.describe()}: {reason}"
        ) from None
    if not client.is_ready():
        client.close()
        raise WeaviateUnavailableError(f"Weaviate at {settings.describe()} is not ready")
    return client
