"""S3-compatible file store (boto3): ``SHAREWISE_STORAGE_URL=s3://bucket/prefix``.

Credentials, region and endpoint come from the standard AWS configuration (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``),
``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, instance roles ...). For an S3-compatible service
(MinIO, Ceph, Garage, a cloud vendor's S3 API) set ``SHAREWISE_S3_ENDPOINT_URL``; path-style
addressing is then used, which every such service understands.

Writes are atomic by construction: S3 makes an object visible only once its whole ``PUT`` has
arrived, so a reader sees either the previous object or the complete new one, never a part.
boto3 adds a CRC32 checksum to every ``PUT`` (its default), so a body damaged on the way is
refused by the server rather than stored (older S3-compatible services that do not know those
headers: set ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``). Keys are the same relative,
slash-separated keys the local store uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sharewise.plugin.storage import NotFound, Storage, StorageError, check_key

ENDPOINT_ENV = "SHAREWISE_S3_ENDPOINT_URL"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Storage(Storage):
    """Objects in one bucket under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not bucket:
            raise StorageError("an s3:// storage URL needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"} if endpoint_url else None,
            )
            session = boto3.session.Session()
            options: dict[str, Any] = {"region_name": os.environ.get("AWS_REGION") or None}
            options.update(client_options or {})
            client = session.client("s3", endpoint_url=endpoint_url, config=config, **options)
        self.client = client

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Storage:
        """A store for ``s3://bucket/prefix``."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise StorageError("not an s3:// URL")
        return cls(parts.netloc, parts.path, **kwargs)

    def _object_key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, *, content_type: str = "application/pdf") -> None:
        """Store ``data`` under ``key`` (replacing any previous object, atomically)."""
        data = bytes(data)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=data,
                ContentType=content_type,
            )
        except ClientError as exc:
            raise StorageError(f"S3 put failed: {_code(exc)}") from exc
        except BotoCoreError as exc:  # no answer: connection refused, timed out...
            raise StorageError(f"S3 put failed: {type(exc).__name__}") from exc

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`NotFound` when there are none."""
        with self.open(key) as body:
            try:
                return body.read()
            except BotoCoreError as exc:  # the connection broke while the body streamed
                raise StorageError(f"S3 get failed: {type(exc).__name__}") from exc

    def open(self, key: str) -> BinaryIO:
        """A streaming, readable body of ``key`` (close it); :class:`NotFound` if absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise NotFound(key) from None
            raise StorageError(f"S3 get failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 get failed: {type(exc).__name__}") from exc
        # botocore's StreamingBody is an io.IOBase with read(), close() and a context manager.
        return cast(BinaryIO, response["Body"])

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise StorageError(f"S3 head failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 head failed: {type(exc).__name__}") from exc

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._head(key) is not None

    def size(self, key: str) -> int:
        """Size in bytes of ``key`` (from the object's metadata, without downloading it)."""
        head = self._head(key)
        if head is None:
            raise NotFound(key)
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it does not exist)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            raise StorageError(f"S3 delete failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 delete failed: {type(exc).__name__}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
