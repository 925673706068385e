"""DocumentChunk_v2 in Weaviate (production), through the v4 client.

Writes are gRPC ``BatchObjects`` calls (``insert_many``, ``batch_size`` objects each,
``concurrency`` in flight) rather than the client's fixed-size batcher, which waits up to a second
for a partial batch to fill on every flush. A successful call says nothing about single objects:
each reply's per-object errors are read, and documents with an unwritten object are reported.
Deletes loop ``delete_many``: one call removes at most ``QUERY_MAXIMUM_RESULTS`` (10,000 by
default) objects.

Blue/green: with ``alias`` set, the store writes a versioned physical collection
(:func:`versioned_collection`) and :meth:`WeaviateChunkStore.promote` points the alias that
readers query at it; rolling back is pointing the alias at the previous collection again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import reingest_assets.resources.weaviate_import  # noqa: F401  (first: see there)

# isort: split
import grpc
from weaviate import WeaviateClient
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.collections.classes.config import _NestedProperty, _Property
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import (
    AuthenticationFailedError,
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateInsertManyAllFailedError,
    WeaviateRetryError,
    WeaviateTimeoutError,
)

from reingest_assets.domain.document import Chunk
from reingest_assets.domain.failures import (
    ConfigurationError,
    ErrorKind,
    TransientError,
    is_transient,
)
from reingest_assets.resources.retry import retry
from reingest_assets.resources.stores import COLLECTION, StoredChunk

Vectorizer = Literal["text2vec-openai", "text2vec-transformers", "none"]
T = TypeVar("T")

VECTOR_NAME = "default"
VECTORIZED_PROPERTIES = ["title", "text"]
ALIAS_MIN_VERSION = (1, 32, 0)
# Values per contains_any filter: keeps one filter (and one request) bounded.
FILTER_VALUES = 1_000
# Documents per fetch query, and objects per page of it; offset + limit must stay under the
# server's QUERY_MAXIMUM_RESULTS (10,000), which a hundred abstracts never come near.
FETCH_PARENTS = 100
FETCH_PAGE = 1_000
QUERY_MAXIMUM_RESULTS = 10_000

# Batch error messages that say "try again": the client keeps only the message text (gRPC
# details, or the repr of the exception that failed the whole batch).
_TRANSIENT_MESSAGE = re.compile(
    r"unavailable|deadline.?exceeded|resource.?exhausted|connection (refused|reset|closed|aborted)"
    r"|broken pipe|timed? ?out|status:? ?(429|5\d\d)\b|rate limit|too many requests"
    r"|weaviateretryerror|weaviatetimeouterror|weaviateconnectionerror|shutting down",
    re.IGNORECASE,
)


API_KEY_SETTING = "REINGEST_WEAVIATE_API_KEY"
COLLECTION_SETTING = "REINGEST_WEAVIATE_COLLECTION"
VECTORIZER_SETTING = "REINGEST_WEAVIATE_VECTORIZER"
OPENAI_KEY_SETTING = "REINGEST_OPENAI_API_KEY"


class WeaviateStoreError(RuntimeError):
    """The store cannot do what was asked; the message says why."""


class SchemaMismatchError(WeaviateStoreError, ConfigurationError):
    def __init__(
        self, collection: str, differences: list[str], setting: str = COLLECTION_SETTING
    ) -> None:
        self.differences = differences
        listing = "\n  - ".join(differences)
        ConfigurationError.__init__(
            self,
            f"Weaviate collection {collection} does not match the DocumentChunk_v2 schema "
            f"({len(differences)} difference(s)):\n  - {listing}",
            setting=setting,
        )


class TransientWeaviateError(WeaviateStoreError, TransientError):
    """Worth another attempt."""


# gRPC statuses worth sending the same call again (the client itself retries only UNAVAILABLE,
# and only on Search and Aggregate).
_TRANSIENT_STATUSES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
_AUTH_STATUSES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_MISSING_COLLECTION = re.compile(r"could not find class|class .{1,200} (does not exist|not found)")


def _text(name: str, **kwargs: Any) -> Property:
    return Property(name=name, data_type=DataType.TEXT, **kwargs)


def chunk_properties() -> list[Property]:
    """The collection's properties, as the original service defined them."""
    pubmed = [
        _text("journal"),
        Property(name="mesh_terms", data_type=DataType.TEXT_ARRAY),
        Property(name="quality_total", data_type=DataType.NUMBER),
        _text("doi"),
        _text("pmc_id"),
        _text("language"),
        Property(name="authors", data_type=DataType.TEXT_ARRAY),
    ]
    meta = [
        _text("chunk_id"),
        Property(name="chunk_index", data_type=DataType.INT),
        _text("chunker_version"),
        _text("tokenizer"),
        Property(name="target_tokens", data_type=DataType.INT),
        Property(name="max_tokens", data_type=DataType.INT),
        Property(name="overlap_tokens", data_type=DataType.INT),
        Property(name="section_index", data_type=DataType.INT),
        Property(
            name="src",
            data_type=DataType.OBJECT,
            nested_properties=[
                Property(name="pubmed", data_type=DataType.OBJECT, nested_properties=pubmed)
            ],
        ),
    ]
    return [
        _text(
            "parent_uid",
            index_filterable=True,
            index_searchable=False,
            tokenization=Tokenization.FIELD,
        ),
        _text("source"),
        _text("title", index_searchable=True, tokenization=Tokenization.WORD),
        _text("text", index_searchable=True, tokenization=Tokenization.WORD),
        _text("section"),
        Property(name="published_at", data_type=DataType.DATE),
        Property(name="year", data_type=DataType.INT),
        Property(name="tokens", data_type=DataType.INT),
        Property(name="n_sentences", data_type=DataType.INT),
        Property(name="quality_total", data_type=DataType.NUMBER),
        Property(name="meta", data_type=DataType.OBJECT, nested_properties=meta),
    ]


def _vector_config(vectorizer: Vectorizer) -> Any:
    if vectorizer == "text2vec-openai":
        return Configure.Vectors.text2vec_openai(
            name=VECTOR_NAME,
            source_properties=VECTORIZED_PROPERTIES,
            vectorize_collection_name=False,
        )
    if vectorizer == "text2vec-transformers":
        return Configure.Vectors.text2vec_transformers(
            name=VECTOR_NAME,
            source_properties=VECTORIZED_PROPERTIES,
            vectorize_collection_name=False,
        )
    return Configure.Vectors.self_provided(name=VECTOR_NAME)


# A property tree: name -> (data type, tokenization, nested tree or None).
_Tree = dict[str, tuple[str, str | None, "_Tree | None"]]


def _tree(props: Sequence[Property | _Property | _NestedProperty]) -> _Tree:
    out: _Tree = {}
    for p in props:
        data_type = DataType(p.dataType).value if isinstance(p, Property) else p.data_type.value
        tokenization = p.tokenization.value if p.tokenization is not None else None
        nested: Any = p.nestedProperties if isinstance(p, Property) else p.nested_properties
        out[p.name] = (data_type, tokenization, _tree(nested) if nested else None)
    return out


def _differences(expected: _Tree, actual: _Tree, prefix: str = "") -> list[str]:
    diffs: list[str] = []
    for name, (e_type, e_tok, e_nested) in expected.items():
        path = prefix + name
        if name not in actual:
            diffs.append(f"{path}: missing (expected {e_type})")
            continue
        a_type, a_tok, a_nested = actual[name]
        if a_type != e_type:
            diffs.append(f"{path}: data type {a_type}, expected {e_type}")
        elif e_tok is not None and a_tok != e_tok:
            # parent_uid must be "field": with "word" a filter on pubmed:1 also matches pubmed:2.
            diffs.append(f"{path}: tokenization {a_tok}, expected {e_tok}")
        if e_nested is not None and a_nested is not None:
            diffs.extend(_differences(e_nested, a_nested, path + "."))
    for name, (a_type, _, _) in actual.items():
        if name not in expected:
            diffs.append(f"{prefix}{name}: unexpected property ({a_type})")
    return diffs


def versioned_collection(version: str, base: str = COLLECTION) -> str:
    """``DocumentChunk_v2_<version>``, with characters a class name cannot hold replaced."""
    cleaned = re.sub(r"[^0-9A-Za-z_]", "_", version)
    if not cleaned:
        raise ValueError("an empty version cannot name a collection")
    return f"{base}_{cleaned}"


def retried(
    fn: Callable[[], T], *, attempts: int = 5, base_delay: float = 1.0, collection: str = COLLECTION
) -> T:
    """``fn()``, retried in place on transient errors with bounded backoff; what retries did not
    fix leaves as a failure kind (:class:`TransientError`, :class:`ConfigurationError`)."""
    try:
        return retry(
            fn,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=30 * base_delay,
            retry_on=lambda exc: weaviate_error_kind(exc) == "transient",
        )
    except Exception as exc:
        translated = _translated(exc, collection)
        if translated is None:
            raise
        raise translated from exc


def server_version(client: WeaviateClient, *, base_delay: float = 1.0) -> tuple[int, int, int]:
    raw = str(retried(client.get_meta, base_delay=base_delay).get("version", ""))
    parts = [int(p) for p in re.findall(r"\d+", raw)[:3]]
    if len(parts) < 2:
        raise WeaviateStoreError(f"Weaviate reported an unreadable version {raw!r}")
    return (parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def require_alias_support(client: WeaviateClient, *, base_delay: float = 1.0) -> None:
    found = server_version(client, base_delay=base_delay)
    if found < ALIAS_MIN_VERSION:
        need = ".".join(map(str, ALIAS_MIN_VERSION))
        raise WeaviateStoreError(
            f"Weaviate {'.'.join(map(str, found))} has no collection aliases (they need "
            f">= {need}); upgrade the server or unset the alias (REINGEST_WEAVIATE_ALIAS) to "
            "write the collection directly"
        )


def alias_target(client: WeaviateClient, alias: str, *, base_delay: float = 1.0) -> str | None:
    """The collection ``alias`` points at, or None when there is no such alias."""
    require_alias_support(client, base_delay=base_delay)
    found = retried(lambda: client.alias.get(alias_name=alias), base_delay=base_delay)
    return found.collection if found is not None else None


def point_alias(
    client: WeaviateClient, alias: str, target: str, *, base_delay: float = 1.0
) -> str | None:
    """Create ``alias`` or move it to ``target``; returns the previous target (None if new)."""
    require_alias_support(client, base_delay=base_delay)
    if not retried(lambda: client.collections.exists(target), base_delay=base_delay):
        raise WeaviateStoreError(f"cannot point alias {alias} at missing collection {target}")
    previous = alias_target(client, alias, base_delay=base_delay)
    if previous is None:
        retried(
            lambda: client.alias.create(alias_name=alias, target_collection=target),
            base_delay=base_delay,
        )
    elif previous != target:
        retried(
            lambda: client.alias.update(alias_name=alias, new_target_collection=target),
            base_delay=base_delay,
        )
    return previous


def _grpc_status(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC status behind a client error. The client re-raises RPC errors as its own
    exceptions inside its ``except`` blocks, keeping only the details in the message (Search,
    BatchObjects), so the status is read from the chained RPC error."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        code = getattr(error, "code", None)
        if isinstance(error, grpc.RpcError) and callable(code):
            status = code()
            if isinstance(status, grpc.StatusCode):
                return status
        error = error.__cause__ or error.__context__
    return None


def weaviate_error_kind(exc: BaseException) -> ErrorKind | None:
    """What a weaviate-client error means for a retry; None when it is not one this store
    classifies."""
    status = _grpc_status(exc)
    if status in _TRANSIENT_STATUSES:
        return "transient"
    if status in _AUTH_STATUSES or isinstance(exc, AuthenticationFailedError):
        return "configuration"
    if isinstance(exc, UnexpectedStatusCodeError):
        if exc.status_code in (401, 403):
            return "configuration"
        if exc.status_code >= 500 or exc.status_code == 429:
            return "transient"
    if isinstance(
        exc,
        WeaviateConnectionError
        | WeaviateRetryError
        | WeaviateTimeoutError
        | WeaviateGRPCUnavailableError,
    ):
        return "transient"
    if isinstance(exc, WeaviateBaseError) and not isinstance(exc, WeaviateClosedClientError):
        if _MISSING_COLLECTION.search(str(exc)):
            return "configuration"
        if _TRANSIENT_MESSAGE.search(str(exc)):
            return "transient"
    if is_transient(exc) or isinstance(exc, OSError):
        return "transient"
    return None


def _translated(exc: BaseException, collection: str) -> Exception | None:
    """The failure kind's exception for an error retries did not fix; None: raise it as is."""
    kind = weaviate_error_kind(exc)
    if kind == "transient" and not isinstance(exc, TransientError):
        return TransientWeaviateError(f"Weaviate kept failing: {type(exc).__name__}: {exc}")
    if kind != "configuration":
        return None
    if _MISSING_COLLECTION.search(str(exc)):
        return ConfigurationError(
            f"Weaviate has no collection {collection} ({exc}): check {COLLECTION_SETTING} "
            "(and REINGEST_WEAVIATE_ALIAS), or create it with the pipeline's schema",
            setting=COLLECTION_SETTING,
        )
    return ConfigurationError(
        f"Weaviate refused the request for its credentials or permissions "
        f"({type(exc).__name__}: {exc}): check {API_KEY_SETTING} and the key's permissions "
        f"on {collection}",
        setting=API_KEY_SETTING,
    )


# Per-object errors that are no document's fault and that no retry fixes, and the setting that
# does: text2vec-openai without a key or with a rejected one
# (usecases/modulecomponents/clients/openai/openai.go), a vector the collection does not
# configure (usecases/objects/validation/vector_validation.go).
_CONFIGURATION_MESSAGES = (
    (
        re.compile(r"no api key found|openai api failed with status: 40[13]\b", re.IGNORECASE),
        OPENAI_KEY_SETTING,
        "Weaviate's text2vec-openai vectorizer has no usable OpenAI key",
    ),
    (
        re.compile(r"does not have configuration for vector|configured with(out)? multiple named"),
        VECTORIZER_SETTING,
        "the collection does not take the vectors this pipeline writes",
    ),
)


def _configuration_refusal(message: str) -> ConfigurationError | None:
    for pattern, setting, what in _CONFIGURATION_MESSAGES:
        if pattern.search(message):
            return ConfigurationError(f"{what} ({message}): check {setting}", setting=setting)
    return None


def _is_transient_message(message: str) -> bool:
    """Throttling (Weaviate's or the vectorizer's: "... failed with status: 429"), timeouts,
    unavailable shards: the client keeps only the text of per-object errors."""
    return bool(_TRANSIENT_MESSAGE.search(message))


def _defined(values: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    """``values`` without the properties ``tree`` does not define, nested ones included."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in tree:
            continue
        nested = tree[name][2]
        out[name] = (
            _defined(value, nested) if nested is not None and isinstance(value, dict) else value
        )
    return out


def _module_name(vectorizer: Any) -> str:
    """A vectorizer as the client reports it (an enum, or a string for unknown modules)."""
    return str(getattr(vectorizer, "value", vectorizer) or "none")


def _to_weaviate(value: Any) -> Any:
    """Nulls are dropped (Weaviate stores a null as an absent property); dicts recursively."""
    if isinstance(value, dict):
        return {k: _to_weaviate(v) for k, v in value.items() if v is not None}
    return value


def _rfc3339(day: str) -> str:
    # Weaviate's date type takes RFC3339 only; documents carry YYYY-MM-DD.
    return f"{day}T00:00:00Z" if len(day) == 10 else day


def _from_weaviate(values: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    """Back to the shape ``Chunk.properties()`` has: absent properties as None (arrays as []),
    dates as YYYY-MM-DD, numbers as the schema types them."""
    out: dict[str, Any] = {}
    for name, (data_type, _, nested) in tree.items():
        value = values.get(name)
        if value is None:
            out[name] = [] if data_type.endswith("[]") else None
        elif nested is not None:
            out[name] = _from_weaviate(value, nested)
        elif data_type == "date":
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            moment = moment.astimezone(UTC)
            out[name] = (
                moment.date().isoformat()
                if moment.time() == datetime.min.time()
                else (moment.isoformat())
            )
        elif data_type == "int":
            out[name] = int(value)
        elif data_type == "number":
            out[name] = float(value)
        else:
            out[name] = list(value) if data_type.endswith("[]") else value
    return out


def _groups(values: Sequence[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


class WeaviateChunkStore:
    """The ChunkStore over one Weaviate collection. The store owns ``client``: ``close()``
    closes it."""

    name = "weaviate"

    def __init__(
        self,
        client: WeaviateClient,
        *,
        collection: str = COLLECTION,
        vectorizer: Vectorizer = "text2vec-openai",
        batch_size: int = 200,
        concurrency: int = 2,
        attempts: int = 5,
        alias: str | None = None,
        retry_base_delay: float = 1.0,
    ) -> None:
        if alias is not None and alias == collection:
            raise ValueError(
                f"alias {alias} must differ from the physical collection it points at; "
                "use versioned_collection() for the collection name"
            )
        self.client = client
        self.collection = collection
        self.vectorizer: Vectorizer = vectorizer
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.attempts = attempts
        self.alias = alias
        self.retry_base_delay = retry_base_delay
        self.target = f"weaviate:{collection}"
        self._named_vector: bool | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tree = _tree(chunk_properties())

    @property
    def _col(self) -> Any:
        return self.client.collections.use(self.collection)

    def finish(self) -> None:
        """Nothing deferred: Weaviate indexes as it writes."""

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self.client.close()

    # --- schema -----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the collection when it is missing; otherwise check that its properties and
        its vector configuration are what the pipeline writes, and refuse any difference."""
        if self.alias is not None:
            require_alias_support(self.client, base_delay=self.retry_base_delay)
            alias = self.alias
            if self._call(lambda: self.client.collections.exists(alias)) and (
                alias_target(self.client, alias, base_delay=self.retry_base_delay) is None
            ):
                raise WeaviateStoreError(
                    f"{self.alias} is a collection, not an alias: a collection and an alias "
                    "cannot share a name; choose another alias name or migrate the collection"
                )
        if not self._call(lambda: self.client.collections.exists(self.collection)):
            self._call(
                lambda: self.client.collections.create(
                    self.collection,
                    properties=chunk_properties(),
                    vector_config=_vector_config(self.vectorizer),
                )
            )
        config = self._call(lambda: self._col.config.get(simple=True))
        self._named_vector = config.vector_config is not None
        vector_differences = self._vector_differences(config)
        if vector_differences:
            raise SchemaMismatchError(self.collection, vector_differences, VECTORIZER_SETTING)
        differences = _differences(self._tree, _tree(config.properties))
        if differences:
            raise SchemaMismatchError(self.collection, differences)

    def _vector_differences(self, config: Any) -> list[str]:
        """How the collection's vectors differ from what this store writes: the named vector
        ``default`` (or one unnamed vector, as older collections have), vectorized by
        ``self.vectorizer`` from ``title`` and ``text``."""
        expected = self.vectorizer
        setting = f"{VECTORIZER_SETTING}={expected}"
        if config.vector_config is None:  # a collection with one unnamed vector
            actual = _module_name(config.vectorizer)
            if actual != expected:
                return [f"vector (unnamed): vectorizer {actual}, expected {expected} ({setting})"]
            return []
        if VECTOR_NAME not in config.vector_config:
            names = ", ".join(sorted(config.vector_config)) or "none"
            return [
                f"vector {VECTOR_NAME}: not configured (the collection has: {names}); the "
                f"pipeline writes the named vector {VECTOR_NAME} ({setting})"
            ]
        vectorizer = config.vector_config[VECTOR_NAME].vectorizer
        actual = _module_name(vectorizer.vectorizer)
        if actual != expected:
            return [f"vector {VECTOR_NAME}: vectorizer {actual}, expected {expected} ({setting})"]
        source = vectorizer.source_properties
        if expected != "none" and source and sorted(source) != sorted(VECTORIZED_PROPERTIES):
            return [
                f"vector {VECTOR_NAME}: vectorizes {', '.join(source)}, expected "
                f"{', '.join(VECTORIZED_PROPERTIES)}"
            ]
        return []

    def _uses_named_vector(self) -> bool:
        if self._named_vector is None:
            self._named_vector = self._col.config.get(simple=True).vector_config is not None
        return self._named_vector

    # --- writes -----------------------------------------------------------------------------

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        if vectors is not None and len(vectors) != len(chunks):
            raise ValueError(f"{len(vectors)} vectors for {len(chunks)} chunks")
        errors: dict[str, str] = {}
        pending = list(range(len(chunks)))
        last_error: dict[int, str] = {}

        def attempt() -> None:
            nonlocal pending
            failed = self._write_batch(chunks, vectors, pending)
            retry_next = []
            for index, (message, transient) in failed.items():
                refusal = _configuration_refusal(message)
                if refusal is not None:
                    # The server's vectorizer has no usable key, or the collection takes no
                    # such vector: every object would fail alike, so the run stops here.
                    raise refusal
                if transient:
                    retry_next.append(index)
                    last_error[index] = message
                else:
                    errors.setdefault(chunks[index].parent_uid, message)
            pending = retry_next
            if pending:
                raise TransientWeaviateError(f"{len(pending)} objects failed transiently")

        try:
            retry(
                attempt,
                attempts=self.attempts,
                base_delay=self.retry_base_delay,
                max_delay=30 * self.retry_base_delay,
                retry_on=lambda exc: isinstance(exc, TransientWeaviateError),
            )
        except TransientWeaviateError as exc:
            for index in pending:
                errors.setdefault(chunks[index].parent_uid, last_error.get(index, str(exc)))
        return errors

    def _write_batch(
        self,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]] | None,
        indexes: Sequence[int],
    ) -> dict[int, tuple[str, bool]]:
        """One pass over ``chunks[indexes]``, ``batch_size`` objects per ``insert_many`` and
        ``concurrency`` of them in flight; returns ``{index: (error, transient)}``."""
        named = vectors is not None and self._uses_named_vector()
        items: list[tuple[int, DataObject[dict[str, Any], None]]] = []
        for index in indexes:
            chunk = chunks[index]
            # Only properties the collection defines: with auto-schema on (the server default)
            # anything else would silently extend the collection's schema.
            props = _defined(_to_weaviate(chunk.properties()), self._tree)
            if chunk.published_at:
                props["published_at"] = _rfc3339(chunk.published_at)
            vector: Any = None
            if vectors is not None:
                vec = [float(x) for x in vectors[index]]
                vector = {VECTOR_NAME: vec} if named else vec
            items.append((index, DataObject(properties=props, uuid=chunk.uuid, vector=vector)))
        slices = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        failed: dict[int, tuple[str, bool]] = {}
        for result in self._pool().map(self._insert_slice, slices):
            failed.update(result)
        return failed

    def _insert_slice(
        self, items: list[tuple[int, DataObject[dict[str, Any], None]]]
    ) -> dict[int, tuple[str, bool]]:
        try:
            result = self._col.data.insert_many([obj for _, obj in items])
        except WeaviateInsertManyAllFailedError as exc:
            # Every object failed; the message lists the distinct errors.
            message = str(exc)
            return {index: (message, _is_transient_message(message)) for index, _ in items}
        except (WeaviateBaseError, OSError) as exc:
            # The request as a whole failed (gRPC status, connection, retries exhausted).
            kind = weaviate_error_kind(exc)
            if kind == "configuration":
                translated = _translated(exc, self.collection)
                assert translated is not None
                raise translated from exc
            message = f"{type(exc).__name__}: {exc}"
            return {index: (message, kind == "transient") for index, _ in items}
        return {
            items[position][0]: (err.message, _is_transient_message(err.message))
            for position, err in result.errors.items()
        }

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="weaviate-upsert"
            )
        return self._executor

    def _call(self, fn: Callable[[], T]) -> T:
        """Reads, counts, deletes and schema calls: retried in place on transient errors."""
        return retried(
            fn, attempts=self.attempts, base_delay=self.retry_base_delay, collection=self.collection
        )

    def _delete_where(self, where: _Filters) -> int:
        deleted = 0
        while True:
            result = self._call(lambda: self._col.data.delete_many(where=where))
            deleted += result.successful
            if result.failed:
                raise WeaviateStoreError(
                    f"delete_many in {self.collection}: {result.failed} of {result.matches} "
                    "matched objects were not deleted"
                )
            # One call deletes at most QUERY_MAXIMUM_RESULTS objects: ask again until nothing
            # matches (the server's cap is configurable, so no fixed number tells "done").
            if result.matches == 0:
                return deleted
            if result.successful == 0:
                raise WeaviateStoreError(
                    f"delete_many in {self.collection} matched {result.matches} objects "
                    "but deleted none"
                )

    def delete(self, uuids: Sequence[str]) -> int:
        return sum(
            self._delete_where(Filter.by_id().contains_any(group))
            for group in _groups(uuids, FILTER_VALUES)
        )

    def delete_parents(self, parent_uids: Sequence[str]) -> int:
        return sum(
            self._delete_where(Filter.by_property("parent_uid").contains_any(group))
            for group in _groups(parent_uids, FILTER_VALUES)
        )

    # --- reads ------------------------------------------------------------------------------

    def count(self, parent_uids: Sequence[str] | None = None) -> int:
        if parent_uids is None:
            return self._count(None)
        return sum(
            self._count(Filter.by_property("parent_uid").contains_any(group))
            for group in _groups(parent_uids, FILTER_VALUES)
        )

    def _count(self, where: _Filters | None) -> int:
        result = self._call(partial(self._col.aggregate.over_all, filters=where, total_count=True))
        return int(result.total_count)

    def fetch(self, parent_uids: Sequence[str]) -> Iterator[StoredChunk]:
        for obj in self._objects(parent_uids, None):
            props = _from_weaviate(obj.properties, self._tree)
            yield StoredChunk(uuid=str(obj.uuid), parent_uid=props["parent_uid"], properties=props)

    def fetch_ids(self, parent_uids: Sequence[str]) -> Iterator[tuple[str, str]]:
        for obj in self._objects(parent_uids, ["parent_uid"]):
            yield str(obj.uuid), obj.properties["parent_uid"]

    def _objects(
        self, parent_uids: Sequence[str], return_properties: list[str] | None
    ) -> Iterator[Any]:
        """The documents' objects, in groups of FETCH_PARENTS documents, each group's sorted by
        uuid. ``return_properties``: all when ``None``."""
        for group in _groups(parent_uids, FETCH_PARENTS):
            where = Filter.by_property("parent_uid").contains_any(group)
            objects: list[Any] = []
            offset = 0
            while True:
                if offset + FETCH_PAGE > QUERY_MAXIMUM_RESULTS:
                    raise WeaviateStoreError(
                        f"{len(group)} documents hold over {QUERY_MAXIMUM_RESULTS} chunks: "
                        "more than one query can page through"
                    )
                page = self._call(partial(self._page, where, offset, return_properties)).objects
                objects.extend(page)
                if len(page) < FETCH_PAGE:
                    break
                offset += FETCH_PAGE
            yield from sorted(objects, key=lambda o: str(o.uuid))

    def _page(self, where: _Filters, offset: int, return_properties: list[str] | None) -> Any:
        return self._col.query.fetch_objects(
            filters=where, limit=FETCH_PAGE, offset=offset, return_properties=return_properties
        )

    # --- blue/green -------------------------------------------------------------------------

    def alias_target(self) -> str | None:
        if self.alias is None:
            raise WeaviateStoreError("this store has no alias configured")
        return alias_target(self.client, self.alias, base_delay=self.retry_base_delay)

    def promote(self) -> str | None:
        """Point the alias at this store's collection; returns the previous target, which is
        what a rollback points it at again."""
        if self.alias is None:
            raise WeaviateStoreError("this store has no alias configured")
        return point_alias(
            self.client, self.alias, self.collection, base_delay=self.retry_base_delay
        )
