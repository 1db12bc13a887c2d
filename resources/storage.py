"""Where the lake's objects live: a local folder or an S3 bucket, behind one small interface.

Keys are relative POSIX paths such as `raw_flights/date=2013-01-01/part-0.parquet`. Both stores

- replace an object whole or not at all (local: a flushed temporary sibling renamed over it;
  S3: one PUT request), so a run that dies leaves the previous content readable;
- create immutable objects exclusively (local: a hard link, which never replaces a file; S3: a
  conditional PUT with `If-None-Match: *`), so two writers racing for one name cannot both win;
- list a prefix in one listing (one request per 1,000 keys on S3), never probing key by key;
- hand a set of Parquet objects to pyarrow as one dataset, which DuckDB scans directly: the S3
  reads go through pyarrow's S3 filesystem, because DuckDB's own S3 support (the httpfs extension)
  is downloaded from the internet on first use and production workers may not have it.

The S3 client comes from dagster-aws's `S3Resource`; credentials always come from the standard AWS
chain (environment, shared config and credentials files, web identity, container or instance
roles), never from code or config files. A request that cannot reach S3 (after the SDK's own
retries) raises `StoreUnreachable`, naming the endpoint and the location, so a worker cut off
from S3 says so rather than failing on some later symptom.
"""

import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.dataset

# Concurrent requests when many objects are written or read at once (partitions, records): the
# size of boto3's connection pool, so no connection is opened and thrown away.
S3_THREADS = 10
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


class StoreUnreachable(ConnectionError):
    """The S3 endpoint of a store did not answer."""


class ObjectStore(ABC):
    """Objects under one root, addressed by relative keys."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Where `key` lives, for messages and links (`/srv/lake/...` or `s3://bucket/...`)."""

    @abstractmethod
    def put(self, key: str, content: bytes) -> None:
        """Create or replace `key` with `content`, atomically."""

    def put_many(self, objects: Mapping[str, bytes]) -> None:
        """Create or replace several objects; each is atomic on its own."""
        for key, content in objects.items():
            self.put(key, content)

    @abstractmethod
    def put_new(self, key: str, content: bytes) -> None:
        """Create `key` with `content`, or raise FileExistsError if it exists: immutable records."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The content of `key`; FileNotFoundError naming its location when it does not exist."""

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        """The contents of `keys`, in that order."""
        return [self.get(key) for key in keys]

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def sizes(self, prefix: str) -> dict[str, int]:
        """Every object under the folder `prefix` ("" for all), with its size in bytes."""

    @abstractmethod
    def dataset(self, sizes: Mapping[str, int]) -> "pyarrow.dataset.Dataset":
        """The Parquet objects `sizes` (key -> bytes, as listed) as one pyarrow dataset."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the root: absolute, empty segments, `.` or `..`."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}: expected a relative path like 'a/b.json'")
    return key


class LocalStore(ObjectStore):
    """A folder on a local or shared file system."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str = "") -> str:
        return str(self.path(key) if key else self.root)

    def put(self, key: str, content: bytes) -> None:
        write_bytes_atomically(self.path(key), content)

    def put_new(self, key: str, content: bytes) -> None:
        write_bytes_exclusively(self.path(key), content)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def sizes(self, prefix: str) -> dict[str, int]:
        """In `os.walk`'s order, by `os.scandir`, whose entries carry their type and size: tables
        are listed often, and `Path` objects per file were most of the cost."""
        found: dict[str, int] = {}
        folders = [(str(self.path(prefix)), f"{prefix}/")] if prefix else [(str(self.root), "")]
        while folders:
            folder, key_prefix = folders.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:  # gone, or not a folder: nothing under it, as os.walk sees it
                continue
            subfolders = []
            for entry in entries:
                if entry.is_dir():
                    if not entry.is_symlink():  # as os.walk, which does not follow links
                        subfolders.append((entry.path, f"{key_prefix}{entry.name}/"))
                elif not entry.name.startswith("."):  # a write in progress, or one that died
                    found[key_prefix + entry.name] = entry.stat().st_size
            folders += reversed(subfolders)
        return found

    def dataset(self, sizes: Mapping[str, int]) -> "pyarrow.dataset.Dataset":
        import pyarrow.dataset as ds

        return ds.dataset([str(self.path(key)) for key in sizes], format="parquet")


class S3Store(ObjectStore):
    """A prefix of an S3 bucket, or of any S3-compatible store at a custom endpoint."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None):
        import boto3
        from dagster_aws.s3 import S3Resource

        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.client = S3Resource(endpoint_url=endpoint_url).get_client()
        # The same standard chain boto3 uses, kept to hand current credentials to pyarrow.
        self.credentials = boto3.session.Session().get_credentials()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{check_key(key) if key else ''}".rstrip("/")

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Requests inside, with a network failure named as S3's."""
        from botocore.exceptions import ConnectionError as NetworkError
        from botocore.exceptions import HTTPClientError

        try:
            yield
        except (NetworkError, HTTPClientError) as error:
            raise StoreUnreachable(
                f"S3 cannot be reached at {self.endpoint_url or 'AWS'} for {self.uri()}: {error}"
            ) from None

    def put(self, key: str, content: bytes) -> None:
        with self._reaching():
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=content)

    def put_many(self, objects: Mapping[str, bytes]) -> None:
        if len(objects) <= 1:
            super().put_many(objects)
            return
        with ThreadPoolExecutor(max_workers=min(S3_THREADS, len(objects))) as pool:
            # list() re-raises the first failed PUT here, after the others have finished.
            list(pool.map(lambda item: self.put(*item), objects.items()))

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        if len(keys) <= 1:
            return super().get_many(keys)
        with ThreadPoolExecutor(max_workers=min(S3_THREADS, len(keys))) as pool:
            return list(pool.map(self.get, keys))

    def put_new(self, key: str, content: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            with self._reaching():
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=content, IfNoneMatch="*"
                )
        except ClientError as error:
            # 412: the object exists. 409: a concurrent conditional write to the same key is in
            # flight; either way another writer holds the name, and the caller picks another.
            if error.response["Error"]["Code"] in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise FileExistsError(f"{self.uri(key)} already exists") from error
            raise

    def get(self, key: str) -> bytes:
        try:
            with self._reaching():
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                return response["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            with self._reaching():
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def sizes(self, prefix: str) -> dict[str, int]:
        full = self.prefix + (f"{check_key(prefix)}/" if prefix else "")
        found = {}
        with self._reaching():
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                for item in page.get("Contents", []):
                    found[item["Key"][len(self.prefix) :]] = item["Size"]
        return found

    def dataset(self, sizes: Mapping[str, int]) -> "pyarrow.dataset.Dataset":
        import pyarrow.dataset as ds

        filesystem = self.arrow_filesystem()
        parquet = ds.ParquetFileFormat()
        # Sizes from the listing spare pyarrow a HEAD request per object before reading it.
        fragments = [
            parquet.make_fragment(f"{self.bucket}/{self._key(key)}", filesystem, file_size=size)
            for key, size in sizes.items()
        ]
        if not fragments:
            raise ValueError("an empty dataset has no schema; list at least one object")
        return ds.FileSystemDataset(fragments, fragments[0].physical_schema, parquet, filesystem)

    def arrow_filesystem(self):
        """pyarrow's S3 filesystem with the credentials boto3 resolves from the standard chain.

        Resolved again on each call, so temporary credentials (roles, web identity) that boto3
        refreshes reach pyarrow too.
        """
        from pyarrow.fs import S3FileSystem

        if self.credentials is None:
            raise PermissionError(
                f"no AWS credentials for {self.uri()}: set them the standard way (AWS_ACCESS_KEY_ID"
                " and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity or an instance role)"
            )
        frozen = self.credentials.get_frozen_credentials()
        options: dict[str, Any] = {
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "session_token": frozen.token,
            "region": self.client.meta.region_name or "us-east-1",
        }
        if self.endpoint_url:
            options["endpoint_override"] = self.endpoint_url
        return S3FileSystem(**options)


def open_store(location: str, endpoint: str | None = None) -> ObjectStore:
    """The store at `location`: `s3://bucket/prefix` or a local folder."""
    if location.startswith("s3://"):
        return _s3_store(location, endpoint)
    if "://" in location:
        raise ValueError(
            f"unsupported lake location {location!r}: use a folder or s3://bucket/prefix"
        )
    return LocalStore(Path(location))


@cache
def _s3_store(location: str, endpoint: str | None) -> S3Store:
    """One client per location and endpoint for the whole process (boto3 clients are thread-safe
    and slow to build)."""
    match = _S3_URI.fullmatch(location)
    if not match:
        raise ValueError(f"invalid S3 location {location!r}: expected s3://bucket/prefix")
    return S3Store(match["bucket"], match["prefix"] or "", endpoint)


def write_bytes_atomically(path: Path, content: bytes) -> None:
    """Write to a temporary sibling, flush it to disk, then rename it over `path`."""
    with _staged(path, content) as staging:
        os.replace(staging, path)


def write_bytes_exclusively(path: Path, content: bytes) -> None:
    """Write a new file whole, or raise FileExistsError if `path` exists: for immutable records.

    The content is staged and hard-linked into place, and a link never replaces an existing file,
    so two writers racing for one name cannot both succeed.
    """
    with _staged(path, content) as staging:
        os.link(staging, path)


@contextmanager
def _staged(path: Path, content: bytes) -> Iterator[Path]:
    """`content` flushed to disk in a temporary sibling of `path`, removed afterwards if still there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(staging, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        yield staging
    finally:
        staging.unlink(missing_ok=True)
