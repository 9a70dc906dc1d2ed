"""Small S3 objects (manifests, pointers, plans): read with their ETag, written conditionally."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# S3 refuses a conditional PUT whose condition no longer holds (412), or that races another
# conditional write of the same key (409): either way, re-read and decide again.
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def read(client: Any, bucket: str, key: str) -> StoredObject | None:
    """The object's bytes and ETag, or None when it does not exist."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if error_code(e) in _MISSING:
            return None
        raise
    return StoredObject(body=response["Body"].read(), etag=str(response["ETag"]))


def put_if(client: Any, bucket: str, key: str, text: str, *, etag: str | None) -> bool:
    """PUT `text` only if the object still has `etag` (`None`: only if there is none yet).
    False when another writer got there first."""
    condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType="application/json",
            **condition,
        )
    except ClientError as e:
        if error_code(e) in _CONDITION_FAILED:
            return False
        raise
    return True


def put(client: Any, bucket: str, key: str, text: str) -> None:
    client.put_object(
        Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/json"
    )


def listing(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under a prefix (Key, ETag, Size, LastModified)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def has_objects(client: Any, bucket: str, prefix: str) -> bool:
    response = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    return bool(response.get("KeyCount", 0))


def child_prefixes(client: Any, bucket: str, prefix: str) -> list[str]:
    """The names one level below `prefix` ('a/' for prefix/a/...)."""
    names: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        names += [c["Prefix"][len(prefix) :] for c in page.get("CommonPrefixes", [])]
    return names


def delete_keys(client: Any, bucket: str, keys: list[str]) -> list[str]:
    """Delete keys in batches of 1000; the keys that could not be deleted, with the reason."""
    errors: list[str] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
        errors += [f"{e['Key']}: {e.get('Code')}" for e in response.get("Errors", [])]
    return errors
