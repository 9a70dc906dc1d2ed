"""File access through the session's Hadoop FileSystem: the same code for local paths and S3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

# Object stores publish a single PUT atomically; renames there are copies, so write directly.
_DIRECT_WRITE_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs"})


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


class HadoopStorage:
    """Reads and writes small files (headers, manifests) next to Spark's own I/O."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark.sparkContext._jvm
        self._conf: Any = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str) -> tuple[Any, Any]:
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath, jpath.getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        jpath, fs = self._path(path)
        return bool(fs.exists(jpath))

    def list_inputs(self, path: str) -> list[InputFile]:
        """The data files of an input: the file itself, or a prefix's visible files in name
        order (names starting with `_` or `.` are markers or temporaries, as Spark treats them)."""
        jpath, fs = self._path(path)
        if not fs.exists(jpath):
            return []
        status = fs.getFileStatus(jpath)
        if status.isFile():
            return [InputFile(path=str(status.getPath().toString()), size=int(status.getLen()))]
        files = [
            InputFile(path=str(s.getPath().toString()), size=int(s.getLen()))
            for s in fs.listStatus(jpath)
            if s.isFile() and not str(s.getPath().getName()).startswith(("_", "."))
        ]
        return sorted(files, key=lambda f: f.path)

    def read_head(self, path: str, limit: int) -> bytes:
        """The first `limit` bytes of a file (fewer if it is shorter)."""
        jpath, fs = self._path(path)
        stream = fs.open(jpath)
        try:
            return bytes(stream.readNBytes(limit))
        finally:
            stream.close()

    def read_text(self, path: str) -> str | None:
        """A small UTF-8 file's content, or None when it does not exist."""
        jpath, fs = self._path(path)
        if not fs.exists(jpath):
            return None
        length = int(fs.getFileStatus(jpath).getLen())
        return self.read_head(path, length).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        """Write a small file so that readers see the old content or the new, never a part."""
        jpath, fs = self._path(path)
        data = text.encode("utf-8")
        if str(fs.getUri().getScheme()) in _DIRECT_WRITE_SCHEMES:
            self._write(fs, jpath, data)
            return
        tmp = self._jvm.org.apache.hadoop.fs.Path(jpath.getParent(), f".{jpath.getName()}.tmp")
        self._write(fs, tmp, data)
        # A local rename(2) replaces the target atomically; Hadoop's rename refuses an
        # existing target on some filesystems, so fall back to delete + rename there.
        if not fs.rename(tmp, jpath):
            fs.delete(jpath, False)
            if not fs.rename(tmp, jpath):
                raise OSError(f"could not move {tmp.toString()} to {path}")

    @staticmethod
    def _write(fs: Any, jpath: Any, data: bytes) -> None:
        stream = fs.create(jpath, True)
        try:
            stream.write(data)
        finally:
            stream.close()

    def escape_partition_value(self, value: str) -> str:
        """How Spark spells a partition value in a path (`a/b` -> `a%2Fb`)."""
        utils = self._jvm.org.apache.spark.sql.catalyst.catalog.ExternalCatalogUtils
        return str(utils.escapePathName(value))
