"""Operator errors: reach every store the settings name before a run starts, and turn the
errors a wrong setting causes into one message that names the setting to fix.

The CLI calls :func:`check_stack` after preparing the stack, so an unreachable database, a
missing bucket or a Weaviate collection with another schema stops the command before any run
is launched; :func:`explain` maps those errors (also when they surface later, wrapped in a
Dagster step error) to text without secrets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg
from dagster import DagsterInstance, build_resources

from reingest_assets.domain.failures import ConfigurationError
from reingest_assets.resources.redaction import redact
from reingest_assets.settings import Settings, SettingsError
from reingest_assets.stack import Stack

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    from reingest_assets.dagster_resources import ReingestResource

WEAVIATE_ENDPOINT = (
    "REINGEST_WEAVIATE_HTTP_HOST/_HTTP_PORT and REINGEST_WEAVIATE_GRPC_HOST/_GRPC_PORT "
    "(or REINGEST_WEAVIATE_CLOUD_URL with REINGEST_WEAVIATE_API_KEY)"
)


def check_stack(stack: Stack, *, migrate: bool = False) -> list[str]:
    """Reach every store the settings name (:func:`checked_resources`); with ``migrate``
    (commands that write) also apply pending migrations and the store's schema, and return the
    migrations applied. Without it nothing is changed."""
    with checked_resources(stack) as (reingest, _instance):
        return reingest.migrate() if migrate else []


@contextmanager
def checked_resources(stack: Stack) -> Iterator[tuple[ReingestResource, DagsterInstance]]:
    """The pipeline's resource, open, and the stack's Dagster instance, once the database, the
    bucket (S3) and the chunk store answered with the settings the runs will use. Changes
    nothing; raises what the failing client raised.

    The database first: Dagster's storage retries an unreachable one for seconds. The resource
    is built within the stack's instance (``DAGSTER_HOME``): without one, ``build_resources``
    makes an ephemeral instance, a third of a second of SQLite migrations."""
    from reingest_assets.dagster_resources import ReingestResource

    psycopg.connect(stack.database_url, connect_timeout=10).close()
    resource = ReingestResource.from_settings(stack.settings)
    with (
        DagsterInstance.get() as instance,
        build_resources({"reingest": resource}, instance=instance) as resources,
    ):
        reingest: ReingestResource = resources.reingest
        if reingest.object_store.kind == "s3":
            from reingest_assets.resources.s3_store import S3ObjectStore

            objects = reingest.adapters.objects
            assert isinstance(objects, S3ObjectStore)
            objects.check_bucket()
        reingest.adapters.store  # noqa: B018 - connecting is the check (Weaviate)
        yield reingest, instance


def explain(exc: BaseException, settings: Settings) -> str | None:
    """What to tell the operator about ``exc`` (or an error it wraps), or None when it is not
    one a setting causes."""
    for error in _chain(exc):
        message = _explain_one(error, settings)
        if message is not None:
            return redact(message, settings.database_url)
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``raise ... from``, implicit context, and the user code error
    inside Dagster's step errors."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo += [getattr(error, "user_exception", None), error.__cause__, error.__context__]


def _explain_one(error: BaseException, settings: Settings) -> str | None:
    if isinstance(error, SettingsError):
        return str(error)
    if isinstance(error, psycopg.errors.UndefinedTable):
        return (
            f"the database has no reingest tables yet ({str(error).splitlines()[0]}): run "
            "`reingest migrate` (or a command that writes: demo, full, dev) first"
        )
    if isinstance(error, psycopg.OperationalError):
        return _database(error, settings)
    if isinstance(error, ConfigurationError):
        return str(error)
    # botocore's errors are looked at only when an S3 client was built, hence botocore loaded;
    # likewise weaviate-client's (a second to import) only when a Weaviate store was built.
    if "botocore" in sys.modules:
        message = _explain_s3(error, settings)
        if message is not None:
            return message
    if "reingest_assets.resources.stores.weaviate" not in sys.modules:
        return None
    from reingest_assets.resources.stores.weaviate import SchemaMismatchError, WeaviateStoreError
    from reingest_assets.resources.weaviate_connection import WeaviateUnavailableError

    if isinstance(error, SchemaMismatchError):
        return (
            f"{error}\nThe collection was created with another schema. Point the pipeline at "
            "a new collection (blue/green: REINGEST_WEAVIATE_ALIAS, see docs/runbook.md) or "
            "migrate the existing one; the pipeline never alters a collection's schema."
        )
    if isinstance(error, WeaviateUnavailableError):
        return f"{error}\nSet {WEAVIATE_ENDPOINT} to a running Weaviate server."
    if isinstance(error, WeaviateStoreError):
        return str(error)
    return None


def _explain_s3(error: BaseException, settings: Settings) -> str | None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(error, ClientError):
        return _s3_client_error(error, settings)
    if isinstance(error, EndpointConnectionError):
        return (
            f"cannot reach the S3 endpoint: {error}. Set REINGEST_S3_ENDPOINT_URL to the S3 "
            "(or MinIO) endpoint, or unset it for AWS, and REINGEST_S3_REGION to the bucket's "
            "region."
        )
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials for the S3 object store: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or an AWS profile or instance role)."
        )
    return None


# SQLSTATE classes of a connection that could not be made or kept: connection exceptions,
# authorization, operator intervention (shutdown, starting up), no such database.
_CONNECTION_SQLSTATE_CLASSES = ("08", "28", "57", "3D")


def _database(error: psycopg.OperationalError, settings: Settings) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if error.sqlstate and error.sqlstate[:2] not in _CONNECTION_SQLSTATE_CLASSES:
        # The server answered, and refused a statement: not a connection problem.
        return (
            f"the database refused a statement ({type(error).__name__}, SQLSTATE "
            f"{error.sqlstate}): {reason}"
        )
    if settings.database_url:
        where = redact(settings.database_url, settings.database_url)
        return (
            f"cannot connect to the database REINGEST_DATABASE_URL={where}: {reason}. "
            "Check the user, password, host, port and database name in "
            "REINGEST_DATABASE_URL and that the server accepts connections from here, or "
            "unset it to use the embedded Postgres under REINGEST_HOME."
        )
    return (
        f"cannot connect to the embedded Postgres under {settings.pg_dir}: {reason}. "
        "Check that REINGEST_HOME is writable and not used by another user, or set "
        "REINGEST_DATABASE_URL to a Postgres server."
    )


def _s3_client_error(error: ClientError, settings: Settings) -> str | None:
    code = str(error.response.get("Error", {}).get("Code", ""))
    endpoint = settings.s3_endpoint_url or "AWS S3"
    if code == "NoSuchBucket" or (
        code in ("404", "NotFound") and error.operation_name == "HeadBucket"
    ):
        return (
            f"the bucket {settings.bucket!r} does not exist at {endpoint}. Set REINGEST_BUCKET "
            "to an existing bucket (and REINGEST_S3_ENDPOINT_URL to the endpoint that holds "
            "it), or create the bucket."
        )
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            f"S3 refused access to the bucket {settings.bucket!r} at {endpoint} ({code}): "
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy, and "
            "REINGEST_BUCKET."
        )
    return None
