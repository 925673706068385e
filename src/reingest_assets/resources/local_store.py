"""Object store in a local directory: the embedded default (``$REINGEST_HOME/objects``).

``s3://<bucket>/<key>`` lives at ``root/<bucket>/<key>``, a bare key under the default bucket.
Keys come from registry rows, so they are untrusted: a key that would leave its bucket directory
(``..``, absolute paths, NUL, backslashes, a symlink pointing out) is refused before any file is
opened, by resolving the path and checking containment.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from reingest_assets.domain.failures import DocumentError, object_not_found
from reingest_assets.resources.fetch_window import fetch_in_order
from reingest_assets.resources.object_uri import object_address, object_uri, split_uri

MiB = 1024 * 1024

# S3's bucket naming, loosely: also keeps bucket names from being ".", ".." or ".tmp".
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


class LocalObjectStore:
    def __init__(
        self,
        root: Path,
        bucket: str = "reingest",
        max_object_bytes: int = 64 * MiB,
        max_in_flight: int = 1,
    ) -> None:
        _check_bucket(bucket, bucket)
        self.root = root.resolve()
        self.bucket = bucket
        self.max_object_bytes = max_object_bytes
        self.max_in_flight = max_in_flight
        # Temp files live beside the buckets (same filesystem, so os.replace is atomic) but
        # outside them, so a crash mid-write never leaves a partial object to be listed.
        self._tmp_dir = self.root / ".tmp"
        self._checked_dirs: dict[tuple[str, str], str] = {}

    def get(self, uri: str) -> bytes:
        path = self._object_path(uri)
        try:
            # The directory was checked; O_NOFOLLOW refuses a symlink as the object itself, and
            # O_NONBLOCK keeps a named pipe in its place from blocking the open forever.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DocumentError(
                    "fetch", f"refused object URI {uri!r}: it leads out of the store"
                ) from None
            if exc.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
                raise _not_a_file(uri, "a socket or device") from None
            if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
                raise object_not_found(uri) from None
            raise
        try:
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise object_not_found(uri)
            if not stat.S_ISREG(status.st_mode):
                kind = "a named pipe" if stat.S_ISFIFO(status.st_mode) else "a device or socket"
                raise _not_a_file(uri, kind)
            size = status.st_size
            if size > self.max_object_bytes:
                raise DocumentError(
                    "fetch",
                    f"object too large: {uri} is {size} bytes, the cap is {self.max_object_bytes}",
                )
            # Plain reads on the descriptor: a buffered file object costs more than the read.
            data = os.read(fd, size + 1)  # short only at the end of the file
            while len(data) > size and len(data) <= self.max_object_bytes:  # it grew meanwhile
                more = os.read(fd, 1 << 20)
                if not more:
                    break
                data += more
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise object_not_found(uri) from None
        finally:
            os.close(fd)
        if len(data) > self.max_object_bytes:  # it grew while being read
            raise DocumentError(
                "fetch",
                f"object too large: {uri} is over {self.max_object_bytes} bytes",
            )
        return data

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        return fetch_in_order(self.get, uris, max_in_flight=self.max_in_flight)

    def put(self, uri: str, data: bytes) -> None:
        self._replace_atomically(Path(self._object_path(uri)), lambda tmp: tmp.write_bytes(data))

    def upload_file(self, uri: str, path: Path) -> None:
        self._replace_atomically(
            Path(self._object_path(uri)), lambda tmp: shutil.copyfile(path, tmp)
        )

    def download_file(self, uri: str, path: Path) -> bool:
        try:
            source = os.fdopen(os.open(self._object_path(uri), os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        with source, path.open("wb") as target:
            shutil.copyfileobj(source, target)
        return True

    def delete(self, uri: str) -> None:
        Path(self._object_path(uri)).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        bucket, key_prefix = split_uri(prefix, self.bucket)
        _check_bucket(bucket, prefix)
        _check_key(key_prefix, prefix)
        directory_key, _, name_prefix = key_prefix.rpartition("/")
        directory = self._contained(self.root / bucket / directory_key, bucket, prefix)
        base = f"{directory_key}/" if directory_key else ""
        for key in _walk(directory, base, name_prefix):
            yield object_uri(bucket, key)

    def _object_path(self, uri: str) -> str:
        """The object's path, its directory resolved and checked to lie inside the bucket.

        Directories are few and shared by many objects, so their check is cached; the object
        itself is opened without following a final symlink.
        """
        bucket, key = object_address(uri, self.bucket)
        _check_bucket(bucket, uri)
        _check_key(key, uri)
        directory_key, _, name = key.rpartition("/")
        if not name:
            raise DocumentError("fetch", f"refused object URI {uri!r}: no object name")
        directory = self._checked_dirs.get((bucket, directory_key))
        if directory is None:
            directory = str(self._contained(self.root / bucket / directory_key, bucket, uri))
            if len(self._checked_dirs) > 4096:
                self._checked_dirs.clear()
            self._checked_dirs[(bucket, directory_key)] = directory
        return f"{directory}/{name}"

    def _contained(self, path: Path, bucket: str, uri: str) -> Path:
        # resolve() follows every symlink on the way, so what is checked is where I/O would land.
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root / bucket):
            raise DocumentError("fetch", f"refused object URI {uri!r}: it leads out of the store")
        return resolved

    def _replace_atomically(self, target: Path, fill: Callable[[Path], object]) -> None:
        """Readers see the old object or the new one, never a partial write."""
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fill(tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _not_a_file(uri: str, kind: str) -> DocumentError:
    return DocumentError(
        "fetch",
        f"refused object {uri}: it is {kind}, not a regular file; replace it with the object",
    )


def _check_bucket(bucket: str, uri: str) -> None:
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise DocumentError("fetch", f"refused object URI {uri!r}: invalid bucket name {bucket!r}")


def _check_key(key: str, uri: str) -> None:
    if "\x00" in key:
        problem = "NUL byte in key"
    elif "\\" in key:
        problem = "backslash in key"
    elif key.startswith("/"):
        problem = "absolute path"
    elif ".." in key.split("/"):
        problem = "'..' in key"
    else:
        return
    raise DocumentError("fetch", f"refused object URI {uri!r}: {problem}")


def _walk(directory: Path, key_base: str, name_prefix: str = "") -> Iterator[str]:
    """Keys of regular files under ``directory`` in S3 key order; symlinks are not followed.

    Sorting a directory's entries by name, with ``/`` appended to subdirectory names, orders
    them as their full keys sort (``a-b`` < ``a/x`` because ``-`` < ``/``).
    """
    try:
        with os.scandir(directory) as scan:
            entries = [e for e in scan if e.name.startswith(name_prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return
    ordered = sorted(
        (((f"{e.name}/" if e.is_dir(follow_symlinks=False) else e.name), e) for e in entries),
        key=lambda named: named[0],
    )
    for sort_name, entry in ordered:
        if sort_name.endswith("/"):
            yield from _walk(Path(entry.path), f"{key_base}{sort_name}")
        elif entry.is_file(follow_symlinks=False):
            yield f"{key_base}{entry.name}"
