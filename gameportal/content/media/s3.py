"""The S3 backend (boto3), for AWS or any S3-compatible server. boto3 is synchronous, so
every call runs in a thread; uploads spool to a temporary file first (on disk past 1 MiB),
then go up in parts."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from botocore.client import Config
from botocore.exceptions import BotoCoreError, ClientError

from gameportal.config import Settings
from gameportal.content.media.storage import StorageError, local_errors


@contextlib.contextmanager
def _s3_errors(action: str) -> Iterator[None]:
    """The bucket out of reach or refusing (after boto3's own retries) as a StorageError."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise StorageError(f"the media storage cannot be {action}: S3 answered {code}") from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise StorageError(f"the media storage cannot be {action}: {type(exc).__name__}") from exc


class S3Storage:
    name = "s3"

    def __init__(self, settings: Settings) -> None:
        assert settings.s3_bucket is not None
        self.bucket = settings.s3_bucket
        self.endpoint_url = settings.s3_endpoint_url
        self.region = settings.s3_region
        self.public_url = settings.media_public_url
        self.client: Any = boto3.client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(
                signature_version="s3v4",
                # Path-style addresses work on every S3-compatible server.
                s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
                # Newer boto3 adds CRC checksums by default, which a presigned PUT from a
                # plain HTTP client does not send and some S3-compatible servers reject.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    async def write(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        size = 0
        # The spool is on local disk past 1 MiB: a full temporary folder is a full disk.
        with (
            local_errors("written"),
            tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool,
        ):
            async for chunk in chunks:
                size += len(chunk)
                spool.write(chunk)
            spool.seek(0)
            with _s3_errors("written"):
                await asyncio.to_thread(
                    self.client.upload_fileobj,
                    spool,
                    self.bucket,
                    key,
                    ExtraArgs={"ContentType": content_type},
                )
        return size

    async def read(self, key: str) -> bytes:
        with _s3_errors("read"):
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
            body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def head(self, key: str) -> int | None:
        with _s3_errors("read"):
            try:
                response = await asyncio.to_thread(
                    self.client.head_object, Bucket=self.bucket, Key=key
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return int(response["ContentLength"])

    async def read_start(self, key: str, length: int) -> bytes:
        with _s3_errors("read"):
            response = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
            body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def delete(self, keys: list[str]) -> None:
        if keys:
            with _s3_errors("written"):
                await asyncio.to_thread(
                    self.client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
                )

    def presign_put(self, key: str, content_type: str, expires_in: int) -> str:
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
        )
        return url

    def url(self, key: str) -> str:
        if self.public_url:
            return f"{self.public_url.rstrip('/')}/{key}"
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"
