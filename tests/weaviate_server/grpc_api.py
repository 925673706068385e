"""The gRPC half of the fake Weaviate: ``weaviate.v1.Weaviate`` (Search, BatchObjects,
BatchDelete, Aggregate) and ``grpc.health.v1.Health/Check``, served with the client's own stubs."""

from __future__ import annotations

import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

import grpc
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from .state import (
    QUERY_MAXIMUM_RESULTS,
    PreparedObject,
    StoredObject,
    WeaviateError,
    encode_properties,
)
from .vectorize import vectorize

if TYPE_CHECKING:
    from . import FakeWeaviate

_DEFAULT_LIMIT = 10  # QUERY_DEFAULTS_LIMIT when a request leaves limit at 0


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def _enter(self, rpc: str, context: grpc.ServicerContext) -> None:
        self.fake.calls[rpc] += 1
        fault = self.fake.rpc_fault(rpc)
        if fault is not None:
            context.abort(*fault)
        key = self.fake.faults.api_key
        if key is not None:
            metadata = dict(context.invocation_metadata())
            if metadata.get("authorization") != f"Bearer {key}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "anonymous access not enabled")

    @staticmethod
    def _invalid(context: grpc.ServicerContext, exc: WeaviateError) -> NoReturn:
        # adapters/handlers/grpc/server.go: every error that is not about authentication or
        # authorization leaves the interceptor as UNKNOWN with the error's text.
        context.abort(grpc.StatusCode.UNKNOWN, str(exc))

    def BatchObjects(
        self, request: batch_pb2.BatchObjectsRequest, context: grpc.ServicerContext
    ) -> batch_pb2.BatchObjectsReply:
        self._enter("BatchObjects", context)
        start = time.perf_counter()
        faults = self.fake.faults
        state = self.fake.state
        errors: dict[int, str] = {}
        prepared: dict[int, PreparedObject] = {}
        for index, obj in enumerate(request.objects):
            parent = obj.properties.non_ref_properties.fields.get("parent_uid")
            injected = faults.failing_parents.get(parent.string_value) if parent else None
            if injected is not None:
                errors[index] = injected
                continue
            try:
                prepared[index] = state.prepare_object(obj, auto_schema=faults.auto_schema)
            except WeaviateError as exc:
                errors[index] = str(exc)
        # usecases/objects/batch_add.go: the batch's objects are vectorized together, and a
        # vectorizer error is assigned to every object it was vectorizing.
        metadata = {k.lower(): v for k, v in context.invocation_metadata()}
        errors.update(vectorize(prepared, metadata, self.fake.openai.url))
        for index, item in prepared.items():
            if index in errors:
                continue
            try:
                state.put_object(item)
            except WeaviateError as exc:
                errors[index] = str(exc)
        return batch_pb2.BatchObjectsReply(
            took=time.perf_counter() - start,
            errors=[
                batch_pb2.BatchObjectsReply.BatchError(index=index, error=error)
                for index, error in sorted(errors.items())
            ],
        )

    def BatchDelete(
        self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.ServicerContext
    ) -> batch_delete_pb2.BatchDeleteReply:
        self._enter("BatchDelete", context)
        start = time.perf_counter()
        state = self.fake.state
        with state.lock:
            try:
                coll = state.collection(request.collection)
                matched = state.matching(coll, request.filters)
            except WeaviateError as exc:
                self._invalid(context, exc)
            # adapters/repos/db/batch.go: one call deletes at most QUERY_MAXIMUM_RESULTS objects
            # but reports every match (adapters/handlers/grpc/v1/batch_delete.go: matches).
            matches = len(matched)
            matched = matched[: self.fake.faults.delete_cap]
            if not request.dry_run:
                for obj in matched:
                    del coll.objects[obj.uuid]
        return batch_delete_pb2.BatchDeleteReply(
            took=time.perf_counter() - start,
            failed=0,
            matches=matches,
            successful=0 if request.dry_run else len(matched),
            objects=[
                batch_delete_pb2.BatchDeleteObject(
                    uuid=UUID(o.uuid).bytes, successful=not request.dry_run
                )
                for o in matched
            ]
            if request.verbose
            else [],
        )

    def Search(
        self, request: search_get_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> search_get_pb2.SearchReply:
        self._enter("Search", context)
        start = time.perf_counter()
        state = self.fake.state
        limit = request.limit or _DEFAULT_LIMIT
        if request.after and request.HasField("filters"):
            self._invalid(
                context,
                WeaviateError("cursor api: other params cannot be set along with after"),
            )
        if request.offset + limit > QUERY_MAXIMUM_RESULTS:
            self._invalid(context, WeaviateError("query maximum results exceeded"))
        with state.lock:
            try:
                coll = state.collection(request.collection)
                filters = request.filters if request.HasField("filters") else None
                objects = state.matching(coll, filters)
            except WeaviateError as exc:
                self._invalid(context, exc)
            if filters is None:
                objects.sort(key=lambda o: o.uuid)
            if request.after:
                objects = [o for o in objects if o.uuid > request.after]
            page = objects[request.offset : request.offset + limit]
            wanted = (
                _wanted_properties(request.properties)
                if request.HasField("properties")
                else None  # no PropertiesRequest: every non-reference property
            )
            results = [
                search_get_pb2.SearchResult(
                    properties=search_get_pb2.PropertiesResult(
                        non_ref_props=encode_properties(
                            o.properties, coll.schema["properties"], wanted
                        ),
                        target_collection=coll.schema["class"],
                    ),
                    metadata=_metadata(o, request.metadata),
                )
                for o in page
            ]
        return search_get_pb2.SearchReply(took=time.perf_counter() - start, results=results)

    def Aggregate(
        self, request: aggregate_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> aggregate_pb2.AggregateReply:
        self._enter("Aggregate", context)
        start = time.perf_counter()
        state = self.fake.state
        with state.lock:
            try:
                coll = state.collection(request.collection)
                filters = request.filters if request.HasField("filters") else None
                count = len(state.matching(coll, filters))
            except WeaviateError as exc:
                self._invalid(context, exc)
        return aggregate_pb2.AggregateReply(
            took=time.perf_counter() - start,
            single_result=aggregate_pb2.AggregateReply.Single(objects_count=count),
        )


def _metadata(obj: StoredObject, req: search_get_pb2.MetadataRequest) -> Any:
    with_vectors = req.vector or len(req.vectors) > 0
    return search_get_pb2.MetadataResult(
        id=obj.uuid,
        id_as_bytes=UUID(obj.uuid).bytes,
        creation_time_unix=obj.created_ms,
        creation_time_unix_present=True,
        last_update_time_unix=obj.updated_ms,
        last_update_time_unix_present=True,
        vectors=[
            base_pb2.Vectors(
                name=name,
                vector_bytes=struct.pack(f"<{len(vec)}f", *vec),
                type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
            )
            for name, vec in obj.vectors.items()
        ]
        if with_vectors
        else [],
    )


def _wanted_properties(req: search_get_pb2.PropertiesRequest) -> set[str] | None:
    if req.return_all_nonref_properties:
        return None
    return set(req.non_ref_properties) | {o.prop_name for o in req.object_properties}


def _health_check(
    fake: FakeWeaviate,
) -> grpc.GenericRpcHandler:
    def check(
        request: health_weaviate_pb2.WeaviateHealthCheckRequest, context: grpc.ServicerContext
    ) -> health_weaviate_pb2.WeaviateHealthCheckResponse:
        fake.calls["HealthCheck"] += 1
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
            )
        },
    )


def make_grpc_server(fake: FakeWeaviate) -> tuple[grpc.Server, int]:
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(fake), server)
    server.add_generic_rpc_handlers((_health_check(fake),))
    port = server.add_insecure_port("127.0.0.1:0")
    return server, port
