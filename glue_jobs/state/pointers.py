"""The batch pointers (`manifests/<batch_id>.json`) as the state job reads them.

On S3 one paginated listing gives every pointer's ETag, so a merge reads only the pointers
that moved since the state took their batch in. A processed root that is a plain folder
(spark-submit on local files) has no ETags: every pointer is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from duffbeer import aws, manifest, naming
from duffbeer.state import BatchRun
from glue_jobs.orders.storage import HadoopStorage
from glue_jobs.state.args import StateJobArgs

_SUFFIX = ".json"
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class PointerStore(Protocol):
    def listing(self) -> Iterator[tuple[str, str]]:
        """(batch id, ETag) of every batch pointer."""
        ...

    def read(self, batch_id: str) -> BatchRun | None:
        """The run a batch's pointer publishes (None: no pointer, or it publishes none)."""
        ...


@dataclass
class S3Pointers:
    client: Any
    bucket: str
    root: str  # key prefix of the processed root ("" for the bucket's root)

    def listing(self) -> Iterator[tuple[str, str]]:
        prefix = f"{self.root}{naming.MANIFESTS_PREFIX}"
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name.endswith(_SUFFIX) and "/" not in name:
                    yield name[: -len(_SUFFIX)], str(item["ETag"])

    def read(self, batch_id: str) -> BatchRun | None:
        key = f"{self.root}{naming.manifest_key(batch_id)}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            raise
        pointer = manifest.loads(response["Body"].read())
        return BatchRun.published_in(pointer, str(response["ETag"]))


@dataclass
class FolderPointers:
    storage: HadoopStorage
    args: StateJobArgs

    def listing(self) -> Iterator[tuple[str, str]]:
        for found in self.storage.list_inputs(self.args.path(naming.MANIFESTS_PREFIX)):
            name = found.path.rsplit("/", 1)[-1]
            if name.endswith(_SUFFIX):
                yield name[: -len(_SUFFIX)], ""

    def read(self, batch_id: str) -> BatchRun | None:
        text = self.storage.read_text(self.args.path(naming.manifest_key(batch_id)))
        return BatchRun.published_in(manifest.loads(text)) if text is not None else None


def pointer_store(args: StateJobArgs, storage: HadoopStorage, s3: Any | None) -> PointerStore:
    """S3's listing when the processed root is an s3:// location (on Glue, or the bucket a
    local run's folder stands for), else the folder's own files."""
    parsed = urlparse(args.processed_uri)
    if parsed.scheme in ("s3", "s3a"):
        prefix = parsed.path.strip("/")
        return S3Pointers(s3 or aws.client("s3"), parsed.netloc, f"{prefix}/" if prefix else "")
    return FolderPointers(storage, args)
