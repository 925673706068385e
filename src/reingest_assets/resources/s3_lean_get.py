"""The S3 store's lean GET path: an object's bytes without boto3's per-call cost.

Why it exists: botocore spends ~2.6 ms of CPU on each ``get_object`` (event hooks, request
building, signing, response parsing, the response dict), which caps one process at a few hundred
GETs/s however many are in flight. This path costs ~250 µs of CPU per GET: 2,400+ GETs/s from one
process at 20 ms of latency. ``reingest bench-fetch`` measures both (``fetch_bench.py``).

How: :class:`LeanGetter` asks the client once per bucket how it would send a GetObject (a dry run
stopped at ``before-send``: URL with the addressing style and key encoding, signing region,
headers) and keeps that as a :class:`LeanRoute`. Each GET is then signed here with SigV4 (the
signing key cached per day, credentials read from the client on every request so refreshable
ones stay fresh) and sent on this module's own HTTP/1.1 keep-alive connections
(``max_in_flight`` kept idle per host), with the client's timeouts and TLS verification. Errors
come back as the exceptions botocore would raise (``ClientError`` with the S3 error code,
``ConnectionClosedError``, ``ReadTimeoutError``, ``IncompleteReadError``...), so retries and
failure records are the same on both paths, and a full-object checksum (``x-amz-checksum-*``) is
verified when botocore would verify it.

Fallback: whatever the lean path cannot reproduce exactly (a proxy, a client certificate, SigV2
or SigV4a, S3 Express, extra headers from the client's config or event handlers, a bucket in
another region) goes through boto3's ``get_object`` instead: :meth:`LeanGetter.route` returns
None for such a bucket, and a redirect to another region raises :class:`WrongRegion`, after which
the caller calls :meth:`LeanGetter.give_up`. The fallback is decided per bucket and logged once.

Private botocore attributes read, and what happens if a botocore upgrade moves them:

* ``client._endpoint.http_session``, its ``_proxy_config`` (proxies) and ``_verify`` (TLS
  verification), and ``client._get_credentials()`` (the credentials to sign with): if any is
  missing, the bucket falls back to ``get_object``;
* ``botocore.httpchecksum._ALGORITHMS_PRIORITY_LIST`` and ``_CHECKSUM_CLS`` (which response
  checksums botocore validates, in its order): missing, CRC32, SHA1 and SHA256 are checked.

``S3ObjectStore`` (``s3_store.py``) owns retries, the not-found mapping and the fallback call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from botocore import exceptions as botocore_exceptions
from botocore.exceptions import ClientError
from urllib3.util.wait import wait_for_read

from reingest_assets.domain.failures import DocumentError

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Headers a plain GetObject carries: anything else in the client's own request (SSE-C keys,
# requester pays, an expected bucket owner, S3 Express session tokens, a custom handler's
# header) means the lean path would send a different request, so it steps aside.
_PLAIN_GET_HEADERS = frozenset(
    {
        "authorization",
        "user-agent",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "x-amz-checksum-mode",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
    }
)
_SIGNABLE = frozenset(
    {"host", "x-amz-checksum-mode", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"}
)
_SIGV4_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/(?P<region>[^/]+)/s3/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=[0-9a-f]{64}$"
)
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,256})</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]{0,2048})</Message>")
_REDIRECT_STATUSES = frozenset({301, 307})
_MAX_ERROR_BODY = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADERS = 100


class _Probed(Exception):
    """Raised by the dry-run hook with the request botocore was about to send."""

    def __init__(self, request: Any) -> None:
        super().__init__("probe")
        self.request = request


class WrongRegion(Exception):
    """The bucket answered with a redirect to another region or endpoint."""


class _Unsupported(Exception):
    """The client sends GetObject in a way the lean path does not reproduce."""


@dataclass(frozen=True)
class LeanRoute:
    """How one bucket's GETs are sent: ``path_prefix`` + the percent-encoded key on ``pool``,
    signed for ``region`` (None: unsigned, as with the client's ``signature_version=UNSIGNED``)."""

    getter: LeanGetter
    base_url: str
    host: str
    path_prefix: str
    region: str | None
    user_agent: str
    checksum_mode: bool
    pool: _ConnectionPool

    def get(self, uri: str, key: str, max_bytes: int) -> bytes:
        path = self.path_prefix + quote(key, safe="/~")
        headers = {"Host": self.host, "User-Agent": self.user_agent}
        if self.checksum_mode:
            headers["x-amz-checksum-mode"] = "ENABLED"
        if self.region is not None:
            self.getter.sign(headers, path, self.region)
        request = "".join(
            [f"GET {path} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"]
        ).encode("latin-1")
        url = self.base_url + path
        connection = self.pool.take(url)
        keep = False
        try:
            status, reason, response_headers = connection.exchange(request, url)
            if status != 200:
                body = connection.read_body(response_headers, _MAX_ERROR_BODY, url)
                keep = body is not None and _keep_alive(response_headers)
                _raise_for_status(status, reason, response_headers, body or b"", url)
            length = response_headers.get("content-length")
            if length is not None and int(length) > max_bytes:
                raise too_large(uri, int(length), max_bytes)  # the connection is dropped
            data = connection.read_body(response_headers, max_bytes, url)
            if data is None:
                raise too_large(uri, max_bytes + 1, max_bytes)
            keep = _keep_alive(response_headers)
            if self.checksum_mode:
                _verify_checksum(response_headers, data)
            return data
        finally:
            if keep:
                self.pool.give_back(connection)
            else:
                connection.close()


class _Connection:
    """One HTTP/1.1 keep-alive connection: a request out, a response in (status line, headers,
    a ``Content-Length`` or chunked body). GETs only; no pipelining."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=64 * 1024)

    def exchange(self, request: bytes, url: str) -> tuple[int, str, dict[str, str]]:
        try:
            self.sock.sendall(request)
            status_line = self.rfile.readline(_MAX_LINE)
            if not status_line:
                raise botocore_exceptions.ConnectionClosedError(endpoint_url=url)
            version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise botocore_exceptions.HTTPClientError(
                    error=ValueError(f"malformed status line {status_line[:100]!r}")
                )
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS):
                line = self.rfile.readline(_MAX_LINE)
                if line in (b"\r\n", b"\n"):
                    break
                if not line:
                    raise botocore_exceptions.ConnectionClosedError(endpoint_url=url)
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            else:
                raise botocore_exceptions.HTTPClientError(error=ValueError("too many headers"))
            if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
                headers["connection"] = "close"
            return int(code), reason, headers
        except TimeoutError as exc:
            raise botocore_exceptions.ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except ssl.SSLError as exc:
            raise botocore_exceptions.SSLError(endpoint_url=url, error=exc) from exc
        except OSError as exc:  # reset, broken pipe
            raise botocore_exceptions.ConnectionClosedError(endpoint_url=url) from exc

    def read_body(self, headers: dict[str, str], max_bytes: int, url: str) -> bytes | None:
        """The body, or None when it is longer than ``max_bytes`` (the caller drops the
        connection). A body shorter than its ``Content-Length`` is an ``IncompleteReadError``."""
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                return self._read_chunked(max_bytes, url)
            length = headers.get("content-length")
            if length is None:
                if _keep_alive(headers):
                    return b""  # no length and no close: an empty body
                data = self.rfile.read(max_bytes + 1)
                return data if len(data) <= max_bytes else None
            expected = int(length)
            if expected > max_bytes:
                return None
            data = self.rfile.read(expected)
            if len(data) != expected:
                raise botocore_exceptions.IncompleteReadError(
                    actual_bytes=len(data), expected_bytes=expected
                )
            return data
        except TimeoutError as exc:
            raise botocore_exceptions.ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except OSError as exc:  # reset mid-body
            raise botocore_exceptions.ResponseStreamingError(error=exc) from exc

    def _read_chunked(self, max_bytes: int, url: str) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if not line:
                raise botocore_exceptions.ResponseStreamingError(error=EOFError("chunked body"))
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > max_bytes:
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
                raise botocore_exceptions.ResponseStreamingError(error=EOFError("chunked body"))
            parts.append(chunk)

    def is_dropped(self) -> bool:
        """An idle connection with something to read has been closed (or broken) by the
        server: reusing it would fail the next request."""
        return wait_for_read(self.sock, timeout=0.0)

    def close(self) -> None:
        with suppress(OSError):
            self.rfile.close()
            self.sock.close()


class _ConnectionPool:
    """Idle keep-alive connections to one host, at most ``size`` kept (more may be open while
    more GETs are in flight; they close when done, as urllib3's non-blocking pool does)."""

    def __init__(
        self,
        hostname: str,
        port: int,
        *,
        size: int,
        connect_timeout: float | None,
        read_timeout: float | None,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.tls = tls
        self._idle: deque[_Connection] = deque()

    def take(self, url: str) -> _Connection:
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return self._connect(url)
            if not connection.is_dropped():
                return connection
            connection.close()

    def give_back(self, connection: _Connection) -> None:
        if len(self._idle) < self.size:
            self._idle.append(connection)
        else:
            connection.close()

    def clear(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def _connect(self, url: str) -> _Connection:
        try:
            sock = socket.create_connection(
                (self.hostname, self.port), timeout=self.connect_timeout
            )
        except TimeoutError as exc:
            raise botocore_exceptions.ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except OSError as exc:  # refused, unreachable, name resolution
            raise botocore_exceptions.EndpointConnectionError(endpoint_url=url, error=exc) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.hostname)
            sock.settimeout(self.read_timeout)
        except ssl.SSLError as exc:
            sock.close()
            raise botocore_exceptions.SSLError(endpoint_url=url, error=exc) from exc
        except TimeoutError as exc:
            sock.close()
            raise botocore_exceptions.ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except OSError as exc:
            sock.close()
            raise botocore_exceptions.EndpointConnectionError(endpoint_url=url, error=exc) from exc
        return _Connection(sock)


def _keep_alive(headers: dict[str, str]) -> bool:
    return "close" not in headers.get("connection", "").lower()


class LeanGetter:
    """Per store: the routes per bucket, the connection pools, the signing-key cache."""

    def __init__(self, client: Any, max_in_flight: int) -> None:
        self.client = client
        self.max_in_flight = max_in_flight
        self._routes: dict[str, LeanRoute | None] = {}
        self._lock = threading.Lock()
        self._pools: dict[str, _ConnectionPool] = {}
        self._signing_key: tuple[str, str, str, bytes] = ("", "", "", b"")
        self._credentials: Any = None

    def route(self, bucket: str) -> LeanRoute | None:
        try:
            return self._routes[bucket]
        except KeyError:
            pass
        with self._lock:
            if bucket not in self._routes:
                try:
                    self._routes[bucket] = self._resolve(bucket)
                except _Unsupported as exc:
                    self._routes[bucket] = None
                    log.info("S3 GETs from bucket %s go through boto3 get_object: %s", bucket, exc)
            return self._routes[bucket]

    def give_up(self, bucket: str, reason: str) -> None:
        with self._lock:
            self._routes[bucket] = None
        log.info("S3 GETs from bucket %s go through boto3 get_object: %s", bucket, reason)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.clear()

    def sign(self, headers: dict[str, str], path: str, region: str) -> None:
        """SigV4 for a GET without a query or body, as botocore's ``S3SigV4Auth`` computes it
        (the path is not normalized for S3; the payload hash is that of the empty body)."""
        credentials = self._credentials.get_frozen_credentials()
        now = time.gmtime()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", now)
        day = amz_date[:8]
        headers["x-amz-content-sha256"] = EMPTY_SHA256
        headers["X-Amz-Date"] = amz_date
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        canonical = sorted(
            (name.lower(), value.strip())
            for name, value in headers.items()
            if name.lower() in _SIGNABLE
        )
        signed = ";".join(name for name, _ in canonical)
        canonical_request = "\n".join(
            (
                "GET",
                path,
                "",
                "".join(f"{name}:{value}\n" for name, value in canonical),
                signed,
                EMPTY_SHA256,
            )
        )
        scope = f"{day}/{region}/s3/aws4_request"
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256",
                amz_date,
                scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            )
        )
        signature = hmac.new(
            self._key(credentials.secret_key, day, region),
            string_to_sign.encode(),
            hashlib.sha256,
        ).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )

    def _key(self, secret: str, day: str, region: str) -> bytes:
        cached_secret, cached_day, cached_region, key = self._signing_key
        if (cached_secret, cached_day, cached_region) == (secret, day, region):
            return key
        key = f"AWS4{secret}".encode()
        for part in (day, region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._signing_key = (secret, day, region, key)  # one tuple: atomic for other threads
        return key

    def _resolve(self, bucket: str) -> LeanRoute:
        """Ask the client how it would send a GetObject from ``bucket``, without sending it."""
        config = self.client.meta.config
        if getattr(config, "client_cert", None):
            raise _Unsupported("the client presents a TLS client certificate")
        session = getattr(getattr(self.client, "_endpoint", None), "http_session", None)
        proxy_config = getattr(session, "_proxy_config", None)
        if session is None or proxy_config is None or not hasattr(session, "_verify"):
            raise _Unsupported("cannot read the client's HTTP settings")
        verify = session._verify
        token = f"reingest-lean-probe-{uuid.uuid4().hex}"
        request = self._dry_run(bucket, token)
        url = str(request.url)
        parts = urlsplit(url)
        encoded_token = quote(token, safe="/~")
        if parts.query or parts.fragment or not parts.path.endswith("/" + encoded_token):
            raise _Unsupported(f"unexpected GetObject URL {url!r}")
        if proxy_config.proxy_url_for(url):
            raise _Unsupported("the client sends through a proxy")
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        extra = set(headers) - _PLAIN_GET_HEADERS
        if extra:
            raise _Unsupported(f"GetObject carries headers {sorted(extra)}")
        region: str | None = None
        if "authorization" in headers:
            match = _SIGV4_AUTHORIZATION.match(headers["authorization"])
            if match is None or not set(match["signed"].split(";")) <= _SIGNABLE:
                raise _Unsupported("the client signs GetObject with something other than SigV4")
            if headers.get("x-amz-content-sha256") not in (EMPTY_SHA256, None):
                raise _Unsupported("the client signs GetObject's payload differently")
            get_credentials = getattr(self.client, "_get_credentials", None)
            if get_credentials is None:
                raise _Unsupported("cannot read the client's credentials")
            self._credentials = get_credentials()
            if self._credentials is None:
                raise _Unsupported("no credentials on the client")
            region = match["region"]
        elif any(h in headers for h in ("x-amz-date", "x-amz-security-token")):
            raise _Unsupported("GetObject is signed in an unknown way")
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise _Unsupported(f"unexpected GetObject URL {url!r}")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        default_port = 443 if parts.scheme == "https" else 80
        if parts.port is not None and parts.port != default_port:
            host = f"{host}:{parts.port}"
        base_url = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(base_url)
        if pool is None:
            pool = self._pools[base_url] = self._new_pool(parts, verify)
        return LeanRoute(
            getter=self,
            base_url=base_url,
            host=host,
            path_prefix=parts.path[: -len(encoded_token)],
            region=region,
            user_agent=headers.get("user-agent", "reingest"),
            checksum_mode=headers.get("x-amz-checksum-mode") == "ENABLED",
            pool=pool,
        )

    def _dry_run(self, bucket: str, token: str) -> Any:
        def stop(request: Any, **_: Any) -> None:
            if token in request.url:  # other threads' requests go on as usual
                raise _Probed(request)

        events = self.client.meta.events
        event = "before-send.s3.GetObject"
        events.register_first(event, stop, unique_id=token)
        try:
            self.client.get_object(Bucket=bucket, Key=token)
        except _Probed as probed:
            return probed.request
        except Exception as exc:  # bad bucket name, no credentials, ...
            raise _Unsupported(f"the client cannot build a GetObject ({exc!r})") from exc
        finally:
            events.unregister(event, unique_id=token)
        raise _Unsupported("the client's GetObject did not reach before-send")

    def _new_pool(self, parts: SplitResult, verify: Any) -> _ConnectionPool:
        config = self.client.meta.config
        tls = None
        if parts.scheme == "https":
            from botocore.httpsession import get_cert_path

            if verify is False:
                tls = ssl.create_default_context()
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            else:
                tls = ssl.create_default_context(
                    cafile=get_cert_path(True if verify is None else verify)
                )
        assert parts.hostname is not None
        return _ConnectionPool(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            size=self.max_in_flight,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            tls=tls,
        )


def _raise_for_status(
    status: int, reason: str, headers: dict[str, str], body: bytes, url: str
) -> None:
    """A ``ClientError`` shaped as botocore parses S3's error responses (the code and message
    from the XML body; the status as the code when there is none)."""
    if status in _REDIRECT_STATUSES or (
        status == 400
        and headers.get("x-amz-bucket-region")
        and b"AuthorizationHeaderMalformed" in body
    ):
        raise WrongRegion(
            f"HTTP {status} for {url} (bucket region {headers.get('x-amz-bucket-region')})"
        )
    code_match = _ERROR_CODE.search(body)
    message_match = _ERROR_MESSAGE.search(body)
    error = {
        "Code": code_match[1].decode(errors="replace") if code_match else str(status),
        "Message": message_match[1].decode(errors="replace") if message_match else reason,
    }
    raise ClientError(
        {
            "Error": error,
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": headers,
                "RequestId": headers.get("x-amz-request-id", ""),
            },
        },
        "GetObject",
    )


def _checksum_algorithms() -> list[tuple[str, Any]]:
    """``(header, checksum class)`` in botocore's priority order, for the algorithms it would
    validate on a GetObject response (CRC32C and CRC64NVME only with awscrt)."""
    try:
        from botocore.httpchecksum import _ALGORITHMS_PRIORITY_LIST, _CHECKSUM_CLS

        names = [n for n in _ALGORITHMS_PRIORITY_LIST if n in _CHECKSUM_CLS]
        classes = _CHECKSUM_CLS
    except ImportError:  # pragma: no cover - botocore moved them
        from botocore.httpchecksum import Crc32Checksum, Sha1Checksum, Sha256Checksum

        names = ["crc32", "sha1", "sha256"]
        classes = {"crc32": Crc32Checksum, "sha1": Sha1Checksum, "sha256": Sha256Checksum}
    return [(f"x-amz-checksum-{name}", classes[name]) for name in names]


_CHECKSUMS = _checksum_algorithms()


def _verify_checksum(headers: Any, data: bytes) -> None:
    for header, checksum_cls in _CHECKSUMS:
        expected = headers.get(header)
        if expected is None or "-" in expected:  # "-N": a multipart composite, not of the body
            continue
        checksum = checksum_cls()
        checksum.update(data)
        if checksum.digest() != base64.b64decode(expected):
            raise botocore_exceptions.FlexibleChecksumError(
                error_msg=f"Expected checksum {expected} did not match calculated checksum: "
                f"{checksum.b64digest()}"
            )
        return


def too_large(uri: str, size: int, cap: int) -> DocumentError:
    return DocumentError("fetch", f"object too large: {uri} is {size} bytes, the cap is {cap}")
