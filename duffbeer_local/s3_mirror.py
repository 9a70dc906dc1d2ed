"""A local mirror of a bucket for Glue runs: Spark sees S3 as a folder, and writes go back.

Local Spark has no S3 connector, so a job run started with `--output_path s3://bucket/`
(or `--processed_path`) gets a local folder instead. The folder is a *view* of the bucket:
every object present when the run starts, hard-linked from a cache that is synced
incrementally (objects whose ETag changed are downloaded, deleted ones removed), so the job
can read anything under the bucket as it would on Glue. The job's writes land in the view
as new files; after the run exactly those files are uploaded, run manifests and version
manifests (`_*.json`) last, like the job writes them. The project's jobs never modify an
object in place (runs are immutable prefixes), which is what makes
shared links cheap and safe; a file changed in place is still detected and uploaded.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Prefixes no job reads through the view: query results, quarantined inputs, and the
# Iceberg warehouse (the state job reads and writes its tables through Iceberg's catalog
# and S3 client, straight on the endpoint).
DEFAULT_EXCLUDED_PREFIXES: tuple[str, ...] = ("athena-results/", "quarantine/", "warehouse/")
# Objects above this size are uploaded in parts (upload_file); their ETag is then read back.
_SINGLE_PUT_BYTES = 8 * 1024**2
# Hadoop's local checksum side files are not part of the output.
_SKIPPED_SUFFIXES = (".crc",)


def local_relative(key: str) -> str | None:
    """The key as a relative path that stays inside its folder, or None when it would not
    (`..` or `.` segments, empty segments, a leading `/`): such objects are not mirrored."""
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return key


@dataclass
class _Cached:
    etag: str
    path: Path


@dataclass
class BucketView:
    """One run's folder: the bucket's objects when the run started, plus what the run writes."""

    bucket: str
    prefix: str
    root: Path
    # (device, inode) of each linked cache file -> its (size, mtime) when linked.
    linked: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


class BucketMirror:
    """The incremental local copy of one or more buckets, shared by the runs of a stack."""

    def __init__(
        self,
        cache_dir: Path,
        s3: Any,
        excluded_prefixes: tuple[str, ...] = DEFAULT_EXCLUDED_PREFIXES,
    ) -> None:
        self._cache_dir = cache_dir
        self._s3 = s3
        self._excluded = excluded_prefixes
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str], _Cached] = {}

    def _cache_path(self, bucket: str, key: str) -> Path:
        if local_relative(bucket) is None or local_relative(key) is None:
            raise ValueError(f"s3://{bucket}/{key} cannot be mirrored inside {self._cache_dir}")
        return self._cache_dir / bucket / key

    def _listing(self, bucket: str, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                relative = key[len(prefix) :]
                if relative.startswith(self._excluded) or local_relative(relative) is None:
                    continue  # folder markers and keys that would leave the folder included
                found[key] = str(entry["ETag"])
        return found

    def _sync(self, bucket: str, prefix: str) -> None:
        """Bring the cache up to the bucket's current objects under `prefix` (lock held)."""
        listed = self._listing(bucket, prefix)
        for (cached_bucket, key), gone in list(self._index.items()):
            if cached_bucket == bucket and key.startswith(prefix) and key not in listed:
                gone.path.unlink(missing_ok=True)
                del self._index[(bucket, key)]
        for key, etag in listed.items():
            known = self._index.get((bucket, key))
            if known is not None and known.etag == etag and known.path.exists():
                continue
            path = self._cache_path(bucket, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.download")
            self._s3.download_file(bucket, key, str(partial))
            # A new inode: views linked to the previous content keep it.
            partial.replace(path)
            self._index[(bucket, key)] = _Cached(etag=etag, path=path)

    def view(self, bucket: str, prefix: str, root: Path) -> BucketView:
        """A folder at `root` showing every object under s3://bucket/prefix right now."""
        root.mkdir(parents=True, exist_ok=True)
        result = BucketView(bucket=bucket, prefix=prefix, root=root)
        with self._lock:
            self._sync(bucket, prefix)
            for (cached_bucket, key), cached in self._index.items():
                if cached_bucket != bucket or not key.startswith(prefix):
                    continue
                target = root / key[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(cached.path, target)
                info = cached.path.stat()
                result.linked[(info.st_dev, info.st_ino)] = (info.st_size, info.st_mtime_ns)
        return result

    def new_files(self, view: BucketView) -> list[Path]:
        """The files the run wrote into its view (new or changed), manifests (`_*.json`)
        last."""
        written = []
        for path in sorted(p for p in view.root.rglob("*") if p.is_file()):
            if path.name.endswith(_SKIPPED_SUFFIXES):
                continue
            info = path.stat()
            before = view.linked.get((info.st_dev, info.st_ino))
            if before == (info.st_size, info.st_mtime_ns):
                continue
            written.append(path)
        return sorted(written, key=lambda p: p.name.startswith("_") and p.suffix == ".json")

    def upload(self, view: BucketView) -> list[str]:
        """Upload what the run wrote; keep it in the cache so later runs need not fetch it."""
        uploaded: list[str] = []
        for path in self.new_files(view):
            key = view.prefix + path.relative_to(view.root).as_posix()
            size = path.stat().st_size
            if size <= _SINGLE_PUT_BYTES:
                with path.open("rb") as body:
                    etag = str(self._s3.put_object(Bucket=view.bucket, Key=key, Body=body)["ETag"])
            else:
                self._s3.upload_file(str(path), view.bucket, key)
                etag = str(self._s3.head_object(Bucket=view.bucket, Key=key)["ETag"])
            uploaded.append(key)
            with self._lock:
                cached = self._cache_path(view.bucket, key)
                if not (cached.exists() and cached.samefile(path)):
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.unlink(missing_ok=True)
                    os.link(path, cached)
                self._index[(view.bucket, key)] = _Cached(etag=etag, path=cached)
        return uploaded
