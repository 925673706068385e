"""A protocol-level fake Weaviate server that the real ``weaviate-client`` talks to.

REST (``/v1/meta``, ``/.well-known/ready|live``, ``/v1/schema``, ``/v1/aliases``, ``/v1/nodes``)
on a threaded ``http.server``, gRPC (``Search``, ``BatchObjects``, ``BatchDelete``,
``Aggregate``, health ``Check``) with the client's own protobuf stubs; in-memory storage; fault
injection through :class:`Faults`; ``text2vec-openai`` vectorizes through a stand-in OpenAI
embeddings endpoint (``openai.py``). All listen on random ports of 127.0.0.1.

What it mirrors of Weaviate 1.33 (and the server source each behaviour follows) is tabled in
``docs/weaviate.md``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version

import grpc

from .grpc_api import make_grpc_server
from .openai import OpenAIBehaviour, StandInOpenAI
from .rest import make_rest_server
from .state import QUERY_MAXIMUM_RESULTS, State

__all__ = ["QUERY_MAXIMUM_RESULTS", "FakeWeaviate", "Faults", "OpenAIBehaviour"]

RpcFault = tuple[grpc.StatusCode, str]


@dataclass
class Faults:
    """What the fake should get wrong, set by a test before it acts."""

    server_version: str = "1.33.0"
    # parent_uid -> the error every object of that document gets in the BatchObjects reply
    failing_parents: dict[str, str] = field(default_factory=dict)
    # RPC name (BatchObjects, BatchDelete, Search, Aggregate) -> faults; each call of that RPC
    # consumes the first one and fails with its status and details (None: this call succeeds)
    rpc_faults: dict[str, list[RpcFault | None]] = field(default_factory=dict)
    # (method, path prefix, status): the first REST request matching one consumes it and is
    # answered with that status
    rest_faults: list[tuple[str, str, int]] = field(default_factory=list)
    delete_cap: int = QUERY_MAXIMUM_RESULTS  # objects one BatchDelete removes at most
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <key>"
    not_ready: bool = False  # /.well-known/ready answers 503
    # AUTOSCHEMA_ENABLED, on by default as on a real server: an unknown property extends the
    # collection's schema instead of failing the object
    auto_schema: bool = True


class FakeWeaviate:
    def __init__(self) -> None:
        self.state = State()
        self.faults = Faults()
        self.openai = StandInOpenAI()
        self.calls: Counter[str] = Counter()  # gRPC method -> number of calls
        self.requests: list[tuple[str, str]] = []  # REST (method, path), in order
        self.client_version = version("weaviate-client")
        self._rest = make_rest_server(self)
        self._grpc, self.grpc_port = make_grpc_server(self)
        self.http_port = self._rest.server_address[1]
        self._thread = threading.Thread(target=self._rest.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> FakeWeaviate:
        self.openai.start()
        self._grpc.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._rest.shutdown()
        self._rest.server_close()
        self._grpc.stop(grace=None)
        self.openai.stop()

    def rpc_fault(self, rpc: str) -> RpcFault | None:
        with self.state.lock:
            queue = self.faults.rpc_faults.get(rpc)
            return queue.pop(0) if queue else None

    def rest_fault(self, method: str, path: str) -> int | None:
        with self.state.lock:
            for index, (m, prefix, status) in enumerate(self.faults.rest_faults):
                if m == method and path.startswith(prefix):
                    del self.faults.rest_faults[index]
                    return status
        return None

    def __enter__(self) -> FakeWeaviate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
