"""A protocol-level fake Weaviate server that the real ``weaviate-client`` talks to.

REST (``/v1/meta``, ``/.well-known/ready|live``, ``/v1/schema``, ``/v1/aliases``, ``/v1/nodes``)
on a threaded ``http.server``, gRPC (``Search``, ``BatchObjects``, ``BatchDelete``,
``Aggregate``, health ``Check``) with the client's own protobuf stubs; in-memory storage; fault
injection through :class:`Faults`. Both listen on random ports of 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version

import grpc

from .grpc_api import make_grpc_server
from .rest import make_rest_server
from .state import QUERY_MAXIMUM_RESULTS, State

__all__ = ["QUERY_MAXIMUM_RESULTS", "FakeWeaviate", "Faults"]


@dataclass
class Faults:
    """What the fake should get wrong, set by a test before it acts."""

    server_version: str = "1.33.0"
    # parent_uid -> the error every object of that document gets in the BatchObjects reply
    failing_parents: dict[str, str] = field(default_factory=dict)
    # one (status, details) is consumed per BatchObjects call: the call fails with that status
    batch_faults: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)
    delete_cap: int = QUERY_MAXIMUM_RESULTS  # objects one BatchDelete removes at most
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <key>"
    not_ready: bool = False  # /.well-known/ready answers 503


class FakeWeaviate:
    def __init__(self) -> None:
        self.state = State()
        self.faults = Faults()
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
        self._grpc.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._rest.shutdown()
        self._rest.server_close()
        self._grpc.stop(grace=None)

    def __enter__(self) -> FakeWeaviate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
